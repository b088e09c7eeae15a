// The puller's local store. Layout of the output directory:
//
//   state.json                  what is held: cursor (events seq 0..cursor-1), Merkle frontier,
//                               bytes in the tail file, the latest verified checkpoint
//   events-000001.jsonl ...     one event per line (canonical JSON, verbatim), eventsPerFile per file:
//                               seq s is line (s mod eventsPerFile) of file floor(s / eventsPerFile) + 1
//   checkpoints/<size>.note     every checkpoint the puller verified, the signed note verbatim
//   .lock                       pid of the puller using the directory
//
// Crash safety: events are appended and fsynced first, then state.json is replaced atomically
// (write temp, fsync, rename, fsync dir). state.json is the truth: on open, anything in the event
// files beyond it (a page written but not yet recorded) is cut off, so a kill at any moment neither
// duplicates nor loses an event — the next pull fetches that page again.
import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PenstockError } from '../common/errors.ts';
import { writeFileAtomic } from '../common/files.ts';
import { TreeBuilder } from '../journal/merkle.ts';
import type { WireCheckpoint } from './types.ts';

export const DEFAULT_EVENTS_PER_FILE = 100_000;
const STATE_FILE = 'state.json';
const LOCK_FILE = '.lock';

const stateSchema = z.strictObject({
  version: z.literal(1),
  events_per_file: z.number().int().min(1),
  cursor: z.number().int().min(0),
  frontier: z.array(z.string()),
  tail_bytes: z.number().int().min(0),
  origin: z.string().nullable(),
  checkpoint: z.strictObject({ size: z.number().int().min(1), root_hash: z.string(), note: z.string() }).nullable(),
});
export type StoreState = z.infer<typeof stateSchema>;

export function eventFileName(fileNo: number): string {
  return `events-${String(fileNo).padStart(6, '0')}.jsonl`;
}

function localError(message: string, details: Record<string, unknown>, cause?: unknown): PenstockError {
  return new PenstockError('PS_SYNC_LOCAL_STORE', message, details, cause === undefined ? undefined : { cause });
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

const heldLocks = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function takeLock(dir: string): void {
  const path = join(dir, LOCK_FILE);
  if (heldLocks.has(path)) throw new PenstockError('PS_SYNC_BUSY', `${dir} is in use by another pull in this process`, { dir });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx', mode: 0o644 });
      heldLocks.add(path);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw localError(`cannot lock ${dir}`, { dir }, err);
    }
    const pid = Number(readFileSync(path, 'utf8').trim());
    // A lock left by a killed puller (or a reused pid of this very process) is stale.
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
      throw new PenstockError('PS_SYNC_BUSY', `${dir} is in use by puller pid ${pid}`, { dir, pid });
    }
    rmSync(path, { force: true });
  }
  throw new PenstockError('PS_SYNC_BUSY', `${dir} lock could not be taken`, { dir });
}

export class PullStore {
  readonly dir: string;
  #state: StoreState;
  #tree: TreeBuilder;
  #closed = false;

  private constructor(dir: string, state: StoreState) {
    this.dir = dir;
    this.#state = state;
    try {
      this.#tree = new TreeBuilder(state.cursor, state.frontier.map((h) => new Uint8Array(Buffer.from(h, 'base64'))));
    } catch (err) {
      throw localError(`state.json: the Merkle frontier does not fit cursor ${state.cursor}`, { cursor: state.cursor }, err);
    }
  }

  /** Opens (creating if needed) and locks the store, then cuts off anything beyond state.json. */
  static open(dir: string, eventsPerFile = DEFAULT_EVENTS_PER_FILE): PullStore {
    mkdirSync(join(dir, 'checkpoints'), { recursive: true });
    takeLock(dir);
    try {
      const state = readState(dir, eventsPerFile);
      const store = new PullStore(dir, state);
      store.#repairTail();
      return store;
    } catch (err) {
      releaseLock(dir);
      throw err;
    }
  }

  get state(): Readonly<StoreState> {
    return this.#state;
  }

  get cursor(): number {
    return this.#state.cursor;
  }

  /** The compact Merkle state of the events held (a copy: extend it freely). */
  tree(): TreeBuilder {
    return this.#tree.clone();
  }

  fileNoFor(seq: number): number {
    return Math.floor(seq / this.#state.events_per_file) + 1;
  }

  #repairTail(): void {
    const { cursor, tail_bytes: tailBytes } = this.#state;
    const tailNo = this.fileNoFor(cursor);
    const tailPath = join(this.dir, eventFileName(tailNo));
    let size = 0;
    try {
      size = statSync(tailPath).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw localError(`cannot stat ${tailPath}`, { path: tailPath }, err);
    }
    if (size < tailBytes) {
      throw localError(`${eventFileName(tailNo)} is shorter than state.json records: events were lost locally`, {
        file: eventFileName(tailNo), expectedBytes: tailBytes, actualBytes: size, cursor,
      });
    }
    if (size > tailBytes) {
      const fd = openSync(tailPath, 'r+');
      try {
        ftruncateSync(fd, tailBytes);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    // A page that crossed into a new file before state.json recorded it.
    for (const name of readdirSync(this.dir)) {
      const m = /^events-(\d{6,})\.jsonl$/.exec(name);
      if (m && Number(m[1]) > tailNo) unlinkSync(join(this.dir, name));
    }
    for (const name of readdirSync(this.dir)) {
      if (name.endsWith('.tmp')) rmSync(join(this.dir, name), { force: true });
    }
  }

  /** Keeps a checkpoint the caller verified (signature, consistency with the one held). */
  saveCheckpoint(cp: WireCheckpoint, origin: string): void {
    const path = join(this.dir, 'checkpoints', `${String(cp.size).padStart(12, '0')}.note`);
    writeFileAtomic(path, cp.note, 0o644);
    fsyncDir(join(this.dir, 'checkpoints'));
    this.#writeState({ ...this.#state, origin, checkpoint: { size: cp.size, root_hash: cp.root_hash, note: cp.note } });
  }

  /**
   * Appends verified events seq cursor.. in order, with the tree that includes them, durably:
   * event files first, then state.json.
   */
  appendEvents(events: readonly string[], tree: TreeBuilder): void {
    const start = this.#state.cursor;
    if (tree.size !== start + events.length) throw new Error('tree does not match the events appended');
    let i = 0;
    let tailBytes = this.#state.tail_bytes;
    while (i < events.length) {
      const fileNo = this.fileNoFor(start + i);
      const room = fileNo * this.#state.events_per_file - (start + i);
      const chunk = events.slice(i, i + room);
      const text = chunk.map((e) => `${e}\n`).join('');
      const path = join(this.dir, eventFileName(fileNo));
      const isNew = (start + i) % this.#state.events_per_file === 0;
      const fd = openSync(path, isNew ? 'w' : 'a', 0o644);
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      if (isNew) fsyncDir(this.dir);
      tailBytes = (isNew ? 0 : tailBytes) + Buffer.byteLength(text);
      i += chunk.length;
    }
    const cursor = start + events.length;
    // The tail is the file the next event goes to; it starts empty at a file boundary.
    if (cursor % this.#state.events_per_file === 0) tailBytes = 0;
    const frontier = tree.frontier().map((h) => Buffer.from(h).toString('base64'));
    this.#writeState({ ...this.#state, cursor, frontier, tail_bytes: tailBytes });
    this.#tree = tree.clone();
  }

  #writeState(next: StoreState): void {
    writeFileAtomic(join(this.dir, STATE_FILE), `${JSON.stringify(next, null, 2)}\n`, 0o644);
    fsyncDir(this.dir);
    this.#state = next;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    releaseLock(this.dir);
  }
}

function releaseLock(dir: string): void {
  const path = join(dir, LOCK_FILE);
  heldLocks.delete(path);
  rmSync(path, { force: true });
}

function readState(dir: string, eventsPerFile: number): StoreState {
  const path = join(dir, STATE_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw localError(`cannot read ${path}`, { path }, err);
    const existing = readdirSync(dir).filter((n) => /^events-\d+\.jsonl$/.test(n) && statSync(join(dir, n)).size > 0);
    if (existing.length > 0) throw localError(`${dir} holds event files but no state.json`, { dir, files: existing.slice(0, 3) });
    return { version: 1, events_per_file: eventsPerFile, cursor: 0, frontier: [], tail_bytes: 0, origin: null, checkpoint: null };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw localError(`${path} is not valid JSON`, { path }, err);
  }
  const r = stateSchema.safeParse(parsed);
  if (!r.success) throw localError(`${path} is not a pull state file`, { path, issue: r.error.issues[0]?.message });
  const s = r.data;
  if (s.checkpoint === null ? s.cursor !== 0 : s.cursor > s.checkpoint.size) {
    throw localError(`${path}: cursor ${s.cursor} is not covered by the checkpoint held`, { path, cursor: s.cursor });
  }
  return s;
}
