// Types for verify-runtime.mjs (plain JavaScript: postinstall runs it under whatever Node runs npm).
export interface RuntimePin { package: string; integrity: string; binarySha512: string }
export type RuntimePins = { version: string } & Record<string, RuntimePin | string>;
export function readPins(root?: string): RuntimePins;
export function pinsFor(pins: RuntimePins, platform?: string, arch?: string): RuntimePin;
export function sha512Hex(file: string): string;
export function tarballIntegrityOk(file: string, integrity: string): boolean;
export function verifyRuntime(root?: string, pins?: RuntimePins): { checked: boolean; version?: string; reason?: string };
