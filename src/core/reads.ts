// Read evidence is aggregated per session (design.md: "Read evidence may be aggregated per session —
// counts per object per interval"); writes, calls, execs and denials are journaled one by one.
// The aggregator knows no protocol: an object's identity is its fields minus any values.
import type { Action } from '../policy/types.ts';

export interface ReadAggregate {
  target: string;
  verb: string;
  object: Record<string, unknown>;
  count: number;
  first: string;
  last: string;
}

export class ReadAggregator {
  // session id → object key → aggregate
  readonly #bySession = new Map<string, Map<string, ReadAggregate>>();

  add(sessionId: string, action: Action, nowMs: number): void {
    const { values: _values, value: _value, ...object } = action.object as unknown as Record<string, unknown>;
    const key = `${action.target}\u0000${action.verb}\u0000${JSON.stringify(object)}`;
    let perSession = this.#bySession.get(sessionId);
    if (!perSession) {
      perSession = new Map();
      this.#bySession.set(sessionId, perSession);
    }
    const at = new Date(nowMs).toISOString();
    const agg = perSession.get(key);
    if (agg) {
      agg.count++;
      agg.last = at;
    } else {
      perSession.set(key, { target: action.target, verb: action.verb, object, count: 1, first: at, last: at });
    }
  }

  /** Takes (and forgets) what one session gathered. */
  take(sessionId: string): ReadAggregate[] {
    const perSession = this.#bySession.get(sessionId);
    this.#bySession.delete(sessionId);
    return perSession ? [...perSession.values()] : [];
  }

  sessions(): string[] {
    return [...this.#bySession.keys()];
  }
}
