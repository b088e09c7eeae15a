// Types for preflight.mjs (plain JavaScript: it runs first, under whatever Node runs npm).
export interface DepCheck { kind: 'bin' | 'py' | 'pc'; name: string }
export interface Dep { pkg: string; checks: DepCheck[] }
export function readDeps(file?: string): Dep[];
export function missing(deps: Dep[]): { pkg: string; check: DepCheck }[];
export function closure(listed: string[]): Set<string>;
