// Connections held per key (a source address, a uid), each key bounded: one peer cannot take every
// slot of a listener and lock the others out by holding idle connections. Used by the pull API (per
// source) and the admin socket (per uid).

export class PerKeyLimit<K> {
  readonly #limit: number;
  readonly #open = new Map<K, number>();

  constructor(limitPerKey: number) {
    this.#limit = limitPerKey;
  }

  /** Counts a new connection; false (and nothing counted) when its key already holds the limit. */
  admit(key: K): boolean {
    const n = this.#open.get(key) ?? 0;
    if (n >= this.#limit) return false;
    this.#open.set(key, n + 1);
    return true;
  }

  release(key: K): void {
    const n = (this.#open.get(key) ?? 0) - 1;
    if (n > 0) this.#open.set(key, n);
    else this.#open.delete(key);
  }

  held(key: K): number {
    return this.#open.get(key) ?? 0;
  }
}
