// Read evidence is aggregated per session (design.md: "Read evidence may be aggregated per session —
// counts per object per interval"); writes, calls, execs and denials are journaled one by one.
// The aggregator knows no protocol: an object's identity is its fields minus any values.
//
// `add` runs once per allowed read, on the hot path of every front door, so it does no more than build
// a string key and bump a counter: the object copy is made only for a new aggregate, and times are kept
// as numbers and turned into ISO strings when the aggregate is taken for the journal.
import type { Action } from '../policy/types.ts';

/** `request`: reads the principal asked for; `notification`: values pushed to it by a subscription. */
export type ReadKind = 'request' | 'notification';

export interface ReadAggregate {
  target: string;
  verb: string;
  object: Record<string, unknown>;
  /** Present for notifications only (absent: requests), so read aggregates keep their old shape. */
  kind?: 'notification';
  count: number;
  first: string;
  last: string;
}

interface Tally {
  target: string;
  verb: string;
  object: Record<string, unknown>;
  kind: ReadKind;
  count: number;
  firstMs: number;
  lastMs: number;
  /** The fields readKey took, in its order, each with a primitive value; undefined when one was not. */
  fields: string[] | undefined;
}

interface SessionReads {
  tallies: Map<string, Tally>;
  /** The tally the session's last read went to: a client polling the same registers reads it again. */
  last: Tally | undefined;
}

/** Fields that carry what was read or written, not which object: left out of an object's identity. */
function isValueField(field: string): boolean {
  return field === 'values' || field === 'value';
}

/**
 * The identity of what an action reads: target, verb and the object's fields minus values. Every part is
 * encoded unambiguously (strings and nested fields as JSON), so two different objects never share a key —
 * whatever a client put into a string field.
 */
export function readKey(action: Action): string {
  const object = action.object as unknown as Record<string, unknown>;
  let key = `${JSON.stringify(action.target)}\u0000${action.verb}`;
  for (const field in object) {
    if (isValueField(field) || !Object.hasOwn(object, field)) continue;
    const v = object[field];
    if (v === undefined) continue; // as JSON.stringify: an absent field and an undefined one are the same object
    key += `\u0000${field}=${typeof v === 'number' || typeof v === 'boolean' || v === null ? String(v) : JSON.stringify(v)}`;
  }
  return key;
}

function isPrimitive(v: unknown): boolean {
  return v === null || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string';
}

/** The fields readKey takes from the object, in its order, when all their values are primitives. */
function primitiveFields(object: Record<string, unknown>): string[] | undefined {
  const fields: string[] = [];
  for (const field in object) {
    if (isValueField(field) || !Object.hasOwn(object, field)) continue;
    const v = object[field];
    if (v === undefined) continue;
    if (!isPrimitive(v)) return undefined;
    fields.push(field);
  }
  return fields;
}

/**
 * Whether readKey(action) is the tally's key, without building it: same target and verb, and the same
 * fields in the same order with the same primitive values (then the key strings are equal too).
 */
function sameIdentity(t: Tally, action: Action): boolean {
  const fields = t.fields;
  if (fields === undefined || t.target !== action.target || t.verb !== action.verb) return false;
  const object = action.object as unknown as Record<string, unknown>;
  let i = 0;
  for (const field in object) {
    if (isValueField(field) || !Object.hasOwn(object, field)) continue;
    const v = object[field];
    if (v === undefined) continue;
    if (fields[i] !== field || v !== t.object[field]) return false;
    i++;
  }
  return i === fields.length;
}

function identityOf(action: Action): Record<string, unknown> {
  const { values: _values, value: _value, ...object } = action.object as unknown as Record<string, unknown>;
  return object;
}

export class ReadAggregator {
  // session id → object key → tally
  readonly #bySession = new Map<string, SessionReads>();

  add(sessionId: string, action: Action, nowMs: number, kind: ReadKind = 'request', count = 1): void {
    let perSession = this.#bySession.get(sessionId);
    if (!perSession) {
      perSession = { tallies: new Map(), last: undefined };
      this.#bySession.set(sessionId, perSession);
    }
    // The same object as the session's last read (a poll): no key to build and hash.
    let tally = perSession.last;
    if (tally === undefined || tally.kind !== kind || !sameIdentity(tally, action)) {
      const key = kind === 'request' ? readKey(action) : `n\u0000${readKey(action)}`;
      tally = perSession.tallies.get(key);
      if (!tally) {
        const object = identityOf(action);
        tally = { target: action.target, verb: action.verb, object, kind, count: 0, firstMs: nowMs, lastMs: nowMs, fields: primitiveFields(object) };
        perSession.tallies.set(key, tally);
      }
      perSession.last = tally;
    }
    tally.count += count;
    tally.lastMs = nowMs;
  }

  /** Takes (and forgets) what one session gathered. */
  take(sessionId: string): ReadAggregate[] {
    const perSession = this.#bySession.get(sessionId);
    this.#bySession.delete(sessionId);
    if (!perSession) return [];
    return [...perSession.tallies.values()].map((t) => ({
      target: t.target,
      verb: t.verb,
      object: t.object,
      ...(t.kind === 'notification' ? { kind: 'notification' as const } : {}),
      count: t.count,
      first: new Date(t.firstMs).toISOString(),
      last: new Date(t.lastMs).toISOString(),
    }));
  }

  sessions(): string[] {
    return [...this.#bySession.keys()];
  }
}
