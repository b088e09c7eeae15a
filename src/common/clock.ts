// Time is injected everywhere it decides something (windows, expiry, time-outs), so tests can
// move it without sleeping.
export interface Clock {
  /** Wall time, milliseconds since the Unix epoch. */
  now(): number;
  /** Monotonic time in nanoseconds (process.hrtime.bigint in production). */
  monotonic(): bigint;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => process.hrtime.bigint(),
};

/** A pending timer; unref() lets the process exit while it waits (a no-op for a ManualClock). */
export interface TimerHandle {
  unref(): unknown;
}

/** A clock that also runs timers: what code that times out or backs off needs. */
export interface Scheduler extends Clock {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(timer: TimerHandle | undefined): void;
}

export const systemScheduler: Scheduler = {
  ...systemClock,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
};

interface ManualTimer extends TimerHandle {
  /** Monotonic nanoseconds. */
  readonly due: bigint;
  readonly seq: number;
  readonly fn: () => void;
}

/** A clock tests set by hand. Its timers fire only when set() or advance() moves time past them. */
export class ManualClock implements Scheduler {
  #ms: number;
  #mono = 0n;
  #timers = new Set<ManualTimer>();
  #seq = 0;

  constructor(startMs: number) {
    this.#ms = startMs;
  }

  now(): number {
    return this.#ms;
  }

  monotonic(): bigint {
    return this.#mono;
  }

  // Timers run on monotonic time, as Node's do: setting the wall clock back delays none of them.
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: ManualTimer = { due: this.#mono + BigInt(Math.max(0, Math.ceil(ms))) * 1_000_000n, seq: this.#seq++, fn, unref: () => timer };
    this.#timers.add(timer);
    return timer;
  }

  clearTimeout(timer: TimerHandle | undefined): void {
    if (timer) this.#timers.delete(timer as ManualTimer);
  }

  /** Timers not yet fired. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /**
   * Move wall time to `ms`. Moving forward fires the timers that fall due, in order of due time (then of
   * creation), each with the clock at its due time; timers they set that fall due by `ms` fire too.
   */
  set(ms: number): void {
    const end = this.#mono + (ms > this.#ms ? BigInt(ms - this.#ms) * 1_000_000n : 0n);
    for (;;) {
      let next: ManualTimer | undefined;
      for (const t of this.#timers) if (t.due <= end && (!next || t.due < next.due || (t.due === next.due && t.seq < next.seq))) next = t;
      if (!next) break;
      this.#timers.delete(next);
      if (next.due > this.#mono) this.#moveTo(this.#ms + Number((next.due - this.#mono) / 1_000_000n));
      next.fn();
    }
    this.#moveTo(ms);
  }

  advance(ms: number): void {
    this.set(this.#ms + ms);
  }

  #moveTo(ms: number): void {
    if (ms > this.#ms) this.#mono += BigInt(ms - this.#ms) * 1_000_000n;
    this.#ms = ms;
  }
}
