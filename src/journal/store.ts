// The journal's LMDB layout, shared by the journal (main thread) and the verify worker, which opens the
// same environment from its own thread (lmdb-js shares one environment per path across threads; read
// transactions are per thread).
//
// LMDB layout: db 'events' seq → canonical JSON (UTF-8); 'nodes' level*2^40+index → 32-byte hash
// (perfect aligned subtrees, level 0 = leaf hashes); 'checkpoints' size → CheckpointInfo;
// 'cosignatures' [size, sha256(note)] → note; 'meta' 'state' → JournalState; 'probe' scratch records
// the fail-closed probe writes and removes again.
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';

export const MiB = 1024 * 1024;
const LEVEL_STRIDE = 2 ** 40;
export const STATE_KEY = 'state';

export function nodeKey(level: number, index: number): number {
  return level * LEVEL_STRIDE + index;
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

export interface JournalState {
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
  /**
   * Other upstream positions, by name (`push`: what JetStream acknowledged; `siem:<id>`: what a SIEM export
   * sent): the highest seq each holds, -1 for none. Written in the journal's own transactions, like `ack`.
   */
  cursors?: Record<string, number>;
  lastCheckpointSize: number;
}

export interface JournalDbs {
  events: Database<Buffer, number>;
  nodes: Database<Buffer, number>;
  checkpoints: Database<CheckpointInfo, number>;
  cosigs: Database<string, [number, string]>;
  meta: Database<JournalState, string>;
  probe: Database<Buffer, number>;
}

export function openJournalEnv(path: string, mapSizeMiB: number): RootDatabase {
  // overlappingSync off: a commit (the write thread's or a synchronous one) returns only after LMDB's
  // fsync, which is what `append` promises. (With it on, env.flushed does not cover synchronous
  // transactions.) eventTurnBatching off: the journal batches its events itself, one transaction
  // callback per batch; lmdb-js's own per-turn batch would add a promise that nobody awaits, whose
  // rejection on a failed commit (disk full) would go unhandled.
  return openLmdb({ path, mapSize: Math.min(mapSizeMiB, 64) * MiB, maxDbs: 8, overlappingSync: false, eventTurnBatching: false });
}

export function openJournalDbs(env: RootDatabase): JournalDbs {
  return {
    events: env.openDB<Buffer, number>({ name: 'events', encoding: 'binary' }),
    nodes: env.openDB<Buffer, number>({ name: 'nodes', encoding: 'binary' }),
    checkpoints: env.openDB<CheckpointInfo, number>({ name: 'checkpoints', encoding: 'msgpack' }),
    cosigs: env.openDB<string, [number, string]>({ name: 'cosignatures', encoding: 'string' }),
    meta: env.openDB<JournalState, string>({ name: 'meta', encoding: 'msgpack' }),
    probe: env.openDB<Buffer, number>({ name: 'probe', encoding: 'binary' }),
  };
}

/** Every checkpoint record, in size order (the range is read to its end, so its read transaction ends). */
export function allCheckpoints(dbs: JournalDbs, fromSize = 0): CheckpointInfo[] {
  return Array.from(dbs.checkpoints.getRange({ start: fromSize }), ({ value }) => value);
}

/**
 * What the LMDB file really takes, from LMDB's own figures: pages in the file, pages in use by the trees
 * (every named database, the main and the free-list tree, two meta pages) and so pages free for reuse.
 * Free pages are reusable only once no reader still sees the transaction that freed them.
 */
export interface StorageFigures {
  pageSize: number;
  /** Pages up to the last one LMDB has used (what the data file holds). */
  pages: number;
  /** Pages of that on LMDB's free list. */
  freePages: number;
  /** Read transactions open now, in any thread or process (a leaked one keeps free pages from reuse). */
  readers: number;
}

export function storageFigures(env: RootDatabase, dbs: JournalDbs): StorageFigures {
  const root = env.getStats() as { pageSize: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number; lastPageNumber: number; free: { treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number } };
  const treePages = (s: { treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number }) => s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages;
  let used = 2 + treePages(root) + treePages(root.free);
  for (const db of Object.values(dbs) as Database[]) used += treePages(db.getStats() as Parameters<typeof treePages>[0]);
  const pages = root.lastPageNumber + 1;
  return { pageSize: root.pageSize, pages, freePages: Math.max(0, pages - used), readers: openReaders(env) };
}

/** LMDB's reader table (mdb_reader_list): one "pid thread txnid" line per slot, txnid "-" when idle. */
function openReaders(env: RootDatabase): number {
  const table = (env as unknown as { readerList(): string }).readerList();
  return table.split('\n').filter((line) => /^\d+\s+\S+\s+\d+$/.test(line.trim())).length;
}
