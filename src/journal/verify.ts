// Offline verification an auditor or the puller runs without the gateway or LMDB: proof bundles and
// exported / pulled JSON-lines streams, against the appliance's pinned vkey.
//
// Export line format: the canonical event JSON with one extra member, `leaf_hash` (base64 of the stored
// RFC 6962 leaf hash). The leaf data is the canonical JSON of the line without `leaf_hash`. The carried
// leaf hashes are authenticated together by the signed root (they must fold to it); each line is then
// checked against its own carried hash, which names the exact line that changed. Lines without
// `leaf_hash` (e.g. pulled pages of raw event bytes) are accepted too; a changed byte in those is still
// detected, but only located to the span the checkpoint covers. Every line, `leaf_hash` or not, must be
// byte for byte the canonical encoding of what it parses to.
import { canonicalJson, CanonicalJsonError, isCanonicalJson } from './canonical.ts';
import { TreeBuilder, equalBytes, leafHash, verifyConsistency, verifyInclusion, type Hash } from './merkle.ts';
import { verifyCheckpoint, type Checkpoint } from './checkpoint.ts';

/** The canonical encoding, or undefined for a value the encoder refuses (so no line the journal wrote). */
function canonicalOrUndefined(value: unknown): string | undefined {
  try {
    return canonicalJson(value);
  } catch (err) {
    if (err instanceof CanonicalJsonError) return undefined;
    throw err;
  }
}

export interface ProofBundle {
  format: 'penstock-proof-bundle/1';
  seq: number;
  /** The event's canonical JSON: exactly the Merkle leaf data. */
  event: string;
  treeSize: number;
  /** Audit path, base64 hashes. */
  inclusion: string[];
  /** Signed checkpoint note of size treeSize. */
  checkpoint: string;
  /** The vkey the gateway says it signs with; informational, verify against your pinned one. */
  vkey: string;
}

export type BundleResult = { ok: true; seq: number; treeSize: number } | { ok: false; problem: string };

/** Checks a proof bundle against the pinned vkey: signature, event encoding and seq, and inclusion. */
export function verifyBundle(bundle: ProofBundle, vkey: string): BundleResult {
  if (bundle?.format !== 'penstock-proof-bundle/1') return { ok: false, problem: 'not a penstock proof bundle' };
  const cp = verifyCheckpoint(bundle.checkpoint, vkey);
  if (!cp.ok) return { ok: false, problem: cp.problem };
  if (cp.checkpoint.size !== bundle.treeSize) return { ok: false, problem: `bundle says tree size ${bundle.treeSize}, checkpoint says ${cp.checkpoint.size}` };
  let event: { seq?: unknown };
  try {
    event = JSON.parse(bundle.event) as { seq?: unknown };
  } catch {
    return { ok: false, problem: 'event is not JSON' };
  }
  if (!isCanonicalJson(bundle.event)) return { ok: false, problem: 'event is not in canonical form (altered)' };
  if (event.seq !== bundle.seq) return { ok: false, problem: `event says seq ${String(event.seq)}, bundle says ${bundle.seq}` };
  const proof = bundle.inclusion.map((h) => new Uint8Array(Buffer.from(h, 'base64')));
  if (!verifyInclusion(bundle.seq, bundle.treeSize, leafHash(Buffer.from(bundle.event, 'utf8')), proof, cp.checkpoint.rootHash)) {
    return { ok: false, problem: `event ${bundle.seq} is not included in the signed tree of size ${bundle.treeSize}` };
  }
  return { ok: true, seq: bundle.seq, treeSize: bundle.treeSize };
}

export interface ExportCheck {
  /** JSON lines (with or without trailing newline; blank lines are ignored). */
  lines: Iterable<string>;
  /** The signed checkpoint the stream must add up to. */
  checkpointNote: string;
  /** The appliance's pinned vkey. */
  vkey: string;
  /** Seq of the first line (default 0). */
  startSeq?: number;
  /** With startSeq > 0: the frontier of [0, startSeq) (journal.frontier(startSeq)), authenticated by the root. */
  prefix?: Hash[];
  /**
   * A checkpoint the verifier already trusts (from an earlier pull). The new one must not be older, and
   * must extend it: checked from the stream when its size falls inside it, else with `knownProof`.
   */
  known?: string;
  /** Consistency proof from the known checkpoint to the new one, when known.size <= startSeq. */
  knownProof?: Hash[];
}

export type ExportResult = { ok: true; size: number; rootHash: string } | { ok: false; seq?: number; line?: number; problem: string };

/** Verifies an exported or pulled JSON-lines stream against a signed checkpoint; names the first bad spot. */
export function verifyExport(input: ExportCheck): ExportResult {
  const start = input.startSeq ?? 0;
  const cpResult = verifyCheckpoint(input.checkpointNote, input.vkey);
  if (!cpResult.ok) return { ok: false, problem: cpResult.problem };
  const cp = cpResult.checkpoint;
  let known: Checkpoint | undefined;
  if (input.known !== undefined) {
    const k = verifyCheckpoint(input.known, input.vkey);
    if (!k.ok) return { ok: false, problem: `held checkpoint: ${k.problem}` };
    known = k.checkpoint;
    if (cp.size < known.size) {
      return { ok: false, seq: cp.size, problem: `rollback: checkpoint size ${cp.size} is older than the held checkpoint of size ${known.size}` };
    }
  }
  let tree: TreeBuilder;
  try {
    tree = new TreeBuilder(start, input.prefix ?? []);
  } catch (err) {
    return { ok: false, problem: `prefix: ${(err as Error).message}` };
  }
  const carried = new TreeBuilder(start, input.prefix ?? []);
  let carriedAll = true;
  let mismatch: { seq: number; line: number } | undefined;
  let expected = start;
  let lineNo = 0;
  const checkKnownAt = (size: number, root: Hash): ExportResult | undefined => {
    if (known && known.size === size && !equalBytes(root, known.rootHash)) {
      return { ok: false, seq: size - 1, problem: `fork: events 0..${size - 1} do not hash to the held checkpoint of size ${size}` };
    }
    return undefined;
  };
  if (known && known.size === start) {
    const r = checkKnownAt(start, tree.root());
    if (r) return r;
  }
  for (const raw of input.lines) {
    lineNo++;
    const text = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    if (text.trim() === '') continue;
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return { ok: false, seq: expected, line: lineNo, problem: `line ${lineNo} (expected seq ${expected}) is not JSON (altered or cut)` };
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return { ok: false, seq: expected, line: lineNo, problem: `line ${lineNo} is not an event object` };
    const { leaf_hash: leafText, ...event } = obj;
    const seq = event.seq;
    if (typeof seq !== 'number') return { ok: false, seq: expected, line: lineNo, problem: `line ${lineNo} has no seq (expected ${expected})` };
    if (seq !== expected) {
      if (seq > expected) return { ok: false, seq: expected, line: lineNo, problem: `seq ${expected} missing: line ${lineNo} holds seq ${seq} (event deleted)` };
      return { ok: false, seq, line: lineNo, problem: `seq ${seq} out of order: line ${lineNo} holds seq ${seq} where seq ${expected} belongs (reordered or duplicated)` };
    }
    if (seq >= cp.size) return { ok: false, seq, line: lineNo, problem: `seq ${seq} is beyond the checkpoint (size ${cp.size}): not proven by it` };
    // Every line must be exactly the canonical encoding of what it parses to, `leaf_hash` or not: JSON.parse
    // forgives duplicate keys and spacing, so bytes an attacker added would otherwise pass unseen. What the
    // encoder refuses (nested deeper than the journal writes) is no line the journal wrote either.
    const data = canonicalOrUndefined(event);
    if (data === undefined || (leafText === undefined ? data : canonicalOrUndefined(obj)) !== text) {
      return { ok: false, seq, line: lineNo, problem: `seq ${seq}: line ${lineNo} is not canonical JSON (altered)` };
    }
    const bytes = Buffer.from(data, 'utf8');
    const h = leafHash(bytes);
    tree.push(h);
    if (typeof leafText === 'string') {
      const c = new Uint8Array(Buffer.from(leafText, 'base64'));
      carried.push(c);
      if (!mismatch && !equalBytes(c, h)) mismatch = { seq, line: lineNo };
    } else {
      carriedAll = false;
    }
    expected++;
    const r = checkKnownAt(expected, tree.root());
    if (r) return r;
  }
  if (expected < cp.size) {
    return { ok: false, seq: expected, problem: `truncated: stream ends before seq ${expected}, the checkpoint covers ${cp.size} events` };
  }
  const root = tree.root();
  if (!equalBytes(root, cp.rootHash)) {
    if (carriedAll && equalBytes(carried.root(), cp.rootHash) && mismatch) {
      return { ok: false, seq: mismatch.seq, line: mismatch.line, problem: `seq ${mismatch.seq}: event on line ${mismatch.line} was changed (its hash differs from the signed tree's leaf)` };
    }
    return { ok: false, seq: start, problem: `events ${start}..${cp.size - 1} do not hash to the signed root of size ${cp.size} (altered; leaf hashes not usable to locate it)` };
  }
  if (known && known.size < start) {
    if (!input.knownProof || !verifyConsistency(known.size, cp.size, known.rootHash, cp.rootHash, input.knownProof)) {
      return { ok: false, seq: known.size, problem: `fork: checkpoint of size ${cp.size} is not proven consistent with the held checkpoint of size ${known.size}` };
    }
  }
  return { ok: true, size: cp.size, rootHash: Buffer.from(root).toString('base64') };
}
