// Refusals policy never saw (failed logins, refused certificates, malformed frames) are journaled one by
// one up to a rate per listener and kind — a login or connection flood must not become a journal flood —
// and beyond it they are counted, the count going with the next one of that kind journaled. The kind is
// the event and its reason code: a flood of one kind (wrong keys) cannot use up the budget of another
// (the rate limit that flood triggers, or an unrelated refusal), so the event an operator most needs is
// never the one suppressed. The journal stays bounded: reasons are a small fixed set of codes.
// Shared by every front door.
import type { Core, Refusal } from './core.ts';

interface Window {
  start: number;
  count: number;
  suppressed: number;
}

export class RateLimitedRefusals {
  static readonly PER_WINDOW = 20;
  static readonly WINDOW_MS = 10_000;
  /** Kinds tracked at once; beyond it the oldest is forgotten (reasons are codes, so this is never reached in practice). */
  static readonly KINDS = 64;
  readonly #core: Core;
  readonly #listener: string;
  readonly #protocol: string;
  readonly #windows = new Map<string, Window>();

  constructor(core: Core, listener: string, protocol: string) {
    this.#core = core;
    this.#listener = listener;
    this.#protocol = protocol;
  }

  record(event: Refusal['event'], remote: string, principal: string | undefined, detail: Record<string, unknown>): void {
    const now = this.#core.clock.now();
    const kind = `${event}\u0000${typeof detail.reason === 'string' ? detail.reason : ''}`;
    let w = this.#windows.get(kind);
    if (!w) {
      if (this.#windows.size >= RateLimitedRefusals.KINDS) this.#windows.delete(this.#windows.keys().next().value!);
      this.#windows.set(kind, (w = { start: now, count: 0, suppressed: 0 }));
    }
    if (now - w.start >= RateLimitedRefusals.WINDOW_MS) {
      w.start = now;
      w.count = 0;
    }
    if (++w.count > RateLimitedRefusals.PER_WINDOW) {
      w.suppressed++;
      return;
    }
    const suppressed = w.suppressed;
    w.suppressed = 0;
    this.#core.log.warn({ listener: this.#listener, remote, event, reason: detail.reason }, `${this.#protocol} ${event}`);
    void this.#core.recordRefusal({
      event,
      listener: this.#listener,
      remote,
      ...(principal ? { principal } : {}),
      detail: { protocol: this.#protocol, ...detail, ...(suppressed ? { suppressed_since_last: suppressed } : {}) },
    });
  }

  /** A failed login: the reason, and a principal when the detail names one. */
  authFailed(remote: string, reason: string, detail: Record<string, unknown> = {}): void {
    const principal = typeof detail.principal === 'string' ? detail.principal : undefined;
    this.record('auth.failed', remote, principal, { reason, ...detail });
  }
}
