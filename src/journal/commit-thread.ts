// The main thread's side of the journal's commit thread (commit-worker.ts). The journal prepares a batch
// (encoded events, leaf and node hashes, state, checkpoint) on the event loop and hands it here; the
// commit and its fsync run on the worker, so the event loop keeps serving front doors (forwarding
// writes already journaled, reading the next requests, preparing the next batch) meanwhile. One batch
// at a time: the next is handed over only once this one has answered.
//
// `settleSync` waits for the batch in flight without the event loop (Atomics.wait on a shared flag, then
// the answer taken from the port synchronously): what the journal's other, synchronous writes do first,
// so that their transaction never runs beside a batch whose outcome the journal does not know yet.
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { CheckpointInfo, JournalState } from './store.ts';

export const NODE_BYTES = 32;
const IDLE = 0;
const RUNNING = 1;
export const DONE = 2;

export interface CommitThreadData {
  path: string;
  mapSizeMiB: number;
  /** [0]: IDLE, RUNNING (a job was posted) or DONE (its answer is on the port). */
  flag: Int32Array;
}

/**
 * One batch. Its events and nodes are packed into a SharedArrayBuffer the two threads share (one batch
 * in flight at a time, so one arena serves them all): no buffers to allocate, copy or collect per batch.
 * Layout: seqs and node keys (float64), event end offsets (uint32), node hashes, event bytes.
 */
export interface CommitJob {
  arena: SharedArrayBuffer;
  events: number;
  nodes: number;
  checkpoint?: CheckpointInfo;
  state: JournalState;
}

/** Where each part of a packed batch starts in the arena. */
export function arenaLayout(events: number, nodes: number): { ends: number; hashes: number; bytes: number } {
  const ends = 8 * (events + nodes);
  const hashes = ends + 4 * events;
  return { ends, hashes, bytes: hashes + NODE_BYTES * nodes };
}

export type CommitResult = { ok: true } | { ok: false; message: string; code?: string | number };

/** The LMDB error the worker met, rebuilt with its message and code (what the journal classifies). */
export class CommitError extends Error {
  readonly code: string | number | undefined;
  constructor(message: string, code?: string | number) {
    super(message);
    this.code = code;
  }
}

/** Packs a batch into `arena` (a larger one when it does not fit); returns the job. */
export function packJob(arena: SharedArrayBuffer, events: readonly [number, Uint8Array][], nodes: readonly [number, Uint8Array][], state: JournalState, checkpoint?: CheckpointInfo): CommitJob {
  const layout = arenaLayout(events.length, nodes.length);
  let total = layout.bytes;
  for (const [, bytes] of events) total += bytes.length;
  if (total > arena.byteLength) arena = new SharedArrayBuffer(Math.max(total, 2 * arena.byteLength));
  const keys = new Float64Array(arena, 0, events.length + nodes.length);
  const ends = new Uint32Array(arena, layout.ends, events.length);
  const all = new Uint8Array(arena);
  let at = layout.bytes;
  for (let i = 0; i < events.length; i++) {
    const [seq, bytes] = events[i]!;
    keys[i] = seq;
    all.set(bytes, at);
    at += bytes.length;
    ends[i] = at;
  }
  for (let i = 0; i < nodes.length; i++) {
    keys[events.length + i] = nodes[i]![0];
    all.set(nodes[i]![1], layout.hashes + i * NODE_BYTES);
  }
  return { arena, events: events.length, nodes: nodes.length, state, ...(checkpoint ? { checkpoint } : {}) };
}

export class CommitThread {
  readonly #data: { path: string; mapSizeMiB: number };
  #flag!: Int32Array;
  #port!: MessagePort;
  #worker!: Worker;
  /** The job in flight's answer callback: called once, by whichever comes first (the async wait or settleSync). */
  #current: ((r: CommitResult) => void) | undefined;
  /** Where batches are packed (packJob); replaced by a larger one when a batch does not fit. */
  #arena = new SharedArrayBuffer(256 * 1024);
  /** Resolves once the worker has opened the environment (rejects if it could not). */
  #ready!: Promise<void>;

  private constructor(path: string, mapSizeMiB: number) {
    this.#data = { path, mapSizeMiB };
    this.#spawn();
  }

  /** Starts the worker and waits until it can commit. */
  static async start(path: string, mapSizeMiB: number): Promise<CommitThread> {
    const thread = new CommitThread(path, mapSizeMiB);
    await thread.#ready;
    return thread;
  }

  #spawn(): void {
    this.#flag = new Int32Array(new SharedArrayBuffer(4));
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    const data: CommitThreadData & { port: MessagePort } = { ...this.#data, flag: this.#flag, port: port2 };
    // src/ runs as .ts, dist/ as .js: the worker is the sibling file of this one.
    this.#worker = new Worker(new URL(`./commit-worker${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`, import.meta.url), {
      workerData: data,
      transferList: [port2],
      // It holds one batch at a time: a small heap keeps the thread's memory small.
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 64 },
    });
    this.#worker.unref();
    const worker = this.#worker;
    this.#ready = new Promise((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`journal commit thread exited (${code}) before it was ready`)));
    });
    this.#ready.catch(() => {}); // a restart's worker is not awaited: run() and settleSync see a dead one
    this.#worker.on('error', () => {}); // a dead worker answers nothing: settleSync and run see it (exit below)
    const flag = this.#flag;
    this.#worker.once('exit', () => {
      if (this.#flag === flag && Atomics.load(flag, 0) === RUNNING) this.#take({ ok: false, message: 'journal commit thread exited' });
    });
  }

  get busy(): boolean {
    return this.#current !== undefined;
  }

  /**
   * Packs the batch, commits it on the worker and calls `onAnswer` with the outcome, once: from the event loop, or
   * synchronously inside settleSync. One job at a time.
   */
  run(events: readonly [number, Uint8Array][], nodes: readonly [number, Uint8Array][], state: JournalState, checkpoint: CheckpointInfo | undefined, onAnswer: (r: CommitResult) => void): void {
    if (this.#current) throw new Error('journal commit thread: a batch is already in flight');
    const job = packJob(this.#arena, events, nodes, state, checkpoint);
    this.#arena = job.arena;
    const flag = this.#flag;
    Atomics.store(flag, 0, RUNNING);
    this.#current = onAnswer;
    // Keeps the process alive while a commit someone awaits is in flight (unref'd again when it answers).
    this.#worker.ref();
    this.#port.postMessage(job);
    const waited = Atomics.waitAsync(flag, 0, RUNNING);
    const onDone = () => {
      if (this.#current && Atomics.load(flag, 0) === DONE && this.#flag === flag) this.#takeFromPort();
    };
    if (waited.async) void waited.value.then(onDone);
    else onDone();
  }

  /** Blocks until the job in flight (if any) has answered, and settles it now. */
  settleSync(): void {
    if (!this.#current) return;
    while (Atomics.load(this.#flag, 0) === RUNNING) {
      // A worker that died cannot answer: check now and then rather than waiting for ever.
      if (Atomics.wait(this.#flag, 0, RUNNING, 1000) === 'timed-out' && this.#worker.threadId === -1) {
        this.#take({ ok: false, message: 'journal commit thread exited' });
        return;
      }
    }
    this.#takeFromPort();
  }

  #takeFromPort(): void {
    const m = receiveMessageOnPort(this.#port);
    this.#take(m ? (m.message as CommitResult) : { ok: false, message: 'journal commit thread gave no answer' });
  }

  #take(result: CommitResult): void {
    const onAnswer = this.#current;
    if (!onAnswer) return;
    this.#current = undefined;
    Atomics.store(this.#flag, 0, IDLE);
    this.#worker.unref();
    onAnswer(result);
  }

  /** After a fatal LMDB error: a fresh worker with a fresh environment handle (the journal reopens its own). */
  restart(): void {
    this.settleSync();
    void this.close();
    this.#spawn();
  }

  /** Settles what is in flight, lets the worker close its environment handle and exit. */
  async close(): Promise<void> {
    this.settleSync();
    const worker = this.#worker;
    if (worker.threadId === -1) return;
    const exited = new Promise((r) => worker.once('exit', r));
    worker.ref(); // close() is awaited: the process waits for the worker to let go of its environment
    this.#port.postMessage('close');
    this.#port.close();
    await exited;
  }
}
