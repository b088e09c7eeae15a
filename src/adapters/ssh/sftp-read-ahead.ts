// Downloads through the SFTP proxy, the parts that need no SFTP: reading a file ahead of the client, and
// hashing what the client was sent in file order whatever order its READs were answered in.
//
// ReadAhead: a client reading a file in order is served from upstream reads already in flight (`depth`
// reads of `chunk` bytes each past the furthest byte asked for), so the target's round trips overlap
// instead of adding up. Chunks held at once are bounded per channel (AheadBudget, shared by all the
// channel's files); past the bound, or when the client jumps about, reads go straight to the target.
// Never more than `size` bytes are read: the size that was decided on when the file was opened.
//
// InOrderHash: a SHA-256 over the bytes sent, in file order. Answers may be sent out of order (64 READs
// in flight); an answer past the hashed prefix waits (copied) until the gap before it is filled. A
// client reading at random would make that wait unbounded: past `maxPendingChunks` or `maxPendingBytes`
// the hash gives up, and the outcome says how far it got.
import { createHash, type Hash } from 'node:crypto';
import { SFTP_MAX_READ_WRITE } from './sftp-limits.ts';

/** Reads `length` bytes at `offset` from the target: fewer at end of file, an Error on failure. */
export type RangeReader<E extends Error = Error> = (offset: number, length: number) => Promise<Buffer | E>;

/**
 * Size of one upstream read-ahead request: OpenSSH's sftp-server limit of 255 KiB per READ, which is
 * also what OpenSSH's client asks of Penstock (sftp-limits.ts): each of its READs is then one chunk,
 * answered without a copy.
 */
export const AHEAD_CHUNK = SFTP_MAX_READ_WRITE;
/** Read-ahead requests kept in flight beyond the furthest byte the client asked for (2 MiB: the upstream channel's window). */
export const AHEAD_DEPTH = 8;
/** Read-ahead chunks held at once on one SFTP channel, over all its files (8 MiB). */
export const MAX_AHEAD_CHUNKS = 32;
/** Out-of-order answers held for hashing before the hash gives up (a client reading at random). */
export const MAX_PENDING_CHUNKS = 512;
/** The same bound in bytes (512 answers of 256 KiB would be 128 MiB). */
export const MAX_PENDING_BYTES = 16 * 1024 * 1024;

/** How many read-ahead chunks one channel may hold; each ReadAhead takes and returns from it. */
export class AheadBudget {
  #held = 0;
  readonly max: number;
  constructor(max = MAX_AHEAD_CHUNKS) {
    this.max = max;
  }
  get held(): number {
    return this.#held;
  }
  take(): boolean {
    if (this.#held >= this.max) return false;
    this.#held++;
    return true;
  }
  give(): void {
    this.#held--;
  }
}

/**
 * Bytes taken and given back, handed out in arrival order: a taker waits until what it asks fits
 * under `max`, or until nothing else is held (one request larger than `max` still goes, alone).
 */
export class ByteBudget {
  #held = 0;
  readonly #waiting: { bytes: number; go: () => void }[] = [];
  readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  get held(): number {
    return this.#held;
  }
  take(bytes: number): Promise<void> {
    if (this.#waiting.length === 0 && this.#fits(bytes)) {
      this.#held += bytes;
      return Promise.resolve();
    }
    return new Promise((go) => this.#waiting.push({ bytes, go }));
  }
  give(bytes: number): void {
    this.#held -= bytes;
    while (this.#waiting.length > 0 && this.#fits(this.#waiting[0]!.bytes)) {
      const w = this.#waiting.shift()!;
      this.#held += w.bytes;
      w.go();
    }
  }
  #fits(bytes: number): boolean {
    return this.#held === 0 || this.#held + bytes <= this.max;
  }
}

interface AheadChunk<E extends Error> {
  length: number;
  served: number;
  data: Promise<Buffer | E>;
}

/** Upstream reads of [base, next) in `chunk` pieces aligned on `base`; served ones are dropped. */
interface Window<E extends Error> {
  base: number;
  next: number;
  chunks: Map<number, AheadChunk<E>>;
}

export class ReadAhead<E extends Error = Error> {
  readonly #read: RangeReader<E>;
  readonly #size: number;
  readonly #budget: AheadBudget;
  readonly #chunk: number;
  readonly #depth: number;
  /** End of the last range served: a read starting here continues in order. */
  #servedTo = 0;
  #window: Window<E> | undefined;

  constructor(read: RangeReader<E>, size: number, budget: AheadBudget, opts: { chunk?: number; depth?: number } = {}) {
    this.#read = read;
    this.#size = size;
    this.#budget = budget;
    this.#chunk = opts.chunk ?? AHEAD_CHUNK;
    this.#depth = opts.depth ?? AHEAD_DEPTH;
  }

  /** Chunks this file holds now (requested or read, not yet served). */
  get held(): number {
    return this.#window?.chunks.size ?? 0;
  }

  /**
   * [offset, offset + length) of the file, cut at the decided size: an empty buffer at or past it. In
   * order, from read-ahead; otherwise straight from the target. A failure after some bytes were read
   * answers those bytes (the client asks again from there and gets the error then).
   */
  async read(offset: number, length: number): Promise<Buffer | E> {
    if (offset >= this.#size) return Buffer.alloc(0);
    const len = Math.min(length, this.#size - offset);
    const data = await (this.#inOrder(offset) ? this.#fromWindow(offset, len) : this.#read(offset, len));
    if (!(data instanceof Error)) this.#servedTo = offset + data.length;
    return data;
  }

  /** Drop every chunk held (the file is closed, or the client moved elsewhere). */
  drop(): void {
    const w = this.#window;
    if (!w) return;
    for (const at of [...w.chunks.keys()]) this.#dropChunk(w, at);
    this.#window = undefined;
  }

  #inOrder(offset: number): boolean {
    const w = this.#window;
    if (w && offset >= w.base && offset <= w.next) return true;
    if (offset !== this.#servedTo) return false;
    this.drop();
    this.#window = { base: offset, next: offset, chunks: new Map() };
    return true;
  }

  async #fromWindow(offset: number, len: number): Promise<Buffer | E> {
    const w = this.#window!;
    const end = offset + len;
    const span = this.#depth * this.#chunk;
    // Keep `depth` chunks requested past what the client asked for, within the channel's budget.
    const want = Math.min(this.#size, end + span);
    while (w.next < want && this.#budget.take()) {
      const length = Math.min(this.#chunk, this.#size - w.next);
      w.chunks.set(w.next, { length, served: 0, data: this.#read(w.next, length) });
      w.next += length;
    }
    const parts: Buffer[] = [];
    let pos = offset;
    while (pos < end) {
      const start = w.base + Math.floor((pos - w.base) / this.#chunk) * this.#chunk;
      const chunk = w.chunks.get(start);
      // Beyond the budget, or a chunk already served and dropped: ask the target directly.
      const data = chunk ? await chunk.data : await this.#read(pos, end - pos);
      if (data instanceof Error) return parts.length > 0 ? Buffer.concat(parts) : data;
      const base = chunk ? start : pos;
      const piece = data.subarray(pos - base, Math.min(data.length, end - base));
      if (piece.length === 0) break; // the file is shorter than it was: end of file
      parts.push(piece);
      pos += piece.length;
      if (chunk) {
        chunk.served += piece.length;
        if (chunk.served >= data.length) this.#dropChunk(w, start);
      }
      if (base + data.length < (chunk ? start + chunk.length : end)) break; // a short read: end of file
    }
    // Chunks the client skipped over (it moved on past them) are dropped too.
    for (const [at, c] of w.chunks) if (at + c.length <= offset - span) this.#dropChunk(w, at);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  #dropChunk(w: Window<E>, at: number): void {
    if (w.chunks.delete(at)) this.#budget.give();
  }
}

export class InOrderHash {
  #hash: Hash | undefined = createHash('sha256');
  #upTo = 0;
  readonly #pending = new Map<number, Buffer>();
  #pendingBytes = 0;
  readonly #maxChunks: number;
  readonly #maxBytes: number;

  constructor(limits: { maxPendingChunks?: number; maxPendingBytes?: number } = {}) {
    this.#maxChunks = limits.maxPendingChunks ?? MAX_PENDING_CHUNKS;
    this.#maxBytes = limits.maxPendingBytes ?? MAX_PENDING_BYTES;
  }

  /** Bytes hashed so far: the file's prefix [0, hashedUpTo) as sent. */
  get hashedUpTo(): number {
    return this.#upTo;
  }

  /** False once answers came too scattered to hash in order. */
  get hashing(): boolean {
    return this.#hash !== undefined;
  }

  /** Bytes held out of order, waiting for the gap before them. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** `data` was sent to the client as the bytes at `offset`. */
  add(offset: number, data: Buffer): void {
    if (!this.#hash || offset + data.length <= this.#upTo || data.length === 0) return;
    if (offset > this.#upTo) {
      this.#pending.set(offset, Buffer.from(data));
      this.#pendingBytes += data.length;
      if (this.#pending.size > this.#maxChunks || this.#pendingBytes > this.#maxBytes) this.#giveUp();
      return;
    }
    this.#extend(offset, data);
    this.#drain();
  }

  /** The hex SHA-256 of the prefix hashed (the whole file when hashedUpTo is its size); once only. */
  digest(): string | undefined {
    const h = this.#hash;
    this.#hash = undefined;
    this.#pending.clear();
    this.#pendingBytes = 0;
    return h?.digest('hex');
  }

  #extend(offset: number, data: Buffer): void {
    this.#hash!.update(data.subarray(this.#upTo - offset));
    this.#upTo = offset + data.length;
  }

  /** Hash the held answers the prefix now reaches (one may overlap it: only its new bytes count). */
  #drain(): void {
    for (;;) {
      let next: number | undefined;
      for (const [at, d] of this.#pending) {
        if (at > this.#upTo) continue;
        if (at + d.length <= this.#upTo) this.#forget(at, d);
        else next = at;
      }
      if (next === undefined) return;
      const d = this.#pending.get(next)!;
      this.#forget(next, d);
      this.#extend(next, d);
    }
  }

  #forget(at: number, d: Buffer): void {
    this.#pending.delete(at);
    this.#pendingBytes -= d.length;
  }

  #giveUp(): void {
    this.#hash = undefined;
    this.#pending.clear();
    this.#pendingBytes = 0;
  }
}
