// Capacity. lmdb-js grows its memory map on demand (its build of LMDB never returns MDB_MAP_FULL), so
// `mapSizeMiB` is enforced here as the journal's capacity, over what LMDB itself says the file uses: the
// pages in use by its trees (the file's pages minus its free pages), plus what was appended since those
// figures were read. health() reports the data file's real size and LMDB's page figures, sampled here at
// most once a second. A full filesystem fails the commit itself (ENOSPC); the journal handles it the same way.
import { statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { RootDatabase } from 'lmdb';
import { MiB, storageFigures, type JournalDbs, type JournalState, type StorageFigures } from './store.ts';

const DISK_FREE_TTL_MS = 1000;
const STORAGE_TTL_MS = 1000;

/** A write would take the journal beyond its capacity: the journal fails closed on it as on a full disk. */
export class CapacityError extends Error {}

export interface StorageSample {
  at: number;
  figures: StorageFigures;
  /** The data file's size on disk. */
  fileBytes: number;
  storedBytes: number;
}

/** What the meter reads of the journal: always its current environment, databases and state. */
export interface MeteredJournal {
  readonly env: RootDatabase;
  readonly db: JournalDbs;
  readonly state: JournalState;
}

export class StorageMeter {
  readonly #journal: MeteredJournal;
  readonly #path: string;
  readonly #mapSizeMiB: number;
  /** The capacity in bytes. */
  readonly capacity: number;
  #diskFreeCache: { at: number; bytes: number } | undefined;
  /** LMDB's page figures, the data file size, and the stored bytes when they were read. */
  #storageCache: StorageSample | undefined;

  constructor(journal: MeteredJournal, path: string, mapSizeMiB: number) {
    this.#journal = journal;
    this.#path = path;
    this.#mapSizeMiB = mapSizeMiB;
    this.capacity = mapSizeMiB * MiB;
  }

  /** Drops the sampled LMDB figures (pages were freed, or the environment reopened): the next read is fresh. */
  forget(): void {
    this.#storageCache = undefined;
  }

  /** Throws CapacityError when `addBytes` more would take LMDB's pages in use beyond the capacity. */
  check(addBytes: number): void {
    let used = this.usedBytes(false) + addBytes;
    if (used > 0.9 * this.capacity) used = this.usedBytes(true) + addBytes; // near full: decide on fresh figures
    if (used > this.capacity) throw new CapacityError(`journal capacity reached (map size ${this.#mapSizeMiB} MiB, ${used} bytes in use and needed)`);
  }

  /**
   * Bytes of the pages LMDB uses: its figures when last read, plus what was stored since scaled by the
   * page overhead then measured (at least 1, at most 8 bytes of page per stored byte).
   */
  usedBytes(fresh: boolean): number {
    const c = this.sample(fresh);
    const { eventBytes, otherBytes } = this.#journal.state;
    const inUse = (c.figures.pages - c.figures.freePages) * c.figures.pageSize;
    const grown = eventBytes + otherBytes - c.storedBytes;
    return grown <= 0 ? inUse : Math.round(inUse + grown * Math.min(8, Math.max(1, inUse / Math.max(1, c.storedBytes))));
  }

  sample(fresh = false): StorageSample {
    const now = performance.now();
    if (!fresh && this.#storageCache && now - this.#storageCache.at < STORAGE_TTL_MS) return this.#storageCache;
    let fileBytes = 0;
    try {
      fileBytes = statSync(join(this.#path, 'data.mdb')).size;
    } catch {
      // reported as 0 rather than failing a health check
    }
    const { env, db, state } = this.#journal;
    this.#storageCache = { at: now, figures: storageFigures(env, db), fileBytes, storedBytes: state.eventBytes + state.otherBytes };
    return this.#storageCache;
  }

  /** The filesystem's free bytes for the journal's directory (unbounded when it cannot be read). */
  diskFree(): number {
    const now = performance.now();
    if (this.#diskFreeCache && now - this.#diskFreeCache.at < DISK_FREE_TTL_MS) return this.#diskFreeCache.bytes;
    let bytes = Number.MAX_SAFE_INTEGER;
    try {
      const fs = statfsSync(this.#path);
      bytes = fs.bavail * fs.bsize;
    } catch {
      // keep the capacity bound alone
    }
    this.#diskFreeCache = { at: now, bytes };
    return bytes;
  }
}
