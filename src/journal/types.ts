// The contract every part relies on: `append` resolves only when the event is durably committed.
// An allowed write, call or exec is forwarded only after its append resolved; when the journal
// cannot be written, append rejects with PenstockError('PS_JOURNAL_UNAVAILABLE') and callers refuse.
import type { StoredEvent } from './event.ts';
import type { Action, Decision } from '../policy/types.ts';
import type { EventName } from './codes.ts';

export interface JournalEventInput {
  event: EventName;
  session?: string;
  principal?: string;
  /** Delegation chain, the principal first: [agent, vendor, work-order:WO-4411]. */
  chain?: string[];
  target?: string;
  /** Front door (listener id) the request came through. */
  listener?: string;
  action?: Action;
  decision?: Decision;
  /** What happened upstream: protocol fields (Zeek/Suricata names), exception, bytes, duration. */
  outcome?: Record<string, unknown>;
  /** Anything else, event-specific. Never secrets. */
  detail?: Record<string, unknown>;
}

export interface AppendOptions {
  /** The event gates nothing: commit it with the next commit, or within a few milliseconds. */
  lazy?: boolean;
}

export interface JournalReceipt {
  seq: number;
}

export interface JournalHealth {
  writable: boolean;
  /** Why it is not writable (disk full, map full, I/O error), when it is not. */
  failure?: string;
  size: number;
  /** Bytes the journal stores (event bodies, tree nodes, checkpoints, cosignatures). */
  bytes: number;
  /** The LMDB data file's real size on disk. */
  fileBytes: number;
  /** Bytes of the LMDB pages in use (the file minus LMDB's free pages): what counts against capacity. */
  usedBytes: number;
  /** What may still be written: disk free plus LMDB's free pages, bounded by the capacity left. */
  freeBytes: number;
  /** The configured capacity (journal.map_size_mib). */
  capacityBytes: number;
  /** LMDB's own figures: page size, pages in the file, pages on its free list, reader slots in use. */
  lmdb: { pageSize: number; pages: number; freePages: number; readers: number };
  lastCheckpoint?: { size: number; rootHash: string; time: string };
  acknowledgedUpTo: number;
  /** Other upstream cursors (push, SIEM exports): the highest seq each holds. */
  cursors?: Record<string, number>;
}

export interface Journal {
  append(input: JournalEventInput, options?: AppendOptions): Promise<JournalReceipt>;
  health(): JournalHealth;
  /** Whether an append can be written now: health().writable without building the rest (checked on every read). */
  readonly writable: boolean;
  /** Follow committed events (detectors, live views): see LmdbJournal.onCommitted. */
  onCommitted(listener: (events: readonly StoredEvent[]) => void): () => void;
  close(): Promise<void>;
}
