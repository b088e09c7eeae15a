// A stored journal event and its canonical bytes. The bytes are the Merkle leaf data, so they must be
// the same on every machine and in every later read: canonical JSON (see canonical.ts), UTF-8.
import { PenstockError } from '../common/errors.ts';
import { Secret } from '../common/secret.ts';
import type { Clock } from '../common/clock.ts';
import { EVENT_CODES, type EventName } from './codes.ts';
import { canonicalJson, CanonicalJsonError } from './canonical.ts';
import { renderAction, renderDecision } from './fields.ts';
import type { JournalEventInput } from './types.ts';

/** What a stored event holds (keys in canonical order when encoded). */
export interface StoredEvent {
  /** 0-based leaf index in the Merkle tree. */
  seq: number;
  /** Wall time, ISO 8601 UTC with milliseconds. */
  time: string;
  /** Monotonic clock in nanoseconds, as a decimal string (exceeds 2^53). */
  mono: string;
  /** Stable registry code, e.g. PS3001I. */
  code: string;
  event: EventName;
  appliance: string;
  session?: string;
  principal?: string;
  chain?: string[];
  target?: string;
  listener?: string;
  action?: Record<string, unknown>;
  decision?: Record<string, unknown>;
  outcome?: Record<string, unknown>;
  detail?: Record<string, unknown>;
  /** JSON paths of values that were Secret instances and were left out. */
  redacted?: string[];
}

/**
 * An event ready to be numbered: its top-level members already canonically encoded and sorted, so
 * numbering it only splices in "seq" (events are encoded once, on the append path).
 */
export interface PreparedEvent {
  /** [key, canonical value] sorted by key, without seq. */
  members: [string, string][];
}

const MAX_DEPTH = 32;

/**
 * Canonical JSON of `value` (exactly what canonicalJson gives for it) in one walk that also leaves out
 * every Secret, recording its path in `redacted`: secrets are never journaled, whatever a caller passes
 * by mistake. Returns undefined for a Secret itself. Paths are recorded in the order the caller's object
 * lists them (depth first), though members are emitted in canonical (sorted) order.
 */
function encodeWithoutSecrets(value: unknown, path: string, redacted: string[], depth: number): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(path, `number ${value} is not finite`);
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(path, `${typeof value} is not JSON`);
  }
  if (value === null) return 'null';
  if (value instanceof Secret) {
    redacted.push(path);
    return undefined;
  }
  if (depth > MAX_DEPTH) throw new CanonicalJsonError(path, `nested deeper than ${MAX_DEPTH}`);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === undefined) throw new CanonicalJsonError(`${path}[${i}]`, 'undefined in an array');
      const encoded = encodeWithoutSecrets(item, `${path}[${i}]`, redacted, depth + 1);
      if (encoded === undefined) continue; // a Secret item is dropped from the array
      out += out.length === 1 ? encoded : `,${encoded}`;
    }
    return `${out}]`;
  }
  if (value instanceof Date) return canonicalJson(value);
  // Any other object is taken by its own enumerable members, as the copy that drops secrets always did.
  const obj = value as Record<string, unknown>;
  const members = encodeMembers(obj, path, redacted, depth);
  let out = '{';
  for (let i = 0; i < members.length; i++) out += `${i === 0 ? '' : ','}${JSON.stringify(members[i]![0])}:${members[i]![1]}`;
  return `${out}}`;
}

/** [key, canonical value] of an object's defined, non-secret members, sorted by key (UTF-16 code units, as JCS). */
function encodeMembers(obj: Record<string, unknown>, path: string, redacted: string[], depth: number): [string, string][] {
  const members: [string, string][] = [];
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    if (v === undefined) continue;
    const encoded = encodeWithoutSecrets(v, `${path}.${key}`, redacted, depth + 1);
    if (encoded !== undefined) members.push([key, encoded]);
  }
  return members.sort(byKey);
}

function byKey(a: [string, string], b: [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

/**
 * Turns an append request into an event (all but seq): checks the name, renders protocol fields, stamps
 * the time and drops secrets. Throws PenstockError('PS_INTERNAL') when the input is not encodable, so a
 * bad caller learns at once, before anything is written.
 */
export function prepareEvent(input: JournalEventInput, appliance: string, clock: Clock): PreparedEvent {
  const code = (EVENT_CODES as Record<string, string>)[input.event];
  if (code === undefined) throw new PenstockError('PS_INTERNAL', `unknown journal event name ${JSON.stringify(input.event)}`);
  const redacted: string[] = [];
  const raw = {
    time: new Date(clock.now()).toISOString(),
    mono: clock.monotonic().toString(),
    code,
    event: input.event,
    appliance,
    session: input.session,
    principal: input.principal,
    chain: input.chain,
    target: input.target,
    listener: input.listener,
    action: input.action ? renderAction(input.action) : undefined,
    decision: input.decision ? renderDecision(input.decision) : undefined,
    outcome: input.outcome,
    detail: input.detail,
  };
  try {
    const members = encodeMembers(raw, '$', redacted, 0);
    if (redacted.length > 0) {
      members.push(['redacted', canonicalJson(redacted)]);
      members.sort(byKey);
    }
    return { members };
  } catch (err) {
    if (err instanceof CanonicalJsonError) {
      throw new PenstockError('PS_INTERNAL', `journal event ${input.event} is not encodable: ${err.message}`, { path: err.path }, { cause: err });
    }
    throw err;
  }
}

/** The canonical bytes (as a string) of an event with its sequence number: the same as canonicalJson({...event, seq}). */
export function encodeEvent(prepared: PreparedEvent, seq: number): string {
  let out = '{';
  let placed = false;
  for (const [k, v] of prepared.members) {
    if (!placed && k > 'seq') {
      out += `"seq":${seq},`;
      placed = true;
    }
    // Top-level keys are the StoredEvent names: plain ASCII, no escaping needed, but stay exact anyway.
    out += `${JSON.stringify(k)}:${v},`;
  }
  if (!placed) out += `"seq":${seq},`;
  return `${out.slice(0, -1)}}`;
}
