// Admin requests that change nothing (status, lists, dry runs, and refusals of requests that never
// reached a state-changing handler) are not privileged actions: like reads at the front doors
// (core/reads.ts), they are counted per command, operator and outcome and journaled as one aggregate
// per interval. State-changing requests never pass through here; each is journaled on its own.
import type { AdminAuditEntry, Operator } from './types.ts';

/** More distinct keys than this in one interval (unknown command names are free text): flush early. */
export const MAX_READ_AUDIT_KEYS = 256;

interface Tally {
  command: string;
  operator: Operator;
  ok: boolean;
  error?: string;
  count: number;
  firstMs: number;
  lastMs: number;
}

export class ReadOnlyAudit {
  readonly #tallies = new Map<string, Tally>();

  /** Count one request; true when the number of keys reached the bound and the caller should flush. */
  add(entry: Pick<AdminAuditEntry, 'command' | 'operator' | 'ok' | 'error'>, nowMs: number): boolean {
    const { command, operator, ok, error } = entry;
    const key = JSON.stringify([command, operator.uid, operator.verified, ok, error ?? null]);
    const tally = this.#tallies.get(key);
    if (tally) {
      tally.count++;
      tally.lastMs = nowMs;
    } else {
      this.#tallies.set(key, { command, operator, ok, ...(error !== undefined ? { error } : {}), count: 1, firstMs: nowMs, lastMs: nowMs });
    }
    return this.#tallies.size >= MAX_READ_AUDIT_KEYS;
  }

  /** Takes (and forgets) what was counted, one audit entry per key. */
  take(): AdminAuditEntry[] {
    const out = [...this.#tallies.values()].map((t): AdminAuditEntry => ({
      command: t.command,
      operator: t.operator,
      params: undefined,
      ok: t.ok,
      ...(t.error !== undefined ? { error: t.error } : {}),
      phase: 'aggregate',
      count: t.count,
      first: new Date(t.firstMs).toISOString(),
      last: new Date(t.lastMs).toISOString(),
    }));
    this.#tallies.clear();
    return out;
  }

  get size(): number {
    return this.#tallies.size;
  }
}
