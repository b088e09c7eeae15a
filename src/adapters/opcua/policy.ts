// OPC UA rules: which services (verbs) on which nodes. A rule names nodes by id (exact, or a prefix
// ending in `*`), by browse-path prefix (whole segments: `Objects/Boiler` covers `Objects/Boiler/Drum`
// but not `Objects/Boiler2`), or by firmware-profile point; any of its names may match.
import type { ProfilePoint } from '../../config/types.ts';
import type { Action } from '../../policy/types.ts';
import { boundsText, fit, miss, withinBounds as withinNumberBounds, type MatchEnv, type MatchMode, type ProtocolMatcher, type RuleFit } from '../../policy/matcher.ts';
import { matchDotted } from '../../policy/glob.ts';
import { INTEGER_TEXT, opcuaVerbs, type OpcuaObject, type OpcuaRuleConfig } from './rules.ts';

export function matchNodePattern(pattern: string, nodeId: string): boolean {
  return pattern.endsWith('*') ? nodeId.startsWith(pattern.slice(0, -1)) : nodeId === pattern;
}

function segments(path: string): string[] {
  return path.split('/').filter((s) => s.length > 0);
}

const SLASH = 0x2f;

/** A path with no empty segment (no leading, trailing or doubled `/`): its segments are its text between slashes. */
function plainPath(path: string): boolean {
  return path.length > 0 && path.charCodeAt(0) !== SLASH && path.charCodeAt(path.length - 1) !== SLASH && !path.includes('//');
}

export function browsePathWithin(prefix: string, path: string): boolean {
  // Every read of a batch is matched against every browse-path rule: plain paths (what the mirror makes)
  // are compared as text, without splitting either (same answer: whole segments, none empty).
  if (plainPath(prefix) && plainPath(path)) {
    return path.length === prefix.length ? path === prefix : path.length > prefix.length && path.charCodeAt(prefix.length) === SLASH && path.startsWith(prefix);
  }
  const p = segments(prefix);
  const s = segments(path);
  return p.length > 0 && p.length <= s.length && p.every((seg, i) => seg === s[i]);
}

const NO_POINTS: readonly ProfilePoint[] = Object.freeze([]);

/** The profile points that describe this node (by node id or browse path). */
function pointsFor(o: OpcuaObject, env: MatchEnv): readonly ProfilePoint[] {
  if (!env.profile) return NO_POINTS;
  return env.profile.points.filter((p) => p.node !== undefined && (p.node === o.nodeId || p.node === o.browsePath));
}

/** Whether one of the rule's names (node ids, browse paths, profile points) covers the node. */
function names(rule: OpcuaRuleConfig, o: OpcuaObject, env: MatchEnv): boolean {
  if (rule.nodes) for (const n of rule.nodes) if (matchNodePattern(n, o.nodeId)) return true;
  if (o.browsePath !== undefined && rule.browse_paths) for (const b of rule.browse_paths) if (browsePathWithin(b, o.browsePath)) return true;
  return rule.points !== undefined && pointsFor(o, env).some((p) => rule.points!.some((g) => matchDotted(g, p.name)));
}

/** A rule's verbs as the text of a refusal, once per rule (rules are immutable once loaded). */
const verbsText = new WeakMap<OpcuaRuleConfig, string>();
function verbsOf(rule: OpcuaRuleConfig): string {
  let t = verbsText.get(rule);
  if (t === undefined) verbsText.set(rule, (t = rule.verbs.join(', ')));
  return t;
}

const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * The value of a 64-bit integer as node-opcua carries it — `[high, low]` 32-bit words (high signed for
 * Int64, unsigned for UInt64), a bigint, or a plain number — exactly: a number when it is a safe
 * integer, else its decimal text. Undefined for anything else.
 */
export function exactInt64(raw: unknown, unsigned: boolean): number | string | undefined {
  let v: bigint;
  if (Array.isArray(raw) && raw.length === 2 && raw.every((w) => Number.isInteger(w) && w >= -(2 ** 31) && w < 2 ** 32)) {
    const high = unsigned ? BigInt((raw[0] as number) >>> 0) : BigInt((raw[0] as number) | 0);
    v = (high << 32n) + BigInt((raw[1] as number) >>> 0);
  } else if (typeof raw === 'bigint') {
    v = raw;
  } else if (typeof raw === 'number' && Number.isSafeInteger(raw)) {
    v = BigInt(raw);
  } else {
    return undefined;
  }
  if (unsigned ? v < 0n || v > UINT64_MAX : v < INT64.min || v > INT64.max) return undefined;
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

/** Whether v lies inside [min, max]; an integer given as decimal text is compared exactly. */
export function withinBounds(v: number | string, min: number | undefined, max: number | undefined): boolean {
  if (typeof v === 'number') return withinNumberBounds(v, min, max);
  if (!INTEGER_TEXT.test(v)) return false;
  const n = BigInt(v);
  // For an integer n: n >= min ⇔ n >= ceil(min), n <= max ⇔ n <= floor(max); a double that large is an integer.
  if (min !== undefined && (!Number.isFinite(min) ? min > 0 : n < BigInt(Math.ceil(min)))) return false;
  if (max !== undefined && (!Number.isFinite(max) ? max < 0 : n > BigInt(Math.floor(max)))) return false;
  return true;
}

function validate(action: Action, o: OpcuaObject): string | undefined {
  if (!(opcuaVerbs as readonly string[]).includes(action.verb)) return `${action.verb} is not an OPC UA service`;
  if (typeof o.nodeId !== 'string' || o.nodeId.length === 0) return 'no node id';
  if (o.value !== undefined && typeof o.value !== 'number' && !(typeof o.value === 'string' && INTEGER_TEXT.test(o.value))) return 'the written value is not a number';
  return undefined;
}

// A read of N nodes is N decisions, each trying every rule of the principal's grants: the path to `fit`
// allocates nothing (no split paths, no closures, the profile's points looked up only when needed).
function match(rule: OpcuaRuleConfig, action: Action, o: OpcuaObject, env: MatchEnv, mode: MatchMode): RuleFit {
  const contain = mode === 'contain';
  if (!(rule.verbs as readonly string[]).includes(action.verb)) return miss('function_not_granted', `${action.verb} is not among verbs ${verbsOf(rule)}`);
  if (!names(rule, o, env)) return miss('object_not_granted', `node ${o.browsePath ? `${o.nodeId} (${o.browsePath})` : o.nodeId} is not named by the rule`);
  if (action.verb !== 'write') return fit;
  const where = o.browsePath ? `${o.nodeId} (${o.browsePath})` : o.nodeId;
  const own = pointsFor(o, env);

  if (contain) {
    const ro = own.find((p) => p.access === 'R');
    if (ro) return miss('object_not_granted', `node ${where} is read-only point ${ro.name}`);
  }
  const bounds = [{ min: rule.min, max: rule.max, what: "the rule's" }];
  if (contain) for (const p of own) bounds.push({ min: p.min, max: p.max, what: `point ${p.name}'s safe range` });
  const active = bounds.filter((b) => b.min !== undefined || b.max !== undefined);
  if (active.length === 0) return fit;
  if (o.value === undefined) return contain ? miss('value_out_of_bounds', 'the write is bounded, and its value is not known') : fit;
  if (!contain) return withinBounds(o.value, rule.min, rule.max) ? fit : miss('value_out_of_bounds', `value ${o.value} is outside ${boundsText(rule.min, rule.max)}`);
  for (const b of active) {
    if (!withinBounds(o.value, b.min, b.max)) return miss('value_out_of_bounds', `value ${o.value} is outside ${b.what} ${boundsText(b.min, b.max)}`);
  }
  return fit;
}

function describe(rule: OpcuaRuleConfig): string {
  const parts = [rule.verbs.join(', ')];
  if (rule.nodes) parts.push(`nodes ${rule.nodes.join(', ')}`);
  if (rule.browse_paths) parts.push(`below ${rule.browse_paths.join(', ')}`);
  if (rule.points) parts.push(`points ${rule.points.join(', ')}`);
  if (rule.min !== undefined || rule.max !== undefined) parts.push(`values ${boundsText(rule.min, rule.max)}`);
  return `opcua: ${parts.join('; ')}`;
}

export const opcuaMatcher: ProtocolMatcher<OpcuaObject, OpcuaRuleConfig> = { kind: 'opcua', validate, match, describe };
