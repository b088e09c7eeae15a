// A token bucket on bytes for metered links: at most `bytesPerSecond` on average, bursts up to one
// second's worth. A message larger than the bucket waits for a full bucket and then goes (it may not be
// split): the average still holds.
import type { Scheduler, TimerHandle } from '../common/clock.ts';

export class ByteBucket {
  readonly #rate: number;
  readonly #clock: Scheduler;
  #tokens: number;
  #at: bigint;
  #timer: TimerHandle | undefined;
  #wake: (() => void) | undefined;

  constructor(bytesPerSecond: number, clock: Scheduler) {
    this.#rate = bytesPerSecond;
    this.#clock = clock;
    this.#tokens = bytesPerSecond;
    this.#at = clock.monotonic();
  }

  #refill(): void {
    const now = this.#clock.monotonic();
    this.#tokens = Math.min(this.#rate, this.#tokens + (Number(now - this.#at) / 1e9) * this.#rate);
    this.#at = now;
  }

  /** Resolves once `bytes` may be sent (false when cancelled first). */
  async take(bytes: number): Promise<boolean> {
    for (;;) {
      this.#refill();
      const need = Math.min(bytes, this.#rate);
      if (this.#tokens >= need) {
        this.#tokens -= bytes;
        return true;
      }
      const waitMs = Math.ceil(((need - this.#tokens) / this.#rate) * 1000);
      const ok = await new Promise<boolean>((resolve) => {
        this.#wake = () => resolve(false);
        this.#timer = this.#clock.setTimeout(() => {
          this.#wake = undefined;
          resolve(true);
        }, waitMs);
      });
      this.#timer = undefined;
      if (!ok) return false;
    }
  }

  /** Ends a wait in progress (closing, or leaving a window). */
  cancel(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
