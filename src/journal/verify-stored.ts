// Verification of the journal as stored in LMDB: every retained event's hash against its stored leaf,
// seq continuity, every perfect tree node, every checkpoint's signature and root, consistency between
// successive checkpoints, and (when the operator gives one) consistency with a checkpoint kept elsewhere.
// Runs in the daemon's verify worker (verify-worker.ts) and, for tests and tools, on the calling thread.
//
// Every range scan here ends before the function returns, whatever path it returns by: an unfinished
// lmdb-js range iterator keeps its read transaction open, and LMDB then never reuses a page freed after
// it (the data file grew by ~25 KB per event after one verify).
import type { Database } from 'lmdb';
import type { ErrorCode } from '../common/errors.ts';
import { consistencyProof, frontierAt, rootAt, TreeBuilder, verifyConsistency, type Hash, type NodeSource, b64 } from './merkle.ts';
import { verifyCheckpoint } from './checkpoint.ts';
import { fastLeafHash, fastNodeHash } from './fast-hash.ts';
import { allCheckpoints, nodeKey, STATE_KEY, type JournalDbs } from './store.ts';

/** A tree size and root the operator kept elsewhere (from a signed note, or given by hand). */
export interface KeptCheckpoint {
  size: number;
  rootHash: Uint8Array;
}

/**
 * Stable codes of a failed verification (src/common/errors.ts): PS_JOURNAL_CORRUPT (something stored does
 * not add up), PS_JOURNAL_ROLLED_BACK (smaller than a checkpoint kept elsewhere), PS_JOURNAL_FORKED (a
 * different tree at the kept checkpoint's size).
 */
export const VERIFY_CODES = ['PS_JOURNAL_CORRUPT', 'PS_JOURNAL_ROLLED_BACK', 'PS_JOURNAL_FORKED'] as const satisfies readonly ErrorCode[];
export type VerifyCode = (typeof VERIFY_CODES)[number];

export type VerifyResult = { ok: true; size: number } | { ok: false; code: VerifyCode; seq: number; problem: string };

export function nodeSourceOf(nodes: Database<Buffer, number>): NodeSource {
  return {
    node(level, index) {
      const v = nodes.getBinary(nodeKey(level, index));
      if (!v) throw new Error(`tree node level ${level} index ${index} is missing`);
      return new Uint8Array(v);
    },
  };
}

/** Verifies the journal in `dbs` as one read snapshot sees it; names the first bad spot. */
export function verifyStored(dbs: JournalDbs, vkey: string, kept?: KeptCheckpoint): VerifyResult {
  const state = dbs.meta.get(STATE_KEY) ?? { size: 0, first: 0 };
  const { size, first } = state;
  const bad = (seq: number, problem: string, code: VerifyCode = 'PS_JOURNAL_CORRUPT'): VerifyResult => ({ ok: false, code, seq, problem });
  if (kept && kept.size > size) {
    return bad(size, `journal holds ${size} events, fewer than the kept checkpoint of size ${kept.size}: rolled back to an older copy`, 'PS_JOURNAL_ROLLED_BACK');
  }
  const nodeSource = nodeSourceOf(dbs.nodes);
  const checkpoints = allCheckpoints(dbs);
  // Checkpoints first: signature and origin.
  for (const cp of checkpoints) {
    const v = verifyCheckpoint(cp.note, vkey);
    if (!v.ok) return bad(cp.size, `checkpoint at size ${cp.size}: ${v.problem}`);
    if (v.checkpoint.size !== cp.size || b64(v.checkpoint.rootHash) !== cp.rootHash) return bad(cp.size, `checkpoint at size ${cp.size}: stored record does not match its signed note`);
    if (cp.size > size) return bad(size, `checkpoint at size ${cp.size} is beyond the journal size ${size} (events lost or rolled back)`);
  }
  let tree: TreeBuilder;
  try {
    tree = new TreeBuilder(first, frontierAt(nodeSource, first), fastNodeHash);
  } catch (err) {
    return bad(first, `tree nodes of the pruned prefix [0, ${first}) are missing: ${(err as Error).message}`);
  }
  // Checkpoints inside the pruned prefix: check by stored nodes and proof to the next checkpoint.
  let cpIndex = 0;
  while (cpIndex < checkpoints.length && checkpoints[cpIndex]!.size <= first) {
    const cp = checkpoints[cpIndex]!;
    try {
      if (b64(rootAt(nodeSource, cp.size)) !== cp.rootHash) return bad(cp.size, `checkpoint at size ${cp.size}: root does not match the stored tree`);
    } catch (err) {
      return bad(cp.size, `checkpoint at size ${cp.size}: ${(err as Error).message}`);
    }
    cpIndex++;
  }
  const scanned = scanEvents(dbs, { size, first }, tree, checkpoints.slice(cpIndex));
  if (!scanned.ok) return scanned;
  // Successive checkpoints must be consistent (already implied above for retained ranges; proofs make it explicit).
  for (let i = 1; i < checkpoints.length; i++) {
    const a = checkpoints[i - 1]!;
    const b = checkpoints[i]!;
    const proof = consistencyProof(nodeSource, a.size, b.size);
    if (!verifyConsistency(a.size, b.size, Buffer.from(a.rootHash, 'base64'), Buffer.from(b.rootHash, 'base64'), proof)) {
      return bad(a.size, `checkpoint at size ${b.size} is not consistent with checkpoint at size ${a.size}`);
    }
  }
  if (kept) {
    // RFC 6962 consistency proof from the kept tree to the tree just recomputed from the events.
    const proof = consistencyProof(nodeSource, kept.size, size);
    if (!verifyConsistency(kept.size, size, kept.rootHash, scanned.root, proof)) {
      return bad(Math.max(0, kept.size - 1), `the journal's first ${kept.size} events do not hash to the kept checkpoint's root: not an extension of it (forked or rewritten)`, 'PS_JOURNAL_FORKED');
    }
  }
  return { ok: true, size };
}

/** The retained events against their leaves, the nodes above them and the checkpoints they reach. */
function scanEvents(
  dbs: JournalDbs,
  { size, first }: { size: number; first: number },
  tree: TreeBuilder,
  checkpoints: { size: number; rootHash: string }[],
): { ok: true; root: Hash } | Extract<VerifyResult, { ok: false }> {
  const bad = (seq: number, problem: string) => ({ ok: false as const, code: 'PS_JOURNAL_CORRUPT' as const, seq, problem });
  let expected = first;
  let cpIndex = 0;
  let problem: ReturnType<typeof bad> | undefined;
  // One range scan per tree level instead of a look-up per node: the nodes a push completes come in
  // index order on every level, starting at the node that holds leaf `first`.
  const levels: Iterator<{ key: number; value: Buffer }>[] = [];
  const levelScan = (level: number) => {
    const start = nodeKey(level, Math.floor(first / 2 ** level));
    return (levels[level] ??= dbs.nodes.getRange({ start, end: nodeKey(level + 1, 0) })[Symbol.iterator]());
  };
  const check = (level: number, index: number, hash: Hash): void => {
    if (problem) return;
    const next = levelScan(level).next();
    const stored = !next.done && next.value.key === nodeKey(level, index) ? next.value.value : undefined;
    const seq = index * 2 ** level;
    if (!stored) problem = bad(seq, level === 0 ? `seq ${seq}: leaf hash missing` : `tree node level ${level} index ${index} missing`);
    else if (!stored.equals(hash)) {
      problem = bad(seq, level === 0 ? `seq ${seq}: event bytes do not match the stored leaf hash (event changed)` : `tree node level ${level} index ${index} (leaves from ${seq}) does not match the leaves below it`);
    }
  };
  try {
    // for…of ends the events scan on every exit; the level scans are ended in `finally`.
    for (const { key, value } of dbs.events.getRange({ start: first })) {
      if (key !== expected) return bad(expected, key > expected ? `seq ${expected}: event missing (next stored is ${key})` : `unexpected key ${key}`);
      if (key >= size) return bad(key, `seq ${key}: event beyond the recorded journal size ${size}`);
      const seqInBody = seqOf(value, key);
      if (seqInBody !== key) return bad(key, `seq ${key}: event body says seq ${String(seqInBody)} (moved or reordered)`);
      tree.push(fastLeafHash(value), check);
      if (problem) return problem;
      expected++;
      while (cpIndex < checkpoints.length && checkpoints[cpIndex]!.size === expected) {
        const cp = checkpoints[cpIndex]!;
        if (b64(tree.root()) !== cp.rootHash) return bad(cp.size - 1, `checkpoint at size ${cp.size}: root of events 0..${cp.size - 1} does not match the signed root`);
        cpIndex++;
      }
    }
  } finally {
    for (const it of levels) it?.return?.();
  }
  if (expected !== size) return bad(expected, `seq ${expected}: event missing (journal size is ${size}, stored events end at ${expected - 1})`);
  if (cpIndex < checkpoints.length) return bad(checkpoints[cpIndex]!.size, `checkpoint at size ${checkpoints[cpIndex]!.size} was never reached`);
  return { ok: true, root: tree.root() };
}

const SEQ_MEMBER = Buffer.from('"seq":');

/**
 * The top-level "seq" of a stored event. Fast path for the bytes the journal writes: in canonical JSON
 * `"seq":` can only be a key (inside a string the quotes are escaped), and the top-level one is the last
 * such key, since the members sorted after it (session, target, time) are strings. When that gives the
 * expected value it is taken; anything else is parsed in full, so a tampered body is still named exactly.
 * (A body that only pretends here also fails its leaf hash, which is checked next.)
 */
function seqOf(bytes: Buffer, expected: number): number | undefined {
  const at = bytes.lastIndexOf(SEQ_MEMBER);
  if (at > 0) {
    let i = at + SEQ_MEMBER.length;
    let n = 0;
    let digits = 0;
    for (; i < bytes.length && bytes[i]! >= 0x30 && bytes[i]! <= 0x39 && digits < 16; i++, digits++) n = n * 10 + (bytes[i]! - 0x30);
    const end = bytes[i];
    if (digits > 0 && (digits === 1 || bytes[at + SEQ_MEMBER.length] !== 0x30) && (end === 0x2c || end === 0x7d) && n === expected) return n;
  }
  try {
    const v = (JSON.parse(bytes.toString('utf8')) as { seq?: unknown }).seq;
    return typeof v === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}
