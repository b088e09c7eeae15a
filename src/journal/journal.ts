// The evidence journal: LMDB, append-only, a Merkle tree over the events, signed checkpoints.
//
// Write path. `append` prepares the event at once (name, fields, time, no secrets) and queues it; one
// flush per event-loop turn numbers the queued events, hashes them and extends the tree. The batch is
// committed as ONE LMDB transaction (events, new tree nodes, the state record and, when due, a signed
// checkpoint) that lmdb-js's write thread begins, runs the batch's puts in (on this thread), and commits
// with its fsync (overlappingSync off) off the event loop, which meanwhile serves the sessions and prepares
// the next batch from everything appended since. One commit is under way at a time; appends are resolved
// only once theirs is durable. A failed commit is aborted by LMDB as a whole, and the in-memory tree and
// state are replaced only after success: a failure leaves no trace and no gap. Concurrent appends share
// one commit. The journal's small writes (acknowledgements, cursors, pruning, checkpoints on demand) are
// synchronous transactions: LMDB's write lock orders them with the batches (see #settleFinishedCommit).
//
// Fail closed. A failed commit (disk full, capacity reached, I/O error) rejects the batch with
// PenstockError('PS_JOURNAL_UNAVAILABLE'), sets health().writable = false and raises onAlert('unavailable').
// While unavailable, appends are refused without a commit, and only the probe, every second, decides
// that the journal is writable again. The probe writes as many fresh pages as a real commit needs (a
// commit rewrites the newest leaf of every tree level, ~40 pages, plus its events) and removes them
// again: rewriting only the state record, or committing one small event, fits into pages LMDB already
// holds on a full disk, and `writable` used to flip back while the next event could not be written.
// One outage raises one 'unavailable' and one 'recovered' alert: the recovery is confirmed (alert,
// 'alert.journal_recovered' event) only once the journal stayed writable for `recoverySettleMs`; a
// failure before that is the same outage going on.
//
// The other jobs live beside this file, and the journal hands them its state and databases (`#view`):
// capacity accounting in capacity.ts; LMDB layout in store.ts; acknowledgements, pruning and
// cosignatures in retention.ts; proofs, bundles and exports in proofs.ts; verification in
// verify-stored.ts, run by `verify` in a worker (verify-queue.ts).
import { mkdirSync } from 'node:fs';
import type { RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import { PenstockError, isPenstockError } from '../common/errors.ts';
import type { Clock } from '../common/clock.ts';
import type { AppendOptions, Journal, JournalEventInput, JournalHealth, JournalReceipt } from './types.ts';
import { encodeEvent, prepareEvent, type PreparedEvent, type StoredEvent } from './event.ts';
import { TreeBuilder, frontierAt, type Hash, type NodeSource, b64 } from './merkle.ts';
import { NoteSigner } from './checkpoint.ts';
import type { ProofBundle } from './verify.ts';
import { encodeAndLeafHash, fastNodeHash } from './fast-hash.ts';
import { STATE_KEY, allCheckpoints, nodeKey, openJournalDbs, openJournalEnv, type CheckpointInfo, type JournalDbs, type JournalState } from './store.ts';
import { CapacityError, StorageMeter, type MeteredJournal } from './capacity.ts';
import { verifyStored, type KeptCheckpoint, type VerifyResult } from './verify-stored.ts';
import { VerifyQueue } from './verify-queue.ts';
import * as retention from './retention.ts';
import type { PruneLimits, RetentionHost } from './retention.ts';
import * as proofs from './proofs.ts';
import type { ProofSource } from './proofs.ts';

export type { CheckpointInfo } from './store.ts';
export type { KeptCheckpoint, VerifyResult } from './verify-stored.ts';

export interface LmdbJournalOptions {
  /** Directory of the LMDB environment (created if missing). */
  path: string;
  /** Journal capacity in MiB (see capacity.ts). */
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
  /** How long the journal must stay writable before a recovery is confirmed (default 5 probe intervals). */
  recoverySettleMs?: number;
  /**
   * Commits a lone writer may make on the event loop between two made by the write thread (default
   * SERIAL_SYNC_COMMITS; 0: every commit by the write thread, so the event loop never waits for a disk).
   */
  serialSyncCommits?: number;
}

interface Pending {
  prepared: PreparedEvent;
  resolve: (r: JournalReceipt) => void;
  reject: (e: unknown) => void;
}

/** Appends numbered, encoded and hashed, waiting for their commit. */
interface PreparedBatch {
  items: Pending[];
  events: [number, Buffer][];
  nodes: [number, Uint8Array][];
  /** The events' canonical JSON, kept only when someone follows commits (onCommitted). */
  texts: string[] | undefined;
  /** The tree with the batch's events. */
  tree: TreeBuilder;
  /** Journal size before and after the batch. */
  baseSize: number;
  size: number;
  eventBytes: number;
}

/** A batch handed to LMDB: its checkpoint (when due), the bytes it adds, and the state record its body wrote. */
interface Commit extends PreparedBatch {
  checkpoint: CheckpointInfo | undefined;
  bytes: number;
  state?: JournalState;
  settled: boolean;
  /** Made on the event loop (transactionSync) rather than by the write thread. */
  sync: boolean;
  /** When it was handed to LMDB (performance.now()). */
  started: number;
  /** Resolves when the commit is settled, either way. */
  done: Promise<void>;
  ended: () => void;
}

const NODE_BYTES = 32;
/**
 * After an asynchronous commit during which nothing else was appended (one writer at a time), up to this
 * many commits are made synchronously on the event loop, then one asynchronous again to look. Handing a
 * commit to lmdb-js's write thread costs a few thread wake-ups (~0.2 ms here) that a lone writer pays on
 * every write; a synchronous commit stops the event loop for its fsync, which only a lone writer can afford.
 */
const SERIAL_SYNC_COMMITS = 7;
/** A commit slower than this (a slow or busy disk) is never made synchronously: it would stall every session. */
const SYNC_COMMIT_MAX_MS = 2;
const MAX_BATCH = 10_000;
/** The longest a lazy append waits for a commit to ride with before it asks for its own. */
const LAZY_COMMIT_MS = 5;
/** Fresh pages every probe writes: more than one real commit rewrites (one leaf per tree level and more). */
const PROBE_MIN_PAGES = 64;
const PROBE_MAX_PAGES = 1024;

export class LmdbJournal implements Journal {
  readonly #opts: LmdbJournalOptions;
  readonly #signer: NoteSigner;
  readonly #meter: StorageMeter;
  #env: RootDatabase;
  #db: JournalDbs;
  #state: JournalState;
  #tree: TreeBuilder;
  #pending: Pending[] = [];
  /** Commits that may be made synchronously before the next asynchronous one (see SERIAL_SYNC_COMMITS). */
  #syncCommits = 0;
  /** An append that asks for its own commit arrived while the one under way was being made (another writer). */
  #eagerDuringCommit = false;
  /** The batch being prepared while `#inflight` commits. */
  #next: PreparedBatch | undefined;
  /** The batch LMDB's write thread is committing (one at a time). */
  #inflight: Commit | undefined;
  readonly #committedListeners = new Set<(events: readonly StoredEvent[]) => void>();
  #flushScheduled = false;
  #lazyTimer: NodeJS.Timeout | undefined;
  #writable = true;
  #failure: string | undefined;
  /** The failure was a fatal LMDB error: the environment must be reopened before a write can succeed. */
  #fatal = false;
  /** The outage going on: from the first failure until a recovery that held for recoverySettleMs. */
  #outage: { since: string; reason: string } | undefined;
  #settleTimer: NodeJS.Timeout | undefined;
  /** Bytes of the last batch that could not be committed: the probe writes at least that much. */
  #failedBatchBytes = 0;
  #probeTimer: NodeJS.Timeout | undefined;
  #checkpointTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** The newest checkpoint record, kept in memory (read on every health() call). */
  #latestCheckpoint: CheckpointInfo | undefined | null = null;
  readonly #nodeSource: NodeSource;
  /** What retention.ts, proofs.ts and capacity.ts see of this journal: always its current state and databases. */
  readonly #view: RetentionHost & ProofSource & MeteredJournal;
  readonly #verifier: VerifyQueue;

  private constructor(opts: LmdbJournalOptions, env: RootDatabase) {
    this.#opts = opts;
    this.#signer = new NoteSigner(opts.appliance, opts.signingKeyPem);
    this.#env = env;
    this.#db = openJournalDbs(env);
    this.#state = this.#db.meta.get(STATE_KEY) ?? { size: 0, first: 0, eventBytes: 0, otherBytes: 0, ack: -1, lastCheckpointSize: 0 };
    this.#nodeSource = { node: (level, index) => this.#node(level, index) };
    this.#tree = new TreeBuilder(this.#state.size, frontierAt(this.#nodeSource, this.#state.size), fastNodeHash);
    // Getters, not copies: every write replaces #state, and a reopen after a fatal LMDB error #env and #db.
    const journal = this;
    this.#view = {
      get state() {
        return journal.#state;
      },
      get env() {
        return journal.#env;
      },
      get db() {
        return journal.#db;
      },
      nodes: this.#nodeSource,
      vkey: this.#signer.vkey,
      clock: opts.clock,
      writeSync: (what, fn) => this.#writeSync(what, fn),
      latestCheckpoint: () => this.latestCheckpoint(),
      checkpoint: () => this.checkpoint(),
    };
    this.#meter = new StorageMeter(this.#view, opts.path, opts.mapSizeMiB);
    this.#verifier = new VerifyQueue({ path: opts.path, mapSizeMiB: opts.mapSizeMiB, vkey: this.#signer.vkey });
  }

  /** Opens (or creates) the journal. Throws PS_JOURNAL_CORRUPT when the stored state does not add up. */
  static async open(opts: LmdbJournalOptions): Promise<LmdbJournal> {
    if (!(opts.checkpointEvery >= 1) || !(opts.checkpointSeconds > 0) || !(opts.mapSizeMiB > 0)) {
      throw new PenstockError('PS_INTERNAL', 'journal options: checkpointEvery, checkpointSeconds and mapSizeMiB must be positive');
    }
    mkdirSync(opts.path, { recursive: true, mode: 0o700 });
    const journal = new LmdbJournal(opts, openJournalEnv(opts.path, opts.mapSizeMiB));
    journal.#checkAtOpen();
    const timer = setInterval(() => journal.#checkpointIfDue(), opts.checkpointSeconds * 1000);
    timer.unref();
    journal.#checkpointTimer = timer;
    return journal;
  }

  #checkAtOpen(): void {
    const { size, first } = this.#state;
    if (size > first) {
      const last = Array.from(this.#db.events.getKeys({ reverse: true, limit: 1 }))[0];
      if (last !== size - 1) {
        const missing = last === undefined ? first : last + 1;
        throw new PenstockError('PS_JOURNAL_CORRUPT', `seq ${missing}: event missing (journal state says ${size} events, the last stored is ${String(last)}): truncated`, { seq: missing });
      }
    }
    const cp = this.latestCheckpoint();
    if (cp && cp.size > size) throw new PenstockError('PS_JOURNAL_CORRUPT', `checkpoint at size ${cp.size} is ahead of the journal (${size})`);
  }

  #node(level: number, index: number): Hash {
    const v = this.#db.nodes.getBinary(nodeKey(level, index));
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
      else {
        if (this.#inflight) this.#eagerDuringCommit = true;
        this.#scheduleFlush();
      }
    });
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#flush());
  }

  #scheduleLazyFlush(): void {
    if (this.#flushScheduled || this.#lazyTimer) return;
    this.#lazyTimer = setTimeout(() => {
      this.#lazyTimer = undefined;
      this.#flush();
    }, LAZY_COMMIT_MS);
  }

  /** Commits everything queued, waiting for each commit in turn. */
  async #drain(): Promise<void> {
    for (;;) {
      this.#flush();
      const commit = this.#inflight;
      if (!commit) return;
      await commit.done;
    }
  }

  /** Prepares what is queued into the next batch and commits it, unless a commit is under way (its end starts the next). */
  #flush(): void {
    this.#flushScheduled = false;
    if (this.#lazyTimer) {
      clearTimeout(this.#lazyTimer);
      this.#lazyTimer = undefined;
    }
    if (!this.#writable) {
      this.#rejectQueued(this.#unavailable());
      return;
    }
    for (;;) {
      if (this.#pending.length > 0 && (this.#next?.items.length ?? 0) < MAX_BATCH) this.#prepareQueued();
      if (this.#inflight || !this.#next) return;
      this.#startCommit(); // then prepare what did not fit on top of it
    }
  }

  #unavailable(): PenstockError {
    return new PenstockError('PS_JOURNAL_UNAVAILABLE', `journal cannot be written: ${this.#failure ?? 'unavailable'}`, { reason: this.#failure });
  }

  #rejectQueued(error: unknown): void {
    const items = this.#pending.splice(0);
    if (this.#next) items.unshift(...this.#next.items);
    this.#next = undefined;
    for (const item of items) item.reject(error);
  }

  /**
   * Numbers, encodes and hashes the queued events into the next batch, on top of the commit under way:
   * this work overlaps the fsync of the batch before it. Should that commit fail, the journal becomes
   * unavailable and the prepared batch is rejected with it (its numbers and tree build on the failed one).
   */
  #prepareQueued(): void {
    const base = this.#inflight ?? { tree: this.#tree, size: this.#state.size };
    let batch = this.#next;
    if (!batch) {
      batch = { items: [], events: [], nodes: [], texts: this.#committedListeners.size > 0 ? [] : undefined, tree: base.tree.clone(), baseSize: base.size, size: base.size, eventBytes: 0 };
      this.#next = batch;
    }
    const room = MAX_BATCH - batch.items.length;
    const items = this.#pending.length <= room ? this.#pending.splice(0) : this.#pending.splice(0, room);
    for (const item of items) {
      const seq = batch.size++;
      const text = encodeEvent(item.prepared, seq);
      batch.texts?.push(text);
      const { bytes, leaf } = encodeAndLeafHash(text);
      batch.items.push(item);
      batch.events.push([seq, bytes]);
      batch.eventBytes += bytes.length;
      batch.tree.push(leaf, (level, index, hash) => batch.nodes.push([nodeKey(level, index), hash]));
    }
  }

  /**
   * Commits the prepared batch as one LMDB transaction run by lmdb-js's write thread: the body (the puts)
   * runs on this thread when that transaction begins; the commit and its fsync run on the write thread,
   * so the event loop keeps serving requests (and preparing the next batch) meanwhile. One commit is under
   * way at a time; appends are resolved only once it is durable (overlappingSync off: LMDB's commit
   * returns after its fsync). A child transaction holds the body, so a put that throws leaves nothing.
   */
  #startCommit(): void {
    const batch = this.#next!;
    this.#next = undefined;
    const { lastCheckpointSize } = this.#state;
    const checkpoint = batch.size - lastCheckpointSize >= this.#opts.checkpointEvery ? this.#signCheckpoint(batch.size, batch.tree) : undefined;
    let ended!: () => void;
    const done = new Promise<void>((resolve) => (ended = resolve));
    const bytes = batch.eventBytes + batch.nodes.length * NODE_BYTES + (checkpoint?.note.length ?? 0);
    const commit: Commit = { ...batch, checkpoint, bytes, settled: false, done, ended, sync: this.#syncCommits > 0, started: performance.now() };
    try {
      this.#meter.check(commit.bytes);
    } catch (err) {
      this.#commitFailed(commit, err);
      return;
    }
    this.#inflight = commit;
    this.#eagerDuringCommit = false;
    if (commit.sync) {
      this.#syncCommits--;
      let failure: unknown;
      try {
        this.#env.transactionSync(() => this.#commitBody(commit));
      } catch (err) {
        failure = err;
      }
      this.#settle(commit, failure);
      return;
    }
    this.#env
      .childTransaction(() => this.#commitBody(commit))
      .then(
        () => this.#settle(commit),
        async (err: unknown) => this.#settle(commit, await commitCause(err)),
      );
  }

  /** The batch's writes, inside the transaction the write thread began: the state record is made from the state now. */
  #commitBody(commit: Commit): void {
    if (commit.settled || this.#state.size !== commit.baseSize) {
      throw new PenstockError('PS_INTERNAL', `journal batch from seq ${commit.baseSize} no longer follows the journal (size ${this.#state.size})`);
    }
    const before = this.#state;
    const state: JournalState = {
      ...before,
      size: commit.size,
      eventBytes: before.eventBytes + commit.eventBytes,
      otherBytes: before.otherBytes + commit.bytes - commit.eventBytes,
      lastCheckpointSize: commit.checkpoint ? commit.checkpoint.size : before.lastCheckpointSize,
    };
    for (const [seq, bytes] of commit.events) this.#db.events.putSync(seq, bytes);
    for (const [key, hash] of commit.nodes) this.#db.nodes.putSync(key, hash as Buffer);
    if (commit.checkpoint) this.#db.checkpoints.putSync(commit.checkpoint.size, commit.checkpoint);
    this.#db.meta.putSync(STATE_KEY, state);
    commit.state = state;
  }

  /** The commit ended (or a small write found it ended first): resolve or reject its appends, then go on with the next batch. */
  #settle(commit: Commit, err?: unknown, deferListeners = false): void {
    if (commit.settled) return;
    commit.settled = true;
    commit.ended();
    if (this.#inflight === commit) this.#inflight = undefined;
    // Alone (no other writer's append came meanwhile; a lazy outcome is not one) and quick: the next
    // commits may be synchronous.
    const alone = !this.#eagerDuringCommit;
    const quick = performance.now() - commit.started < SYNC_COMMIT_MAX_MS;
    if (!quick || (!commit.sync && !alone)) this.#syncCommits = 0;
    else if (!commit.sync) this.#syncCommits = this.#opts.serialSyncCommits ?? SERIAL_SYNC_COMMITS;
    if (err !== undefined || !commit.state) {
      this.#commitFailed(commit, err ?? new Error('the commit ended without its writes'));
      return;
    }
    this.#state = commit.state;
    this.#tree = commit.tree;
    if (commit.checkpoint) this.#latestCheckpoint = commit.checkpoint;
    for (let i = 0; i < commit.items.length; i++) commit.items[i]!.resolve({ seq: commit.events[i]![0] });
    const texts = commit.texts;
    if (texts) {
      if (deferListeners) queueMicrotask(() => this.#tellCommitted(texts));
      else this.#tellCommitted(texts);
    }
    if (commit.sync) return; // #flush, which made it, goes on
    if (this.#next || this.#flushScheduled) {
      if (deferListeners) this.#scheduleFlush();
      else this.#flush();
    }
  }

  /** A batch that could not be committed: the journal is unavailable, and its appends and all queued behind it are refused. */
  #commitFailed(commit: Commit, err: unknown): void {
    this.#failedBatchBytes = commit.bytes;
    const error = this.#failed(err);
    for (const item of commit.items) item.reject(error);
    this.#rejectQueued(error);
  }

  /**
   * Follow what is committed: `listener` gets each committed batch's events, in order, as stored (the
   * canonical JSON parsed back: exactly what the journal holds, Secret values already left out). Called
   * after the batch's appenders are resolved; a listener must be quick and must not throw (one that
   * throws is logged and kept). Returns the function that stops it.
   */
  onCommitted(listener: (events: readonly StoredEvent[]) => void): () => void {
    this.#committedListeners.add(listener);
    return () => void this.#committedListeners.delete(listener);
  }

  #tellCommitted(texts: string[]): void {
    const stored = texts.map((t) => JSON.parse(t) as StoredEvent);
    for (const l of this.#committedListeners) {
      try {
        l(stored);
      } catch (err) {
        this.#opts.log?.error({ err }, 'a journal listener failed');
      }
    }
  }

  #signCheckpoint(size: number, tree: TreeBuilder): CheckpointInfo {
    const root = tree.root();
    const note = this.#signer.checkpoint(size, root);
    return { size, rootHash: b64(root), note, time: new Date(this.#opts.clock.now()).toISOString() };
  }

  /** Runs one small write transaction; any failure marks the journal unavailable (success does not recover it). */
  #writeSync(what: string, fn: (state: JournalState) => void): void {
    if (this.#closed) throw new PenstockError('PS_JOURNAL_UNAVAILABLE', 'journal is closed');
    let state = this.#state;
    try {
      this.#env.transactionSync(() => {
        this.#settleFinishedCommit();
        state = { ...this.#state };
        fn(state);
        this.#db.meta.putSync(STATE_KEY, state);
      });
    } catch (err) {
      if (isPenstockError(err)) throw err;
      throw this.#failed(err, what);
    }
    this.#state = state;
    this.#meter.forget(); // pruning frees pages: read LMDB's figures afresh
    // Not a recovery: a small write fits where an event may not. Only the probe and a batch recover.
  }

  /**
   * Inside a small write's transaction. LMDB gave it the write lock, so a batch whose body already ran
   * has ended: committed (its state record is stored) or failed. A committed one is settled here, before
   * its promise comes back, so that this write builds on the state that includes it; a failed one is left
   * to its rejection. A batch whose body has not run yet runs after this write and builds on it.
   */
  #settleFinishedCommit(): void {
    const commit = this.#inflight;
    if (!commit?.state || commit.settled) return;
    if (this.#db.meta.get(STATE_KEY)?.size === commit.size) this.#settle(commit, undefined, true);
  }

  #failed(err: unknown, what = 'append'): PenstockError {
    const reason = describeFailure(err);
    this.#opts.log?.error({ err, reason, what }, 'journal write failed');
    if (this.#writable) {
      this.#writable = false;
      this.#failure = reason;
      this.#fatal = isFatalLmdbError(err);
      if (this.#settleTimer) {
        // Failed again before the recovery was confirmed: the same outage goes on, no second alert.
        clearTimeout(this.#settleTimer);
        this.#settleTimer = undefined;
        this.#opts.log?.warn({ reason, since: this.#outage?.since }, 'journal failed again before its recovery held (same outage)');
      } else {
        this.#outage = { since: new Date(this.#opts.clock.now()).toISOString(), reason };
        this.#opts.onAlert?.({ kind: 'unavailable', reason });
      }
      this.#startProbing();
    }
    return new PenstockError('PS_JOURNAL_UNAVAILABLE', `journal cannot be written: ${reason}`, { reason }, { cause: err });
  }

  #succeeded(): void {
    if (this.#writable) return;
    this.#writable = true;
    this.#failure = undefined;
    this.#fatal = false;
    if (this.#probeTimer) clearInterval(this.#probeTimer);
    this.#probeTimer = undefined;
    this.#opts.log?.warn({ since: this.#outage?.since }, 'journal writable again');
    const settle = this.#opts.recoverySettleMs ?? 5 * (this.#opts.probeMs ?? 1000);
    this.#settleTimer = setTimeout(() => this.#recoveryHeld(), settle);
    this.#settleTimer.unref();
  }

  /** The journal stayed writable since the recovery: the outage is over, once. */
  #recoveryHeld(): void {
    this.#settleTimer = undefined;
    const outage = this.#outage;
    this.#outage = undefined;
    if (!outage || this.#closed) return;
    this.#opts.onAlert?.({ kind: 'recovered', reason: outage.reason });
    // The gap in service is itself evidence.
    this.append({ event: 'alert.journal_recovered', detail: { failure: outage.reason, since: outage.since } }).catch((err: unknown) => {
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
   * this; so may an operator ("retry now"). The write takes as many fresh pages as a real commit (at least
   * PROBE_MIN_PAGES, more for a large failed batch), removes them, then rewrites the state record, so that
   * the pages it freed are ones the next commit may reuse (LMDB reuses a page two transactions after it
   * was freed).
   */
  probe(): boolean {
    if (this.#writable) return true;
    if (this.#closed) return false;
    try {
      const { pageSize } = this.#meter.sample().figures;
      const pages = Math.min(PROBE_MAX_PAGES, PROBE_MIN_PAGES + Math.ceil(this.#failedBatchBytes / (pageSize / 2)));
      // Capacity is ours to check (the probe's pages are removed again); the disk is what the write tests.
      this.#meter.check(this.#failedBatchBytes);
      const page = Buffer.alloc(pageSize - 64); // one overflow page per record: any free page will do
      this.#env.transactionSync(() => {
        for (let i = 0; i < pages; i++) this.#db.probe.putSync(i, page);
      });
      this.#env.transactionSync(() => {
        for (let i = 0; i < pages; i++) this.#db.probe.removeSync(i);
      });
      this.#env.transactionSync(() => this.#db.meta.putSync(STATE_KEY, this.#state));
    } catch (err) {
      if (!(err instanceof CapacityError)) {
        this.#opts.log?.debug({ reason: describeFailure(err) }, 'journal probe failed');
        // Decided on the errors themselves, never on the text this journal wrote about them.
        if (isFatalLmdbError(err) || this.#fatal) this.#reopen();
      }
      return false;
    }
    this.#meter.forget();
    this.#succeeded();
    return this.#writable;
  }

  /** After a fatal LMDB error the environment must be reopened before it writes again. */
  #reopen(): void {
    try {
      this.#env.close().catch(() => {});
      this.#env = openJournalEnv(this.#opts.path, this.#opts.mapSizeMiB);
      this.#db = openJournalDbs(this.#env);
      this.#meter.forget();
    } catch (err) {
      this.#opts.log?.error({ err }, 'journal reopen failed');
    }
  }

  /** Signs a checkpoint now if there are events since the last one; returns the latest checkpoint. */
  checkpoint(): CheckpointInfo | undefined {
    if (this.#state.size > this.#state.lastCheckpointSize) {
      let cp: CheckpointInfo | undefined;
      this.#writeSync('checkpoint', (state) => {
        if (state.size === state.lastCheckpointSize) return;
        cp = this.#signCheckpoint(state.size, this.#tree);
        state.lastCheckpointSize = cp.size;
        state.otherBytes += cp.note.length;
        this.#db.checkpoints.putSync(cp.size, cp);
      });
      if (cp) this.#latestCheckpoint = cp;
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
   * Retention never prunes above this cursor. Rejects PS_JOURNAL_BAD_REQUEST for a seq not yet written.
   */
  async acknowledge(seq: number, by: string): Promise<void> {
    retention.acknowledge(this.#view, seq, by);
  }

  /** Highest acknowledged seq, -1 when nothing was acknowledged. */
  acknowledged(): number {
    return this.#state.ack;
  }

  /**
   * Moves the upstream cursor `name` (`push`, `siem:<id>`) to `seq`: that upstream holds every event up to and
   * including it. Monotonic; committed like an append (a failure marks the journal unavailable).
   */
  advanceCursor(name: string, seq: number): void {
    retention.advanceCursor(this.#view, name, seq);
  }

  /** The highest seq the upstream `name` holds, -1 for none (`pull`: the acknowledged cursor). */
  cursor(name: string): number {
    return retention.cursorAt(this.#state, name);
  }

  /**
   * Removes event bodies, oldest first, while the journal is over `maxBytes` (total stored bytes) or the
   * oldest event is older than `maxAgeMs`, but never above the acknowledged cursor. Tree nodes stay.
   */
  prune(limits: PruneLimits): { removed: number; first: number; bytes: number } {
    const pruned = retention.prune(this.#view, limits);
    // Pruning freed pages: an unavailable journal may be writable again.
    if (pruned.removed > 0 && !this.#writable) this.probe();
    return pruned;
  }

  /** Stores a witness's cosigned copy of one of our checkpoints (see retention.ts); PS_JOURNAL_BAD_REQUEST otherwise. */
  async addCosignature(noteText: string): Promise<{ size: number }> {
    return retention.addCosignature(this.#view, noteText);
  }

  /** Cosigned notes stored for a checkpoint size. */
  cosignatures(size: number): string[] {
    return retention.cosignatures(this.#db, size);
  }

  /** Flushes queued appends, signs a final checkpoint, closes LMDB. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#drain();
    try {
      if (this.#writable) this.checkpoint();
    } catch (err) {
      this.#opts.log?.error({ err }, 'final checkpoint failed');
    }
    this.#closed = true;
    await this.#verifier.close();
    if (this.#probeTimer) clearInterval(this.#probeTimer);
    if (this.#settleTimer) clearTimeout(this.#settleTimer);
    if (this.#checkpointTimer) clearInterval(this.#checkpointTimer);
    await this.#env.close();
  }

  // ---------------------------------------------------------------- reading (the API sync builds on)

  /**
   * Cheap enough to call on every read: free disk space, the file size and LMDB's page figures are
   * sampled at most once a second. `freeBytes` is what may still be written: the disk's free space plus LMDB's free pages,
   * bounded by the capacity left over the pages in use.
   */
  health(): JournalHealth {
    const s = this.#state;
    const cp = this.latestCheckpoint();
    const storage = this.#meter.sample();
    const { pageSize, pages, freePages, readers } = storage.figures;
    const usedBytes = this.#meter.usedBytes(false);
    return {
      writable: this.#writable,
      ...(this.#failure === undefined ? {} : { failure: this.#failure }),
      size: s.size,
      bytes: s.eventBytes + s.otherBytes,
      fileBytes: storage.fileBytes,
      usedBytes,
      freeBytes: Math.max(0, Math.min(this.#meter.diskFree() + freePages * pageSize, this.#meter.capacity - usedBytes)),
      capacityBytes: this.#meter.capacity,
      lmdb: { pageSize, pages, freePages, readers },
      ...(cp ? { lastCheckpoint: { size: cp.size, rootHash: cp.rootHash, time: cp.time } } : {}),
      acknowledgedUpTo: s.ack,
      ...(s.cursors ? { cursors: { ...s.cursors } } : {}),
    };
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
    return Array.from(this.#db.events.getRange({ start, end: this.#state.size, limit }), ({ key, value }) => ({ seq: key, bytes: value.toString('utf8') }));
  }

  /** health().writable alone, for the read path (every allowed read checks it). */
  get writable(): boolean {
    return this.#writable;
  }

  // ---------------------------------------------------------------- proofs and exports (proofs.ts)

  /** The stored leaf hash of event `seq`. */
  leafHash(seq: number): Uint8Array {
    return proofs.leafHash(this.#view, seq);
  }

  /** Root hash of the tree of the first `size` events (any size up to size()). */
  rootAt(size: number): Uint8Array {
    return proofs.rootAt(this.#view, size);
  }

  /** RFC 6962 audit path of event `seq` in the tree of `treeSize` events. */
  inclusionProof(seq: number, treeSize: number): Uint8Array[] {
    return proofs.inclusionProof(this.#view, seq, treeSize);
  }

  /** RFC 6962 consistency proof from tree size oldSize to newSize. */
  consistencyProof(oldSize: number, newSize: number): Uint8Array[] {
    return proofs.consistencyProof(this.#view, oldSize, newSize);
  }

  /** Hashes of the maximal perfect subtrees of [0, size): what a verifier needs to check events from `size` on. */
  frontier(size: number): Uint8Array[] {
    return proofs.frontier(this.#view, size);
  }

  /**
   * Writes events [fromSeq, toSeq] as JSON lines (the canonical event plus its `leaf_hash`, see verify.ts)
   * and returns the signed checkpoint that covers them (signing one first when needed), for verifyExport.
   */
  exportJsonLines(fromSeq: number, toSeq: number, write: (line: string) => void): { lines: number; first: number; checkpoint: string } {
    return proofs.exportJsonLines(this.#view, fromSeq, toSeq, write);
  }

  /** An offline proof that event `seq` is in the journal: check it with verifyBundle (verify.ts). */
  proveBundle(seq: number): ProofBundle {
    return proofs.proveBundle(this.#view, seq);
  }

  // ---------------------------------------------------------------- checkpoints

  latestCheckpoint(): CheckpointInfo | undefined {
    if (this.#latestCheckpoint === null) {
      this.#latestCheckpoint = Array.from(this.#db.checkpoints.getRange({ reverse: true, limit: 1 }), ({ value }) => value)[0];
    }
    return this.#latestCheckpoint;
  }

  checkpointFor(size: number): CheckpointInfo | undefined {
    return this.#db.checkpoints.get(size);
  }

  /** Checkpoints in size order, optionally from a size on. */
  checkpoints(fromSize = 0): CheckpointInfo[] {
    return allCheckpoints(this.#db, fromSize);
  }

  /** The appliance's verifier key in signed-note vkey form: `name+hash+base64(0x01||pubkey)`. */
  publicKeyVkey(): string {
    return this.#signer.vkey;
  }

  // ---------------------------------------------------------------- verification (verify-stored.ts)

  /**
   * Recomputes everything on this thread and names the first bad spot (see verify-stored.ts). Blocks the
   * event loop for the whole scan: the daemon uses `verify`, which runs it in a worker thread.
   */
  verifyAll(kept?: KeptCheckpoint): VerifyResult {
    return verifyStored(this.#db, this.#signer.vkey, kept);
  }

  /** The same verification in a worker thread, off the event loop, one at a time (see verify-queue.ts). */
  verify(kept?: KeptCheckpoint): Promise<VerifyResult> {
    return this.#verifier.verify(kept);
  }
}

/** MDB_PANIC (-30795) or an error LMDB itself calls fatal: the environment is unusable until reopened. */
function isFatalLmdbError(err: unknown): boolean {
  const e = err as { message?: unknown; code?: unknown } | undefined;
  return e?.code === -30795 || e?.code === 'MDB_PANIC' || /MDB_PANIC|fatal/i.test(String(e?.message ?? ''));
}

/**
 * lmdb-js rejects a failed asynchronous commit with a generic error whose `commitError` promise carries
 * LMDB's own (disk full, map full, I/O): that one names the failure.
 */
async function commitCause(err: unknown): Promise<unknown> {
  const detail = (err as { commitError?: Promise<unknown> } | undefined)?.commitError;
  if (!detail) return err;
  return detail.then(
    () => err,
    (cause: unknown) => cause,
  );
}

function describeFailure(err: unknown): string {
  if (err instanceof CapacityError) return `map full: ${err.message}`;
  const e = err as { message?: string; code?: unknown };
  const msg = String(e?.message ?? err);
  if (e?.code === 28 || e?.code === 'ENOSPC' || /No space left|ENOSPC/i.test(msg)) return `disk full: ${msg}`;
  if (/MDB_MAP_FULL/.test(msg)) return `map full: ${msg}`;
  return `I/O error: ${msg}`;
}
