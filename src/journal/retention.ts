// Retention: what upstream acknowledged, what may be pruned, and the witnesses' cosignatures.
//
// `prune` removes event bodies (oldest first) only up to the acknowledged cursor. Tree nodes (leaf hashes
// and perfect-subtree hashes, ~64 bytes per event) are kept forever, so roots, inclusion proofs for
// retained events and consistency proofs between any checkpoints stay available.
//
// Every write here goes through the journal's one small-write path (`writeSync`): a failure marks the
// journal unavailable like a failed append, and the state is replaced only after the commit.
import { createHash } from 'node:crypto';
import { PenstockError } from '../common/errors.ts';
import type { Clock } from '../common/clock.ts';
import { parseCheckpointBody, parseNote, NoteError } from './checkpoint.ts';
import type { JournalDbs, JournalState } from './store.ts';

/** Events removed per write transaction, so that one prune never holds one huge transaction. */
const PRUNE_CHUNK = 10_000;

/** What retention needs of the journal. */
export interface RetentionHost {
  /** The committed state now (every write replaces it). */
  readonly state: JournalState;
  /** The databases now (a reopen after a fatal LMDB error replaces them). */
  readonly db: JournalDbs;
  readonly clock: Clock;
  /** One write transaction that also stores the state `fn` changed; a failure marks the journal unavailable. */
  writeSync(what: string, fn: (state: JournalState) => void): void;
}

/**
 * Records that upstream holds every event up to and including `seq` (monotonic: a lower seq is a no-op).
 * Throws PS_JOURNAL_BAD_REQUEST for a seq not yet written.
 */
export function acknowledge(host: RetentionHost, seq: number, by: string): void {
  const { size, ack } = host.state;
  if (!Number.isSafeInteger(seq) || seq < 0 || seq >= size) {
    throw new PenstockError('PS_JOURNAL_BAD_REQUEST', `cannot acknowledge seq ${seq}: the journal holds 0..${size - 1}`);
  }
  if (seq <= ack) return;
  host.writeSync('acknowledge', (state) => {
    state.ack = seq;
    state.ackBy = by;
  });
}

/**
 * Records that the upstream `name` (`push`, `siem:<id>`) holds every event up to and including `seq`:
 * monotonic, like `acknowledge`; PS_JOURNAL_BAD_REQUEST for a seq not yet written. `pull` is `acknowledge`.
 */
export function advanceCursor(host: RetentionHost, name: string, seq: number): void {
  if (name === 'pull') throw new PenstockError('PS_JOURNAL_BAD_REQUEST', 'the pull cursor moves by acknowledge()');
  const { size } = host.state;
  if (!Number.isSafeInteger(seq) || seq < 0 || seq >= size) {
    throw new PenstockError('PS_JOURNAL_BAD_REQUEST', `cannot move cursor ${name} to seq ${seq}: the journal holds 0..${size - 1}`);
  }
  if (seq <= cursorAt(host.state, name)) return;
  host.writeSync(`cursor ${name}`, (state) => {
    state.cursors = { ...state.cursors, [name]: seq };
  });
}

/** The highest seq upstream `name` holds (-1 for none); `pull` is the acknowledged cursor. */
export function cursorAt(state: JournalState, name: string): number {
  return name === 'pull' ? state.ack : (state.cursors?.[name] ?? -1);
}

export interface PruneLimits {
  /** Total stored bytes (event bodies, tree nodes, checkpoints, cosignatures). */
  maxBytes?: number;
  maxAgeMs?: number;
  /**
   * The upstream cursors whose acknowledgement lets an event go (`pull`, `push`): bodies are removed only up to
   * the lowest of them. Default: `pull`.
   */
  acknowledgedBy?: readonly string[];
}

/**
 * Removes event bodies, oldest first, while the journal is over `maxBytes` or the oldest event is older
 * than `maxAgeMs`, but never above the lowest of the counted upstream cursors. Tree nodes stay.
 */
export function prune(host: RetentionHost, limits: PruneLimits): { removed: number; first: number; bytes: number } {
  let removed = 0;
  const now = host.clock.now();
  const counted = limits.acknowledgedBy?.length ? limits.acknowledgedBy : ['pull'];
  const upTo = (s: JournalState) => Math.min(...counted.map((name) => cursorAt(s, name)));
  const over = (s: JournalState, body: Buffer): boolean => {
    if (limits.maxBytes !== undefined && s.eventBytes + s.otherBytes > limits.maxBytes) return true;
    if (limits.maxAgeMs !== undefined) {
      const time = Date.parse((JSON.parse(body.toString('utf8')) as { time: string }).time);
      if (!(now - time <= limits.maxAgeMs)) return true;
    }
    return false;
  };
  for (;;) {
    let chunk = 0;
    host.writeSync('prune', (state) => {
      const bound = upTo(state);
      while (chunk < PRUNE_CHUNK && state.first <= bound) {
        const body = host.db.events.getBinary(state.first);
        if (!body) throw new PenstockError('PS_JOURNAL_CORRUPT', `event ${state.first} is missing`);
        if (!over(state, body)) break;
        host.db.events.removeSync(state.first);
        state.eventBytes -= body.length;
        state.first++;
        chunk++;
      }
    });
    removed += chunk;
    if (chunk < PRUNE_CHUNK) break;
  }
  const { first, eventBytes, otherBytes } = host.state;
  return { removed, first, bytes: eventBytes + otherBytes };
}

/**
 * Stores a witness's cosigned copy of one of our checkpoints. The note must parse and its body must be
 * byte-for-byte a checkpoint this journal issued; the witness key is not known here and is not checked.
 * Throws PS_JOURNAL_BAD_REQUEST otherwise.
 */
export function addCosignature(host: RetentionHost, noteText: string): { size: number } {
  let size: number;
  try {
    const note = parseNote(noteText);
    size = parseCheckpointBody(note.body).size;
    const ours = host.db.checkpoints.get(size);
    if (!ours || parseNote(ours.note).body !== note.body) {
      throw new PenstockError('PS_JOURNAL_BAD_REQUEST', `cosigned checkpoint (size ${size}) is not one this journal issued`);
    }
  } catch (err) {
    if (err instanceof NoteError) throw new PenstockError('PS_JOURNAL_BAD_REQUEST', `cosignature note: ${err.message}`);
    throw err;
  }
  const id = createHash('sha256').update(noteText).digest('hex');
  host.writeSync('cosignature', (state) => {
    if (host.db.cosigs.get([size, id]) === undefined) state.otherBytes += noteText.length;
    host.db.cosigs.putSync([size, id], noteText);
  });
  return { size };
}

/** Cosigned notes stored for a checkpoint size. */
export function cosignatures(db: JournalDbs, size: number): string[] {
  return Array.from(db.cosigs.getRange({ start: [size], end: [size + 1] }), ({ value }) => value);
}
