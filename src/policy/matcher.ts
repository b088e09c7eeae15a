// The contract each protocol's rule matcher implements. decide() knows no protocol: it looks the
// matcher up by the action object's kind (registry in matchers.ts) and asks it whether a rule fits.
import type { FirmwareProfile, TargetConfig } from '../config/types.ts';
import type { Action, ActionObject } from './types.ts';

/** Why a rule did not fit, from least to most specific. decide() reports the most specific miss. */
export type MissReason = 'function_not_granted' | 'object_not_granted' | 'metacharacters' | 'value_out_of_bounds';
export const MISS_RANK: Record<MissReason, number> = {
  function_not_granted: 1,
  object_not_granted: 2,
  metacharacters: 3,
  value_out_of_bounds: 4,
};

export type RuleFit = { fits: true } | { fits: false; miss: MissReason; detail: string };

/**
 * How a rule is compared with an action.
 * - `contain` (allow and approve rules): the action lies wholly inside what the rule names — every
 *   register, the node, the argv, every written value inside the bounds. Unknown means no.
 * - `overlap` (deny rules): the action touches anything the rule names. Unknown means yes, so a deny
 *   rule cannot be sidestepped by a request that straddles its edge or hides its values.
 */
export type MatchMode = 'contain' | 'overlap';

export interface MatchEnv {
  target: TargetConfig | undefined;
  /** The target's firmware profile, when it has one (points resolve against it). */
  profile: FirmwareProfile | undefined;
}

export interface ProtocolMatcher<O extends ActionObject, R> {
  readonly kind: O['kind'];
  /** A reason the action object is malformed (policy denies it as `malformed`), or undefined. */
  validate(action: Action, object: O): string | undefined;
  match(rule: R, action: Action, object: O, env: MatchEnv, mode: MatchMode): RuleFit;
  /** One line a person can read: what the rule grants. */
  describe(rule: R): string;
}

export const fit: RuleFit = { fits: true };
export function miss(reason: MissReason, detail: string): RuleFit {
  return { fits: false, miss: reason, detail };
}

/** Engineering value of a raw number under a SunSpec-style scale: raw × 10^exp, rounded as the literal would be. */
export function scaled(raw: number, exp: number | undefined): number {
  if (!exp) return raw;
  // Dividing by 10^n (exact for n ≤ 22) gives the double nearest the decimal, as `123.4` in YAML does;
  // multiplying by 0.1 would not, and a value on the bound could fall the wrong side of it.
  return exp < 0 ? raw / 10 ** -exp : raw * 10 ** exp;
}

/** Whether v lies inside [min, max] (either may be absent). Non-finite values are never inside. */
export function withinBounds(v: number, min: number | undefined, max: number | undefined): boolean {
  if (!Number.isFinite(v)) return false;
  return (min === undefined || v >= min) && (max === undefined || v <= max);
}

export function boundsText(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return `${min}..${max}`;
  if (min !== undefined) return `>= ${min}`;
  return `<= ${max}`;
}
