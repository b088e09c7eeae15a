// The evidence journal: LMDB, append-only, a Merkle tree over the events, signed checkpoints.
//
// Write path. `append` prepares the event at once (name, fields, time, no secrets) and queues it; one
// flush per event-loop turn numbers the queued events, hashes them, extends the tree and commits events,
// new tree nodes, the state record and (when due) a signed checkpoint in ONE synchronous LMDB
// transaction (overlappingSync off, so commit returns after fsync). Only then are the appends resolved.
// A failed commit is aborted by LMDB as a whole, and the in-memory tree and state are replaced only after
// success: a failure leaves no trace and no gap. Concurrent appends share one commit.
//
// Fail closed. A failed commit (disk full, capacity reached, I/O error) rejects the batch with
// PenstockError('PS_JOURNAL_UNAVAILABLE'), sets health().writable = false and raises onAlert('unavailable').
// A timer probes every second (and every append is itself a probe); the first successful write raises
// onAlert('recovered') and journals an 'alert.journal_recovered' event.
//
// Capacity. lmdb-js grows its memory map on demand (its build of LMDB never returns MDB_MAP_FULL), so
// `mapSizeMiB` is enforced here as the journal's capacity: the bytes it stores (event bodies, 32 bytes per
// tree node, checkpoint notes and cosignatures) may not exceed it. The LMDB file is larger by LMDB's page
// overhead. A full filesystem fails the commit itself (ENOSPC) and is handled the same way.
//
// Retention. `prune` removes event bodies (oldest first) only up to the acknowledged cursor. Tree nodes
// (leaf hashes and perfect-subtree hashes, ~64 bytes per event) are kept forever, so roots, inclusion
// proofs for retained events and consistency proofs between any checkpoints stay available.
//
// LMDB layout: db 'events' seq → canonical JSON (UTF-8); 'nodes' level*2^40+index → 32-byte hash
// (perfect aligned subtrees, level 0 = leaf hashes); 'checkpoints' size → CheckpointRecord;
// 'cosignatures' [size, sha256(note)] → note; 'meta' 'state' → JournalState.
import { statfsSync, mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import { PenstockError, isPenstockError } from '../common/errors.ts';
import type { Clock } from '../common/clock.ts';
import type { AppendOptions, Journal, JournalEventInput, JournalHealth, JournalReceipt } from './types.ts';
import { encodeEvent, prepareEvent, type PreparedEvent } from './event.ts';
import {
  TreeBuilder,
  consistencyProof as merkleConsistency,
  frontierAt,
  inclusionProof as merkleInclusion,
  rootAt as merkleRootAt,
  verifyConsistency,
  type Hash,
  type NodeSource,
} from './merkle.ts';
import { NoteSigner, parseCheckpointBody, parseNote, verifyCheckpoint, NoteError } from './checkpoint.ts';
import { canonicalJson } from './canonical.ts';
import type { ProofBundle } from './verify.ts';
import { encodeAndLeafHash, fastLeafHash, fastNodeHash } from './fast-hash.ts';

export interface LmdbJournalOptions {
  /** Directory of the LMDB environment (created if missing). */
  path: string;
  /** Journal capacity in MiB (see "Capacity" above). */
  mapSizeMiB: number;
  /** Appliance id; also the checkpoint origin and signing key name, e.g. `penstock/gw-plant1-01`. */
  appliance: string;
  /** Ed25519 private key, PKCS#8 PEM. */
  signingKeyPem: string;
  clock: Clock;
  /** Sign a checkpoint when this many events were added since the last one. */
  checkpointEvery: number;
  /** ...or when this many seconds passed and there are new events. */
  checkpointSeconds: number;
  log?: Logger;
  onAlert?: (a: { kind: 'unavailable' | 'recovered'; reason: string }) => void;
  /** How often to probe for recovery while unavailable (default 1000 ms). */
  probeMs?: number;
}

export interface CheckpointInfo {
  size: number;
  /** Base64 root hash. */
  rootHash: string;
  /** The signed note (C2SP tlog-checkpoint). */
  note: string;
  /** Wall time it was signed, ISO 8601. */
  time: string;
}

export type VerifyResult = { ok: true; size: number } | { ok: false; seq: number; problem: string };

interface JournalState {
  /** Number of events ever appended (next seq). */
  size: number;
  /** Lowest seq whose body is still stored. */
  first: number;
  eventBytes: number;
  /** Tree nodes, checkpoint notes and cosignatures. */
  otherBytes: number;
  /** Highest seq upstream acknowledged, -1 for none. */
  ack: number;
  ackBy?: string;
  lastCheckpointSize: number;
}

interface Pending {
  prepared: PreparedEvent;
  resolve: (r: JournalReceipt) => void;
  reject: (e: unknown) => void;
}

const MiB = 1024 * 1024;
const LEVEL_STRIDE = 2 ** 40;
const NODE_BYTES = 32;
const MAX_BATCH = 10_000;
/** The longest a lazy append waits for a commit to ride with before it asks for its own. */
const LAZY_COMMIT_MS = 5;
const STATE_KEY = 'state';
const DISK_FREE_TTL_MS = 1000;

function nodeKey(level: number, index: number): number {
  return level * LEVEL_STRIDE + index;
}

function b64(h: Uint8Array): string {
  return Buffer.from(h).toString('base64');
}

class CapacityError extends Error {}

export class LmdbJournal implements Journal {
  readonly #opts: LmdbJournalOptions;
  readonly #signer: NoteSigner;
  readonly #capacity: number;
  #env: RootDatabase;
  #events!: Database<Buffer, number>;
  #nodes!: Database<Buffer, number>;
  #checkpoints!: Database<CheckpointInfo, number>;
  #cosigs!: Database<string, [number, string]>;
  #meta!: Database<JournalState, string>;
  #state: JournalState;
  #tree: TreeBuilder;
  #pending: Pending[] = [];
  #flushScheduled = false;
  #lazyTimer: NodeJS.Timeout | undefined;
  #writable = true;
  #failure: string | undefined;
  #failedSince: string | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #checkpointTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #diskFreeCache: { at: number; bytes: number } | undefined;
  /** The newest checkpoint record, kept in memory (read on every health() call). */
  #latestCheckpoint: CheckpointInfo | undefined | null = null;
  readonly #nodeSource: NodeSource;

  private constructor(opts: LmdbJournalOptions, env: RootDatabase) {
    this.#opts = opts;
    this.#signer = new NoteSigner(opts.appliance, opts.signingKeyPem);
    this.#capacity = opts.mapSizeMiB * MiB;
    this.#env = env;
    this.#openDbs();
    this.#state = this.#meta.get(STATE_KEY) ?? { size: 0, first: 0, eventBytes: 0, otherBytes: 0, ack: -1, lastCheckpointSize: 0 };
    this.#nodeSource = { node: (level, index) => this.#node(level, index) };
    this.#tree = new TreeBuilder(this.#state.size, frontierAt(this.#nodeSource, this.#state.size), fastNodeHash);
  }

  /** Opens (or creates) the journal. Throws PS_JOURNAL_CORRUPT when the stored state does not add up. */
  static async open(opts: LmdbJournalOptions): Promise<LmdbJournal> {
    if (!(opts.checkpointEvery >= 1) || !(opts.checkpointSeconds > 0) || !(opts.mapSizeMiB > 0)) {
      throw new PenstockError('PS_INTERNAL', 'journal options: checkpointEvery, checkpointSeconds and mapSizeMiB must be positive');
    }
    mkdirSync(opts.path, { recursive: true, mode: 0o700 });
    const journal = new LmdbJournal(opts, LmdbJournal.#openEnv(opts));
    journal.#checkAtOpen();
    const timer = setInterval(() => journal.#checkpointIfDue(), opts.checkpointSeconds * 1000);
    timer.unref();
    journal.#checkpointTimer = timer;
    return journal;
  }

  static #openEnv(opts: LmdbJournalOptions): RootDatabase {
    // overlappingSync off: a synchronous commit returns only after LMDB's fsync, which is what
    // `append` promises. (With it on, env.flushed does not cover synchronous transactions.)
    return openLmdb({ path: opts.path, mapSize: Math.min(opts.mapSizeMiB, 64) * MiB, maxDbs: 8, overlappingSync: false });
  }

  #openDbs(): void {
    this.#events = this.#env.openDB<Buffer, number>({ name: 'events', encoding: 'binary' });
    this.#nodes = this.#env.openDB<Buffer, number>({ name: 'nodes', encoding: 'binary' });
    this.#checkpoints = this.#env.openDB<CheckpointInfo, number>({ name: 'checkpoints', encoding: 'msgpack' });
    this.#cosigs = this.#env.openDB<string, [number, string]>({ name: 'cosignatures', encoding: 'string' });
    this.#meta = this.#env.openDB<JournalState, string>({ name: 'meta', encoding: 'msgpack' });
  }

  #checkAtOpen(): void {
    const { size, first } = this.#state;
    if (size > first) {
      const last = Array.from(this.#events.getKeys({ reverse: true, limit: 1 }))[0];
      if (last !== size - 1) {
        const missing = last === undefined ? first : last + 1;
        throw new PenstockError('PS_JOURNAL_CORRUPT', `seq ${missing}: event missing (journal state says ${size} events, the last stored is ${String(last)}): truncated`, { seq: missing });
      }
    }
    const cp = this.latestCheckpoint();
    if (cp && cp.size > size) throw new PenstockError('PS_JOURNAL_CORRUPT', `checkpoint at size ${cp.size} is ahead of the journal (${size})`);
  }

  #node(level: number, index: number): Hash {
    const v = this.#nodes.getBinary(nodeKey(level, index));
    if (!v) throw new PenstockError('PS_JOURNAL_CORRUPT', `tree node level ${level} index ${index} is missing`);
    return new Uint8Array(v);
  }

  // ---------------------------------------------------------------- writing

  /**
   * Resolves when the event is durably committed; rejects with PS_JOURNAL_UNAVAILABLE when it cannot be.
   * `lazy`: the event gates nothing (an outcome, a session record), so it does not ask for a commit of
   * its own: it rides with the next one, or is committed within LAZY_COMMIT_MS. This halves the fsyncs
   * of a write (allowed before forwarding, outcome after) without delaying anything that gates an action.
   */
  append(input: JournalEventInput, options?: AppendOptions): Promise<JournalReceipt> {
    if (this.#closed) return Promise.reject(new PenstockError('PS_JOURNAL_UNAVAILABLE', 'journal is closed'));
    let prepared: PreparedEvent;
    try {
      prepared = prepareEvent(input, this.#opts.appliance, this.#opts.clock);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#pending.push({ prepared, resolve, reject });
      if (options?.lazy) this.#scheduleLazyFlush();
      else this.#scheduleFlush();
    });
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  #scheduleLazyFlush(): void {
    if (this.#flushScheduled || this.#lazyTimer) return;
    this.#lazyTimer = setTimeout(() => {
      this.#lazyTimer = undefined;
      this.#flush();
    }, LAZY_COMMIT_MS);
  }

  #flush(): void {
    if (this.#lazyTimer) {
      clearTimeout(this.#lazyTimer);
      this.#lazyTimer = undefined;
    }
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, MAX_BATCH);
      this.#commitBatch(batch);
    }
  }

  #commitBatch(batch: Pending[]): void {
    const state = { ...this.#state };
    const tree = this.#tree.clone();
    const events: [number, Buffer][] = [];
    const nodes: [number, Uint8Array][] = [];
    for (const item of batch) {
      const seq = state.size++;
      const { bytes, leaf } = encodeAndLeafHash(encodeEvent(item.prepared, seq));
      events.push([seq, bytes]);
      state.eventBytes += bytes.length;
      tree.push(leaf, (level, index, hash) => nodes.push([nodeKey(level, index), hash]));
    }
    state.otherBytes += nodes.length * NODE_BYTES;
    const checkpoint = state.size - state.lastCheckpointSize >= this.#opts.checkpointEvery ? this.#makeCheckpoint(state, tree) : undefined;
    try {
      this.#checkCapacity(state);
      this.#env.transactionSync(() => {
        for (const [seq, bytes] of events) this.#events.putSync(seq, bytes);
        for (const [key, hash] of nodes) this.#nodes.putSync(key, hash as Buffer);
        if (checkpoint) this.#checkpoints.putSync(checkpoint.size, checkpoint);
        this.#meta.putSync(STATE_KEY, state);
      });
    } catch (err) {
      const error = this.#failed(err);
      for (const item of batch) item.reject(error);
      return;
    }
    this.#state = state;
    this.#tree = tree;
    if (checkpoint) this.#latestCheckpoint = checkpoint;
    this.#succeeded();
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve({ seq: events[i]![0] });
  }

  #makeCheckpoint(state: JournalState, tree: TreeBuilder): CheckpointInfo {
    const root = tree.root();
    const note = this.#signer.checkpoint(state.size, root);
    state.lastCheckpointSize = state.size;
    state.otherBytes += note.length;
    return { size: state.size, rootHash: b64(root), note, time: new Date(this.#opts.clock.now()).toISOString() };
  }

  #checkCapacity(state: JournalState): void {
    const used = state.eventBytes + state.otherBytes;
    if (used > this.#capacity) throw new CapacityError(`journal capacity reached (map size ${this.#opts.mapSizeMiB} MiB, ${used} bytes needed)`);
  }

  /** Runs one small write transaction; any failure marks the journal unavailable. */
  #writeSync(what: string, fn: (state: JournalState) => void): void {
    if (this.#closed) throw new PenstockError('PS_JOURNAL_UNAVAILABLE', 'journal is closed');
    const state = { ...this.#state };
    try {
      this.#env.transactionSync(() => {
        fn(state);
        this.#meta.putSync(STATE_KEY, state);
      });
    } catch (err) {
      if (isPenstockError(err)) throw err;
      throw this.#failed(err, what);
    }
    this.#state = state;
    this.#succeeded();
  }

  #failed(err: unknown, what = 'append'): PenstockError {
    const reason = describeFailure(err);
    this.#opts.log?.error({ err, reason, what }, 'journal write failed');
    if (this.#writable) {
      this.#writable = false;
      this.#failure = reason;
      this.#failedSince = new Date(this.#opts.clock.now()).toISOString();
      this.#opts.onAlert?.({ kind: 'unavailable', reason });
      this.#startProbing();
    }
    return new PenstockError('PS_JOURNAL_UNAVAILABLE', `journal cannot be written: ${reason}`, { reason }, { cause: err });
  }

  #succeeded(): void {
    if (this.#writable) return;
    const failure = this.#failure ?? 'unknown';
    const since = this.#failedSince;
    this.#writable = true;
    this.#failure = undefined;
    this.#failedSince = undefined;
    if (this.#probeTimer) clearInterval(this.#probeTimer);
    this.#probeTimer = undefined;
    this.#opts.log?.warn({ failure, since }, 'journal writable again');
    this.#opts.onAlert?.({ kind: 'recovered', reason: failure });
    // The gap in service is itself evidence.
    this.append({ event: 'alert.journal_recovered', detail: { failure, since } }).catch((err: unknown) => {
      this.#opts.log?.error({ err }, 'could not journal the recovery');
    });
  }

  #startProbing(): void {
    if (this.#probeTimer || this.#closed) return;
    this.#probeTimer = setInterval(() => this.probe(), this.#opts.probeMs ?? 1000);
    this.#probeTimer.unref();
  }

  /**
   * Tries a write now when the journal is unavailable; true when it is writable (again). The timer calls
   * this; so may an operator ("retry now").
   */
  probe(): boolean {
    if (this.#writable) return true;
    if (this.#closed) return false;
    try {
      this.#checkCapacity({ ...this.#state, otherBytes: this.#state.otherBytes + 64 * 1024 });
      this.#writeSync('probe', () => {});
    } catch (err) {
      if (err instanceof CapacityError) return false;
      if (isPenstockError(err, 'PS_JOURNAL_UNAVAILABLE') && this.#failure && /MDB_PANIC|fatal/i.test(this.#failure)) this.#reopen();
      return false;
    }
    return this.#writable;
  }

  /** After a fatal LMDB error the environment must be reopened before it writes again. */
  #reopen(): void {
    try {
      this.#env.close().catch(() => {});
      this.#env = LmdbJournal.#openEnv(this.#opts);
      this.#openDbs();
    } catch (err) {
      this.#opts.log?.error({ err }, 'journal reopen failed');
    }
  }

  /** Signs a checkpoint now if there are events since the last one; returns the latest checkpoint. */
  checkpoint(): CheckpointInfo | undefined {
    if (this.#state.size > this.#state.lastCheckpointSize) {
      let cp: CheckpointInfo | undefined;
      this.#writeSync('checkpoint', (state) => {
        cp = this.#makeCheckpoint(state, this.#tree);
        this.#checkpoints.putSync(cp.size, cp);
      });
      this.#latestCheckpoint = cp;
    }
    return this.latestCheckpoint();
  }

  #checkpointIfDue(): void {
    if (!this.#writable || this.#state.size === this.#state.lastCheckpointSize) return;
    try {
      this.checkpoint();
    } catch (err) {
      this.#opts.log?.error({ err }, 'timed checkpoint failed');
    }
  }

  /**
   * Records that upstream holds every event up to and including `seq` (monotonic: a lower seq is a no-op).
   * Retention never prunes above this cursor. Rejects PS_ADMIN_BAD_REQUEST for a seq not yet written.
   */
  async acknowledge(seq: number, by: string): Promise<void> {
    if (!Number.isSafeInteger(seq) || seq < 0 || seq >= this.#state.size) {
      throw new PenstockError('PS_ADMIN_BAD_REQUEST', `cannot acknowledge seq ${seq}: the journal holds 0..${this.#state.size - 1}`);
    }
    if (seq <= this.#state.ack) return;
    this.#writeSync('acknowledge', (state) => {
      state.ack = seq;
      state.ackBy = by;
    });
  }

  /** Highest acknowledged seq, -1 when nothing was acknowledged. */
  acknowledged(): number {
    return this.#state.ack;
  }

  /**
   * Removes event bodies, oldest first, while the journal is over `maxBytes` (total stored bytes) or the
   * oldest event is older than `maxAgeMs`, but never above the acknowledged cursor. Tree nodes stay.
   */
  prune(limits: { maxBytes?: number; maxAgeMs?: number }): { removed: number; first: number; bytes: number } {
    let removed = 0;
    const now = this.#opts.clock.now();
    const over = (s: JournalState, seq: number, body: Buffer): boolean => {
      if (limits.maxBytes !== undefined && s.eventBytes + s.otherBytes > limits.maxBytes) return true;
      if (limits.maxAgeMs !== undefined) {
        const time = Date.parse((JSON.parse(body.toString('utf8')) as { time: string }).time);
        if (!(now - time <= limits.maxAgeMs)) return true;
      }
      void seq;
      return false;
    };
    for (;;) {
      let chunk = 0;
      this.#writeSync('prune', (state) => {
        while (chunk < 10_000 && state.first <= state.ack) {
          const body = this.#events.getBinary(state.first);
          if (!body) throw new PenstockError('PS_JOURNAL_CORRUPT', `event ${state.first} is missing`);
          if (!over(state, state.first, body)) break;
          this.#events.removeSync(state.first);
          state.eventBytes -= body.length;
          state.first++;
          chunk++;
        }
      });
      removed += chunk;
      if (chunk < 10_000) break;
    }
    if (removed > 0 && !this.#writable) this.probe();
    return { removed, first: this.#state.first, bytes: this.#state.eventBytes + this.#state.otherBytes };
  }

  /**
   * Stores a witness's cosigned copy of one of our checkpoints. The note must parse and its body must be
   * byte-for-byte a checkpoint this journal issued; the witness key is not known here and is not checked.
   * Throws PS_ADMIN_BAD_REQUEST otherwise.
   */
  async addCosignature(noteText: string): Promise<{ size: number }> {
    let size: number;
    try {
      const note = parseNote(noteText);
      size = parseCheckpointBody(note.body).size;
      const ours = this.#checkpoints.get(size);
      if (!ours || parseNote(ours.note).body !== note.body) {
        throw new PenstockError('PS_ADMIN_BAD_REQUEST', `cosigned checkpoint (size ${size}) is not one this journal issued`);
      }
    } catch (err) {
      if (err instanceof NoteError) throw new PenstockError('PS_ADMIN_BAD_REQUEST', `cosignature note: ${err.message}`);
      throw err;
    }
    const id = createHash('sha256').update(noteText).digest('hex');
    this.#writeSync('cosignature', (state) => {
      if (this.#cosigs.get([size, id]) === undefined) state.otherBytes += noteText.length;
      this.#cosigs.putSync([size, id], noteText);
    });
    return { size };
  }

  /** Cosigned notes stored for a checkpoint size. */
  cosignatures(size: number): string[] {
    return Array.from(this.#cosigs.getRange({ start: [size], end: [size + 1] }), ({ value }) => value);
  }

  /** Flushes queued appends, signs a final checkpoint, closes LMDB. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    try {
      if (this.#writable) this.checkpoint();
    } catch (err) {
      this.#opts.log?.error({ err }, 'final checkpoint failed');
    }
    this.#closed = true;
    if (this.#probeTimer) clearInterval(this.#probeTimer);
    if (this.#checkpointTimer) clearInterval(this.#checkpointTimer);
    await this.#env.close();
  }

  // ---------------------------------------------------------------- reading (the API sync builds on)

  /** Cheap enough to call on every read: free disk space is sampled at most once a second. */
  health(): JournalHealth {
    const s = this.#state;
    const cp = this.latestCheckpoint();
    const diskFree = this.#diskFree();
    return {
      writable: this.#writable,
      ...(this.#failure === undefined ? {} : { failure: this.#failure }),
      size: s.size,
      bytes: s.eventBytes + s.otherBytes,
      freeBytes: Math.max(0, Math.min(diskFree, this.#capacity - s.eventBytes - s.otherBytes)),
      ...(cp ? { lastCheckpoint: { size: cp.size, rootHash: cp.rootHash, time: cp.time } } : {}),
      acknowledgedUpTo: s.ack,
    };
  }

  #diskFree(): number {
    const now = performance.now();
    if (this.#diskFreeCache && now - this.#diskFreeCache.at < DISK_FREE_TTL_MS) return this.#diskFreeCache.bytes;
    let bytes = Number.MAX_SAFE_INTEGER;
    try {
      const fs = statfsSync(this.#opts.path);
      bytes = fs.bavail * fs.bsize;
    } catch {
      // keep the capacity bound alone
    }
    this.#diskFreeCache = { at: now, bytes };
    return bytes;
  }

  /** Number of events ever appended (the tree size). */
  size(): number {
    return this.#state.size;
  }

  /** Lowest seq whose event body is still stored (bodies below were pruned after acknowledgement). */
  firstRetained(): number {
    return this.#state.first;
  }

  /**
   * Up to `limit` events from `fromSeq` on, in order. Starts at firstRetained() when fromSeq was pruned:
   * callers compare the first returned seq with what they asked for.
   */
  readEvents(fromSeq: number, limit: number): { seq: number; bytes: string }[] {
    const start = Math.max(fromSeq, this.#state.first);
    return Array.from(this.#events.getRange({ start, end: this.#state.size, limit }), ({ key, value }) => ({ seq: key, bytes: value.toString('utf8') }));
  }

  /** The stored leaf hash of event `seq`. */
  leafHash(seq: number): Uint8Array {
    this.#checkSeq(seq, this.#state.size);
    return this.#node(0, seq);
  }

  /** Root hash of the tree of the first `size` events (any size up to size()). */
  rootAt(size: number): Uint8Array {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.#state.size) throw new PenstockError('PS_ADMIN_BAD_REQUEST', `no tree of size ${size} (journal size ${this.#state.size})`);
    return merkleRootAt(this.#nodeSource, size);
  }

  /** RFC 6962 audit path of event `seq` in the tree of `treeSize` events. */
  inclusionProof(seq: number, treeSize: number): Uint8Array[] {
    this.#checkSeq(seq, treeSize);
    if (treeSize > this.#state.size) throw new PenstockError('PS_ADMIN_BAD_REQUEST', `tree size ${treeSize} is beyond the journal (${this.#state.size})`);
    return merkleInclusion(this.#nodeSource, seq, treeSize);
  }

  /** RFC 6962 consistency proof from tree size oldSize to newSize. */
  consistencyProof(oldSize: number, newSize: number): Uint8Array[] {
    if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 0 || oldSize > newSize || newSize > this.#state.size) {
      throw new PenstockError('PS_ADMIN_BAD_REQUEST', `no consistency proof from ${oldSize} to ${newSize} (journal size ${this.#state.size})`);
    }
    return merkleConsistency(this.#nodeSource, oldSize, newSize);
  }

  /** Hashes of the maximal perfect subtrees of [0, size): what a verifier needs to check events from `size` on. */
  frontier(size: number): Uint8Array[] {
    this.rootAt(size);
    return frontierAt(this.#nodeSource, size);
  }

  #checkSeq(seq: number, treeSize: number): void {
    if (!Number.isSafeInteger(seq) || seq < 0 || seq >= treeSize || seq >= this.#state.size) {
      throw new PenstockError('PS_ADMIN_BAD_REQUEST', `no event ${seq} in a tree of size ${Math.min(treeSize, this.#state.size)}`);
    }
  }

  latestCheckpoint(): CheckpointInfo | undefined {
    if (this.#latestCheckpoint === null) {
      this.#latestCheckpoint = Array.from(this.#checkpoints.getRange({ reverse: true, limit: 1 }), ({ value }) => value)[0];
    }
    return this.#latestCheckpoint;
  }

  checkpointFor(size: number): CheckpointInfo | undefined {
    return this.#checkpoints.get(size);
  }

  /** Checkpoints in size order, optionally from a size on. */
  checkpoints(fromSize = 0): CheckpointInfo[] {
    return Array.from(this.#checkpoints.getRange({ start: fromSize }), ({ value }) => value);
  }

  /** The appliance's verifier key in signed-note vkey form: `name+hash+base64(0x01||pubkey)`. */
  publicKeyVkey(): string {
    return this.#signer.vkey;
  }

  /**
   * Writes events [fromSeq, toSeq] as JSON lines (the canonical event plus its `leaf_hash`, see verify.ts)
   * and returns the signed checkpoint that covers them (signing one first when needed), for verifyExport.
   */
  exportJsonLines(fromSeq: number, toSeq: number, write: (line: string) => void): { lines: number; first: number; checkpoint: string } {
    let cp = this.latestCheckpoint();
    if (!cp || cp.size < Math.min(toSeq + 1, this.#state.size)) cp = this.checkpoint();
    const end = Math.min(toSeq + 1, cp?.size ?? 0);
    let lines = 0;
    const first = Math.max(fromSeq, this.#state.first);
    for (const { key, value } of this.#events.getRange({ start: first, end })) {
      const event = JSON.parse(value.toString('utf8')) as Record<string, unknown>;
      write(`${canonicalJson({ ...event, leaf_hash: b64(this.#node(0, key)) })}\n`);
      lines++;
    }
    return { lines, first, checkpoint: cp?.note ?? '' };
  }

  /** An offline proof that event `seq` is in the journal: check it with verifyBundle (verify.ts). */
  proveBundle(seq: number): ProofBundle {
    this.#checkSeq(seq, this.#state.size);
    const body = this.#events.getBinary(seq);
    if (!body) throw new PenstockError('PS_ADMIN_BAD_REQUEST', `event ${seq} was pruned (first retained is ${this.#state.first})`);
    let cp = this.latestCheckpoint();
    if (!cp || cp.size <= seq) cp = this.checkpoint()!;
    return {
      format: 'penstock-proof-bundle/1',
      seq,
      event: body.toString('utf8'),
      treeSize: cp.size,
      inclusion: merkleInclusion(this.#nodeSource, seq, cp.size).map(b64),
      checkpoint: cp.note,
      vkey: this.#signer.vkey,
    };
  }

  /**
   * Recomputes everything and names the first bad spot: every retained event's hash against its stored
   * leaf, seq continuity, every perfect tree node, every checkpoint's signature and root, and consistency
   * between successive checkpoints (by proof where the bodies were pruned).
   */
  verifyAll(): VerifyResult {
    const { size, first } = this.#state;
    const vkey = this.#signer.vkey;
    const checkpoints = this.checkpoints();
    const bad = (seq: number, problem: string): VerifyResult => ({ ok: false, seq, problem });
    // Checkpoints first: signature and origin.
    for (const cp of checkpoints) {
      const v = verifyCheckpoint(cp.note, vkey);
      if (!v.ok) return bad(cp.size, `checkpoint at size ${cp.size}: ${v.problem}`);
      if (v.checkpoint.size !== cp.size || b64(v.checkpoint.rootHash) !== cp.rootHash) return bad(cp.size, `checkpoint at size ${cp.size}: stored record does not match its signed note`);
      if (cp.size > size) return bad(size, `checkpoint at size ${cp.size} is beyond the journal size ${size} (events lost or rolled back)`);
    }
    let tree: TreeBuilder;
    try {
      tree = new TreeBuilder(first, frontierAt(this.#nodeSource, first), fastNodeHash);
    } catch (err) {
      return bad(first, `tree nodes of the pruned prefix [0, ${first}) are missing: ${(err as Error).message}`);
    }
    // Checkpoints inside the pruned prefix: check by stored nodes and proof to the next checkpoint.
    let cpIndex = 0;
    while (cpIndex < checkpoints.length && checkpoints[cpIndex]!.size <= first) {
      const cp = checkpoints[cpIndex]!;
      try {
        if (b64(merkleRootAt(this.#nodeSource, cp.size)) !== cp.rootHash) return bad(cp.size, `checkpoint at size ${cp.size}: root does not match the stored tree`);
      } catch (err) {
        return bad(cp.size, `checkpoint at size ${cp.size}: ${(err as Error).message}`);
      }
      cpIndex++;
    }
    let expected = first;
    let problem: VerifyResult | undefined;
    // One range scan per tree level instead of a look-up per node: the nodes a push completes come in
    // index order on every level, starting at the node that holds leaf `first`.
    const levels: { next: () => IteratorResult<{ key: number; value: Buffer }> }[] = [];
    const levelScan = (level: number) => {
      const start = nodeKey(level, Math.floor(first / 2 ** level));
      return (levels[level] ??= this.#nodes.getRange({ start, end: nodeKey(level + 1, 0) })[Symbol.iterator]());
    };
    const check = (level: number, index: number, hash: Hash): void => {
      if (problem) return;
      const next = levelScan(level).next();
      const stored = !next.done && next.value.key === nodeKey(level, index) ? next.value.value : undefined;
      const seq = index * 2 ** level;
      if (!stored) problem = bad(seq, level === 0 ? `seq ${seq}: leaf hash missing` : `tree node level ${level} index ${index} missing`);
      else if (!stored.equals(hash)) {
        problem = bad(seq, level === 0 ? `seq ${seq}: event bytes do not match the stored leaf hash (event changed)` : `tree node level ${level} index ${index} (leaves from ${seq}) does not match the leaves below it`);
      }
    };
    for (const { key, value } of this.#events.getRange({ start: first })) {
      if (key !== expected) return bad(expected, key > expected ? `seq ${expected}: event missing (next stored is ${key})` : `unexpected key ${key}`);
      if (key >= size) return bad(key, `seq ${key}: event beyond the recorded journal size ${size}`);
      const seqInBody = seqOf(value, key);
      if (seqInBody !== key) return bad(key, `seq ${key}: event body says seq ${String(seqInBody)} (moved or reordered)`);
      tree.push(fastLeafHash(value), check);
      if (problem) return problem;
      expected++;
      while (cpIndex < checkpoints.length && checkpoints[cpIndex]!.size === expected) {
        const cp = checkpoints[cpIndex]!;
        if (b64(tree.root()) !== cp.rootHash) return bad(cp.size - 1, `checkpoint at size ${cp.size}: root of events 0..${cp.size - 1} does not match the signed root`);
        cpIndex++;
      }
    }
    if (expected !== size) return bad(expected, `seq ${expected}: event missing (journal size is ${size}, stored events end at ${expected - 1})`);
    if (cpIndex < checkpoints.length) return bad(checkpoints[cpIndex]!.size, `checkpoint at size ${checkpoints[cpIndex]!.size} was never reached`);
    // Successive checkpoints must be consistent (already implied above for retained ranges; proofs make it explicit).
    for (let i = 1; i < checkpoints.length; i++) {
      const a = checkpoints[i - 1]!;
      const b = checkpoints[i]!;
      const proof = merkleConsistency(this.#nodeSource, a.size, b.size);
      if (!verifyConsistency(a.size, b.size, Buffer.from(a.rootHash, 'base64'), Buffer.from(b.rootHash, 'base64'), proof)) {
        return bad(a.size, `checkpoint at size ${b.size} is not consistent with checkpoint at size ${a.size}`);
      }
    }
    return { ok: true, size };
  }
}


const SEQ_MEMBER = Buffer.from('"seq":');

/**
 * The top-level "seq" of a stored event. Fast path for the bytes the journal writes: in canonical JSON
 * `"seq":` can only be a key (inside a string the quotes are escaped), and the top-level one is the last
 * such key, since the members sorted after it (session, target, time) are strings. When that gives the
 * expected value it is taken; anything else is parsed in full, so a tampered body is still named exactly.
 * (A body that only pretends here also fails its leaf hash, which is checked next.)
 */
function seqOf(bytes: Buffer, expected: number): number | undefined {
  const at = bytes.lastIndexOf(SEQ_MEMBER);
  if (at > 0) {
    let i = at + SEQ_MEMBER.length;
    let n = 0;
    let digits = 0;
    for (; i < bytes.length && bytes[i]! >= 0x30 && bytes[i]! <= 0x39 && digits < 16; i++, digits++) n = n * 10 + (bytes[i]! - 0x30);
    const end = bytes[i];
    if (digits > 0 && (digits === 1 || bytes[at + SEQ_MEMBER.length] !== 0x30) && (end === 0x2c || end === 0x7d) && n === expected) return n;
  }
  try {
    const v = (JSON.parse(bytes.toString('utf8')) as { seq?: unknown }).seq;
    return typeof v === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

function describeFailure(err: unknown): string {
  if (err instanceof CapacityError) return `map full: ${err.message}`;
  const e = err as { message?: string; code?: unknown };
  const msg = String(e?.message ?? err);
  if (e?.code === 28 || e?.code === 'ENOSPC' || /No space left|ENOSPC/i.test(msg)) return `disk full: ${msg}`;
  if (/MDB_MAP_FULL/.test(msg)) return `map full: ${msg}`;
  return `I/O error: ${msg}`;
}
