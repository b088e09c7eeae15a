// Proofs and exports over the stored tree: leaf hashes, roots, RFC 6962 inclusion and consistency
// proofs, frontiers, JSON-lines exports and offline proof bundles. Reads only, except that an export or
// bundle asks the journal to sign a checkpoint first when none covers what it proves.
import { PenstockError } from '../common/errors.ts';
import {
  consistencyProof as merkleConsistency,
  frontierAt,
  inclusionProof as merkleInclusion,
  rootAt as merkleRootAt,
  type NodeSource,
  b64,
} from './merkle.ts';
import { canonicalJson } from './canonical.ts';
import type { ProofBundle } from './verify.ts';
import type { CheckpointInfo, JournalDbs, JournalState } from './store.ts';

/** What proofs need of the journal. */
export interface ProofSource {
  /** The committed state now (every write replaces it). */
  readonly state: JournalState;
  /** The databases now (a reopen after a fatal LMDB error replaces them). */
  readonly db: JournalDbs;
  /** The stored tree nodes (a missing node is PS_JOURNAL_CORRUPT). */
  readonly nodes: NodeSource;
  /** The appliance's verifier key, for bundles. */
  readonly vkey: string;
  latestCheckpoint(): CheckpointInfo | undefined;
  /** Signs a checkpoint now if there are events since the last one; returns the latest checkpoint. */
  checkpoint(): CheckpointInfo | undefined;
}

function checkSeq(src: ProofSource, seq: number, treeSize: number): void {
  const { size } = src.state;
  if (!Number.isSafeInteger(seq) || seq < 0 || seq >= treeSize || seq >= size) {
    throw new PenstockError('PS_JOURNAL_BAD_REQUEST', `no event ${seq} in a tree of size ${Math.min(treeSize, size)}`);
  }
}

/** The stored leaf hash of event `seq`. */
export function leafHash(src: ProofSource, seq: number): Uint8Array {
  checkSeq(src, seq, src.state.size);
  return src.nodes.node(0, seq);
}

/** Root hash of the tree of the first `size` events (any size up to the journal's size). */
export function rootAt(src: ProofSource, size: number): Uint8Array {
  const have = src.state.size;
  if (!Number.isSafeInteger(size) || size < 0 || size > have) throw new PenstockError('PS_JOURNAL_BAD_REQUEST', `no tree of size ${size} (journal size ${have})`);
  return merkleRootAt(src.nodes, size);
}

/** RFC 6962 audit path of event `seq` in the tree of `treeSize` events. */
export function inclusionProof(src: ProofSource, seq: number, treeSize: number): Uint8Array[] {
  checkSeq(src, seq, treeSize);
  const have = src.state.size;
  if (treeSize > have) throw new PenstockError('PS_JOURNAL_BAD_REQUEST', `tree size ${treeSize} is beyond the journal (${have})`);
  return merkleInclusion(src.nodes, seq, treeSize);
}

/** RFC 6962 consistency proof from tree size oldSize to newSize. */
export function consistencyProof(src: ProofSource, oldSize: number, newSize: number): Uint8Array[] {
  const have = src.state.size;
  if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 0 || oldSize > newSize || newSize > have) {
    throw new PenstockError('PS_JOURNAL_BAD_REQUEST', `no consistency proof from ${oldSize} to ${newSize} (journal size ${have})`);
  }
  return merkleConsistency(src.nodes, oldSize, newSize);
}

/** Hashes of the maximal perfect subtrees of [0, size): what a verifier needs to check events from `size` on. */
export function frontier(src: ProofSource, size: number): Uint8Array[] {
  rootAt(src, size);
  return frontierAt(src.nodes, size);
}

/**
 * Writes events [fromSeq, toSeq] as JSON lines (the canonical event plus its `leaf_hash`, see verify.ts)
 * and returns the signed checkpoint that covers them (signing one first when needed), for verifyExport.
 */
export function exportJsonLines(src: ProofSource, fromSeq: number, toSeq: number, write: (line: string) => void): { lines: number; first: number; checkpoint: string } {
  let cp = src.latestCheckpoint();
  if (!cp || cp.size < Math.min(toSeq + 1, src.state.size)) cp = src.checkpoint();
  const end = Math.min(toSeq + 1, cp?.size ?? 0);
  let lines = 0;
  const first = Math.max(fromSeq, src.state.first);
  for (const { key, value } of src.db.events.getRange({ start: first, end })) {
    const event = JSON.parse(value.toString('utf8')) as Record<string, unknown>;
    write(`${canonicalJson({ ...event, leaf_hash: b64(src.nodes.node(0, key)) })}\n`);
    lines++;
  }
  return { lines, first, checkpoint: cp?.note ?? '' };
}

/** An offline proof that event `seq` is in the journal: check it with verifyBundle (verify.ts). */
export function proveBundle(src: ProofSource, seq: number): ProofBundle {
  checkSeq(src, seq, src.state.size);
  const body = src.db.events.getBinary(seq);
  if (!body) throw new PenstockError('PS_JOURNAL_BAD_REQUEST', `event ${seq} was pruned (first retained is ${src.state.first})`);
  let cp = src.latestCheckpoint();
  if (!cp || cp.size <= seq) cp = src.checkpoint()!;
  return {
    format: 'penstock-proof-bundle/1',
    seq,
    event: body.toString('utf8'),
    treeSize: cp.size,
    inclusion: merkleInclusion(src.nodes, seq, cp.size).map(b64),
    checkpoint: cp.note,
    vkey: src.vkey,
  };
}
