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
 * Copies a value, leaving out every Secret (its path goes to `redacted`): secrets are never journaled,
 * whatever a caller passes by mistake.
 */
function withoutSecrets(value: unknown, path: string, redacted: string[], depth = 0): unknown {
  if (value instanceof Secret) {
    redacted.push(path);
    return undefined;
  }
  if (value === null || typeof value !== 'object') return value;
  if (depth > MAX_DEPTH) throw new CanonicalJsonError(path, `nested deeper than ${MAX_DEPTH}`);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    value.forEach((item, i) => {
      const v = withoutSecrets(item, `${path}[${i}]`, redacted, depth + 1);
      if (v !== undefined || !(item instanceof Secret)) out.push(v);
    });
    return out;
  }
  if (value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = withoutSecrets(v, `${path}.${k}`, redacted, depth + 1);
  return out;
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
    const clean = withoutSecrets(raw, '$', redacted) as Record<string, unknown>;
    if (redacted.length > 0) clean.redacted = redacted;
    const members = Object.keys(clean)
      .filter((k) => clean[k] !== undefined)
      .sort()
      .map((k): [string, string] => [k, canonicalJson(clean[k])]);
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
    out += `${JSON.stringify(k)}:${v},`;
  }
  if (!placed) out += `"seq":${seq},`;
  return `${out.slice(0, -1)}}`;
}
