// Refusals policy never saw (failed logins, refused certificates) are journaled one by one up to a rate
// per listener — a login or connection flood must not become a journal flood — and beyond it they are
// counted, the count going with the next one journaled. Shared by every front door.
import type { Core, Refusal } from './core.ts';

export class RateLimitedRefusals {
  static readonly PER_WINDOW = 20;
  static readonly WINDOW_MS = 10_000;
  readonly #core: Core;
  readonly #listener: string;
  readonly #protocol: string;
  #windowStart = 0;
  #inWindow = 0;
  #suppressed = 0;

  constructor(core: Core, listener: string, protocol: string) {
    this.#core = core;
    this.#listener = listener;
    this.#protocol = protocol;
  }

  record(event: Refusal['event'], remote: string, principal: string | undefined, detail: Record<string, unknown>): void {
    const now = this.#core.clock.now();
    if (now - this.#windowStart >= RateLimitedRefusals.WINDOW_MS) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (++this.#inWindow > RateLimitedRefusals.PER_WINDOW) {
      this.#suppressed++;
      return;
    }
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
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
