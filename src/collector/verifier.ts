// Per appliance, the pure part of verification: place events by seq, and on a signed checkpoint prove
// that the events since the last verified checkpoint are exactly the ones the appliance signed. No I/O:
// the worker (worker.ts) feeds it messages in stream order, looks up what it asks for in PostgreSQL and
// commits the batches it hands out. Anything wrong comes back as a Violation naming the spot; the
// worker then stops that appliance.
//
// What is proven, and how:
//   - a checkpoint's signature against the PINNED key, origin = the appliance id;
//   - size below the verified one: a resend of a stored checkpoint (identical) or a rollback; same size,
//     other root: a fork;
//   - every seq in [verified size, S) present (else a gap, first missing seq named);
//   - the verified tree (its frontier, kept in PostgreSQL) extended by those events, in seq order, has
//     the signed root (else altered, seq and stream ranges named). This proves order as well: events
//     relabelled to swap places change the root.
import { PenstockError, type ErrorCode } from '../common/errors.ts';
import { verifyCheckpoint } from '../journal/checkpoint.ts';
import { fastLeafHash, fastNodeHash } from '../journal/fast-hash.ts';
import { equalBytes, TreeBuilder, type Hash } from '../journal/merkle.ts';

export interface Position {
  /** Events verified and stored: seqs 0 .. next-1 (always a checkpoint size). */
  next: number;
  frontier: Hash[];
  rootHash: Hash | null;
  /** Stream sequence up to which nothing is needed any more: the consumer restarts after it. */
  streamSeq: number;
}

/** An event checked for shape and placed by seq, waiting for the checkpoint that covers it. */
export interface PendingEvent {
  seq: number;
  text: string;
  streamSeq: number;
  time: string;
  code: string;
  event: string;
  principal: string | null;
  target: string | null;
  session: string | null;
}

export interface Batch {
  /** Position before (the commit's optimistic guard) and after. */
  from: Position;
  to: Position;
  events: PendingEvent[];
  checkpoint: { size: number; rootHash: Hash; note: string };
}

export type Violation = PenstockError & { details: ViolationDetail };

export interface ViolationDetail {
  appliance: string;
  /** The seq at fault (or the first of a range). */
  seq?: number;
  seq_range?: [number, number];
  /** The JetStream stream sequence of the message at fault, or the range of the messages involved. */
  stream_seq?: number;
  stream_seq_range?: [number, number];
  checkpoint_size?: number;
  verified_size: number;
  [k: string]: unknown;
}

export type EventOutcome =
  | { kind: 'pending' }
  | { kind: 'duplicate' }
  /** Below the verified size: the worker compares it with the stored row. */
  | { kind: 'resend'; seq: number; text: string; streamSeq: number }
  | { kind: 'violation'; violation: Violation };

export type CheckpointOutcome =
  | { kind: 'duplicate' }
  /** Below the verified size: the worker compares it with the stored checkpoint of that size. */
  | { kind: 'older'; size: number; rootHash: Hash; note: string; streamSeq: number }
  | { kind: 'commit'; batch: Batch }
  | { kind: 'violation'; violation: Violation };

export class ApplianceVerifier {
  readonly appliance: string;
  readonly #vkey: string;
  readonly #maxPending: number;
  #pos: Position;
  readonly #pending = new Map<number, PendingEvent>();

  constructor(appliance: string, vkey: string, position: Position, maxPending: number) {
    this.appliance = appliance;
    this.#vkey = vkey;
    this.#pos = position;
    this.#maxPending = maxPending;
  }

  get position(): Position {
    return this.#pos;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  violation(code: ErrorCode, message: string, detail: Omit<ViolationDetail, 'appliance' | 'verified_size'>): Violation {
    const details: ViolationDetail = { appliance: this.appliance, verified_size: this.#pos.next, ...detail };
    return new PenstockError(code, `appliance ${this.appliance}: ${message}`, details) as Violation;
  }

  /** An event message: header seq, payload bytes, its stream sequence. */
  onEvent(headerSeq: number, payload: Uint8Array, streamSeq: number): EventOutcome {
    const fail = (code: ErrorCode, message: string, extra: Record<string, unknown> = {}): EventOutcome => ({ kind: 'violation', violation: this.violation(code, message, { seq: headerSeq, stream_seq: streamSeq, ...extra }) });
    const text = Buffer.from(payload).toString('utf8');
    // Stored as text: bytes that do not survive UTF-8 decoding could not be stored byte-identical.
    if (!Buffer.from(text, 'utf8').equals(Buffer.from(payload))) return fail('PS_COLLECTOR_MALFORMED', `event ${headerSeq} (stream ${streamSeq}) is not UTF-8`);
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      body = parsed as Record<string, unknown>;
    } catch {
      return fail('PS_COLLECTOR_MALFORMED', `event ${headerSeq} (stream ${streamSeq}) is not a JSON object`);
    }
    if (body.appliance !== this.appliance) {
      return fail('PS_COLLECTOR_FOREIGN', `event ${headerSeq} (stream ${streamSeq}) on this appliance's subject is for appliance ${JSON.stringify(body.appliance)}`, { body_appliance: body.appliance });
    }
    if (body.seq !== headerSeq) {
      return fail('PS_COLLECTOR_REORDERED', `event labelled seq ${headerSeq} (stream ${streamSeq}) carries seq ${JSON.stringify(body.seq)} in its body`, { body_seq: body.seq });
    }
    const str = (v: unknown) => (typeof v === 'string' ? v : null);
    if (typeof body.time !== 'string' || Number.isNaN(Date.parse(body.time)) || typeof body.code !== 'string' || typeof body.event !== 'string') {
      return fail('PS_COLLECTOR_MALFORMED', `event ${headerSeq} (stream ${streamSeq}) lacks time, code or event`);
    }
    const seq = headerSeq;
    if (seq < this.#pos.next) return { kind: 'resend', seq, text, streamSeq };
    const held = this.#pending.get(seq);
    if (held) {
      if (held.text === text) return { kind: 'duplicate' };
      return fail('PS_COLLECTOR_ALTERED', `event ${seq} arrived twice with different bodies (stream ${held.streamSeq} and ${streamSeq})`, { stream_seq_range: [held.streamSeq, streamSeq] });
    }
    if (this.#pending.size >= this.#maxPending) {
      return fail('PS_COLLECTOR_BUFFER_FULL', `${this.#pending.size} events wait after checkpoint ${this.#pos.next} with no checkpoint to verify them (limit collector.max_pending_events)`);
    }
    this.#pending.set(seq, {
      seq, text, streamSeq, time: body.time, code: body.code, event: body.event,
      principal: str(body.principal), target: str(body.target), session: str(body.session),
    });
    return { kind: 'pending' };
  }

  /** A checkpoint message: header size, the signed note, its stream sequence. */
  onCheckpoint(headerSize: number, payload: Uint8Array, streamSeq: number): CheckpointOutcome {
    const note = Buffer.from(payload).toString('utf8');
    const fail = (code: ErrorCode, message: string, extra: Record<string, unknown> = {}): CheckpointOutcome => ({ kind: 'violation', violation: this.violation(code, message, { stream_seq: streamSeq, checkpoint_size: headerSize, ...extra }) });
    const r = verifyCheckpoint(note, this.#vkey);
    if (!r.ok) return fail('PS_COLLECTOR_BAD_SIGNATURE', `checkpoint labelled size ${headerSize} (stream ${streamSeq}) does not verify against the pinned key: ${r.problem}`);
    const { size, rootHash } = r.checkpoint;
    if (size !== headerSize) return fail('PS_COLLECTOR_MALFORMED', `checkpoint labelled size ${headerSize} (stream ${streamSeq}) signs size ${size}`);
    const pos = this.#pos;
    if (size < pos.next) return { kind: 'older', size, rootHash, note, streamSeq };
    if (size === pos.next) {
      if (pos.rootHash === null ? size === 0 && equalBytes(rootHash, new TreeBuilder().root()) : equalBytes(rootHash, pos.rootHash)) return { kind: 'duplicate' };
      return fail('PS_COLLECTOR_FORK', `checkpoint of size ${size} (stream ${streamSeq}) has another root than the verified checkpoint of that size`, { checkpoint_size: size });
    }
    const events: PendingEvent[] = [];
    for (let seq = pos.next; seq < size; seq++) {
      const e = this.#pending.get(seq);
      if (!e) return fail('PS_COLLECTOR_GAP', `gap: seq ${seq} missing before checkpoint ${size} (stream ${streamSeq})`, { seq, checkpoint_size: size });
      events.push(e);
    }
    const tree = new TreeBuilder(pos.next, pos.frontier, fastNodeHash);
    for (const e of events) tree.push(fastLeafHash(Buffer.from(e.text, 'utf8')));
    if (!equalBytes(tree.root(), rootHash)) {
      const streams = events.map((e) => e.streamSeq);
      return fail('PS_COLLECTOR_ALTERED', `events ${pos.next}..${size - 1} (stream ${Math.min(...streams)}..${Math.max(...streams)}) do not make the root signed by checkpoint ${size} (stream ${streamSeq}): altered, reordered or replaced`, {
        seq: pos.next, seq_range: [pos.next, size - 1], stream_seq_range: [Math.min(...streams), Math.max(...streams)], checkpoint_stream_seq: streamSeq, checkpoint_size: size,
      });
    }
    // Events past this checkpoint may sit earlier in the stream (a pipelined publish): the consumer
    // must restart before the first of them, so the stored stream position stops short of it.
    let resumeAfter = Math.max(pos.streamSeq, streamSeq);
    for (const [seq, e] of this.#pending) if (seq >= size && e.streamSeq <= resumeAfter) resumeAfter = e.streamSeq - 1;
    const to: Position = { next: size, frontier: tree.frontier(), rootHash, streamSeq: Math.max(pos.streamSeq, resumeAfter) };
    return { kind: 'commit', batch: { from: pos, to, events, checkpoint: { size, rootHash, note } } };
  }

  /** The batch is in PostgreSQL: move on, forget what it held. */
  committed(batch: Batch): void {
    for (const e of batch.events) this.#pending.delete(e.seq);
    this.#pos = batch.to;
  }
}
