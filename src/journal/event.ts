// A stored journal event and its canonical bytes. The bytes are the Merkle leaf data, so they must be
// the same on every machine and in every later read: canonical JSON (canonical.ts, the one encoder), UTF-8.
import { PenstockError } from '../common/errors.ts';
import { Secret } from '../common/secret.ts';
import type { Clock } from '../common/clock.ts';
import { EVENT_CODES, type EventName } from './codes.ts';
import { canonicalJson, canonicalMembers, CanonicalJsonError } from './canonical.ts';
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

/**
 * Turns an append request into an event (all but seq): checks the name, renders protocol fields, stamps
 * the time and drops secrets. A value that is not plain JSON data (a Map, a Buffer, a class instance:
 * canonical.ts has the rule) is refused, never guessed at: throws PenstockError('PS_INTERNAL') when the
 * input is not encodable, so a bad caller learns at once, before anything is written.
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
    // Secrets are never journaled, whatever a caller passes by mistake: each is left out, its path kept.
    const members = canonicalMembers(raw, '$', { omit: (v) => v instanceof Secret, paths: redacted });
    if (redacted.length > 0) {
      members.push(['redacted', canonicalJson(redacted)]);
      members.sort((a, b) => (a[0] < b[0] ? -1 : 1));
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
