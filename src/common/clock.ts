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

/** A clock tests set by hand. */
export class ManualClock implements Clock {
  #ms: number;
  #mono = 0n;

  constructor(startMs: number) {
    this.#ms = startMs;
  }

  now(): number {
    return this.#ms;
  }

  monotonic(): bigint {
    return this.#mono;
  }

  set(ms: number): void {
    if (ms > this.#ms) this.#mono += BigInt(ms - this.#ms) * 1_000_000n;
    this.#ms = ms;
  }

  advance(ms: number): void {
    this.set(this.#ms + ms);
  }
}
