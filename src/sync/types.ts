// What the sync server needs from the journal, as a local interface so the server can be tested
// against the real journal or against a small in-memory reader. seq is the 0-based leaf index;
// `bytes` is the event's canonical JSON exactly as it was hashed into the tree.

import type { FoldedRefusal } from './refusal-fold.ts';

export interface CheckpointInfo {
  size: number;
  /** Base64 of the 32-byte RFC 6962 root hash. */
  rootHash: string;
  /** The C2SP tlog-checkpoint signed note, verbatim. */
  note: string;
}

export interface JournalEventBytes {
  seq: number;
  bytes: string;
}

export interface JournalReaderLike {
  size(): number;
  /** Lowest seq whose event is still held (retention removes a prefix, only up to the acknowledged seq). */
  firstRetained(): number;
  readEvents(fromSeq: number, limit: number): JournalEventBytes[];
  inclusionProof(seq: number, treeSize: number): Uint8Array[];
  consistencyProof(oldSize: number, newSize: number): Uint8Array[];
  latestCheckpoint(): CheckpointInfo | undefined;
  checkpointFor(size: number): CheckpointInfo | undefined;
  /** Upstream holds every event up to and including seq (retention may move on). */
  acknowledge(seq: number, by: string): Promise<void>;
  acknowledged(): number;
  addCosignature(note: string): unknown;
  /** Cosigned notes stored for the checkpoint of this size. */
  cosignatures(size: number): string[];
  publicKeyVkey(): string;
}

/** What the server reports for the daemon to journal or log (never secrets). */
export type SyncAuditEvent =
  | { kind: 'acknowledged'; by: string; seq: number; checkpointSize: number }
  | { kind: 'cosigned'; by: string; size: number; witness: string }
  /**
   * Refused before any request was served (handshake refused, too many connections from one source, a
   * certificate no `sync.clients` entry names), folded per source and interval (refusal-fold.ts).
   */
  | ({ kind: 'auth_refused' } & FoldedRefusal)
  | { kind: 'request_refused'; by: string; path: string; status: number; error: string };

// ---- wire shapes (snake_case on the wire, as documented in server.ts)

export interface WireCheckpoint {
  size: number;
  root_hash: string;
  note: string;
}

export interface WireEventsPage {
  events: { seq: number; event: string }[];
  /** The seq to ask for next (from + events.length). */
  next: number;
  tree_size: number;
}

export interface WireProof {
  proof: string[];
}

export interface WireError {
  /** `seq` names the missing event of an event_missing refusal. */
  error: { code: SyncWireErrorCode; message: string; seq?: number };
}

/** Stable error codes the server puts on the wire; clients match on these, never on message text. */
export const SYNC_WIRE_ERRORS = {
  bad_parameter: 400,
  bad_body: 400,
  out_of_range: 400,
  rejected: 400,
  unknown_client: 403,
  forbidden: 403,
  not_found: 404,
  no_checkpoint: 404,
  method_not_allowed: 405,
  already_cosigned: 409,
  body_too_large: 413,
  unsupported_media_type: 415,
  internal: 500,
  event_missing: 500,
  unavailable: 503,
} as const;

export type SyncWireErrorCode = keyof typeof SYNC_WIRE_ERRORS;
