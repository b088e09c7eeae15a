// RFC 6962 / RFC 9162 Merkle tree: hashes, proofs and their verification.
// This file imports nothing but @noble/hashes so the puller and offline auditors can use it without
// LMDB or the daemon. Subtree hashes come from a `NodeSource`: the journal serves them from LMDB,
// tests and verifiers from memory.
import { sha256 } from '@noble/hashes/sha2.js';

export type Hash = Uint8Array;

/** Computes SHA-256(0x01 || left || right); the journal passes a faster, byte-identical one. */
export type NodeHasher = (left: Hash, right: Hash) => Hash;

const LEAF_PREFIX = new Uint8Array([0x00]);
const NODE_PREFIX = new Uint8Array([0x01]);

/** SHA-256(0x00 || data). */
export function leafHash(data: Uint8Array): Hash {
  return sha256.create().update(LEAF_PREFIX).update(data).digest();
}

/** SHA-256(0x01 || left || right). */
export function nodeHash(left: Hash, right: Hash): Hash {
  return sha256.create().update(NODE_PREFIX).update(left).update(right).digest();
}

/** The hash of the empty tree: SHA-256 of the empty string. */
export function emptyRoot(): Hash {
  return sha256(new Uint8Array(0));
}

/** A hash as the journal's records and proofs write it: standard base64. */
export function b64(h: Uint8Array): string {
  return Buffer.from(h).toString('base64');
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n));
}

/** Largest power of two strictly smaller than n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * Hashes of perfect, aligned subtrees: level L, index i covers leaves [i*2^L, (i+1)*2^L).
 * Level 0 are the leaf hashes. Every proof and root needs only such nodes.
 */
export interface NodeSource {
  node(level: number, index: number): Hash;
}

/** MTH(D[start:end]) computed from perfect aligned subtrees (O(log n) node look-ups). */
export function subtreeHash(src: NodeSource, start: number, end: number): Hash {
  const n = end - start;
  if (n <= 0) throw new RangeError(`empty range [${start}, ${end})`);
  if (isPowerOfTwo(n) && start % n === 0) return src.node(Math.log2(n), start / n);
  const k = splitPoint(n);
  return nodeHash(subtreeHash(src, start, start + k), subtreeHash(src, start + k, end));
}

/** Root hash of the first `size` leaves. */
export function rootAt(src: NodeSource, size: number): Hash {
  return size === 0 ? emptyRoot() : subtreeHash(src, 0, size);
}

/** RFC 6962 PATH(m, D[0:n]): the audit path of leaf m in the tree of size n, leaf side first. */
export function inclusionProof(src: NodeSource, index: number, size: number): Hash[] {
  if (!(index >= 0 && index < size)) throw new RangeError(`leaf ${index} is not in a tree of size ${size}`);
  const path: Hash[] = [];
  const walk = (m: number, start: number, end: number): void => {
    const n = end - start;
    if (n === 1) return;
    const k = splitPoint(n);
    if (m < k) {
      walk(m, start, start + k);
      path.push(subtreeHash(src, start + k, end));
    } else {
      walk(m - k, start + k, end);
      path.push(subtreeHash(src, start, start + k));
    }
  };
  walk(index, 0, size);
  return path;
}

/** RFC 6962 PROOF(m, D[0:n]): consistency proof between tree sizes m <= n. Empty when m is 0 or m == n. */
export function consistencyProof(src: NodeSource, oldSize: number, newSize: number): Hash[] {
  if (!(oldSize >= 0 && oldSize <= newSize)) throw new RangeError(`no consistency proof from ${oldSize} to ${newSize}`);
  if (oldSize === 0 || oldSize === newSize) return [];
  const proof: Hash[] = [];
  const sub = (m: number, start: number, end: number, complete: boolean): void => {
    const n = end - start;
    if (m === n) {
      if (!complete) proof.push(subtreeHash(src, start, end));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      sub(m, start, start + k, complete);
      proof.push(subtreeHash(src, start + k, end));
    } else {
      sub(m - k, start + k, end, false);
      proof.push(subtreeHash(src, start, start + k));
    }
  };
  sub(oldSize, 0, newSize, true);
  return proof;
}

/** RFC 9162 section 2.1.3.2: does `proof` show leaf `index` (hash `leaf`) is in the tree of `size` with `root`? */
export function verifyInclusion(index: number, size: number, leaf: Hash, proof: readonly Hash[], root: Hash): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (p.length !== 32) return false;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(r, root);
}

/** RFC 9162 section 2.1.4.2: does `proof` show the tree (newSize, newRoot) extends (oldSize, oldRoot)? */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Hash,
  newRoot: Hash,
  proof: readonly Hash[],
): boolean {
  if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 0 || oldSize > newSize) return false;
  if (oldSize === newSize) return proof.length === 0 && equalBytes(oldRoot, newRoot);
  if (oldSize === 0) return proof.length === 0; // the empty tree is a prefix of every tree
  if (proof.length === 0 || proof.some((p) => p.length !== 32)) return false;
  // If old size is an exact power of two, the old root is the first node of the path.
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : [...proof];
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(fr, oldRoot) && equalBytes(sr, newRoot);
}

/**
 * An append-only compact range over [0, size): the hashes of the maximal perfect subtrees, largest first
 * (at most 64). Appending a leaf costs O(1) amortised and reports each perfect node it completes, so the
 * journal can store them; `root()` folds the range. The puller keeps one to check pages as they arrive.
 */
export class TreeBuilder {
  #size: number;
  readonly #levels: number[] = [];
  readonly #hashes: Hash[] = [];
  readonly #nodeHash: NodeHasher;

  constructor(size = 0, frontier: readonly Hash[] = [], hashNode: NodeHasher = nodeHash) {
    this.#size = size;
    this.#nodeHash = hashNode;
    const levels = frontierLevels(size);
    if (levels.length !== frontier.length) throw new RangeError(`a frontier of size ${size} has ${levels.length} hashes, got ${frontier.length}`);
    this.#levels.push(...levels);
    this.#hashes.push(...frontier);
  }

  get size(): number {
    return this.#size;
  }

  /** Adds a leaf hash; calls `completed(level, index, hash)` for the leaf and every perfect node it completes. */
  push(leaf: Hash, completed?: (level: number, index: number, hash: Hash) => void): void {
    let level = 0;
    let hash = leaf;
    let index = this.#size;
    completed?.(0, index, hash);
    while (this.#levels.length > 0 && this.#levels[this.#levels.length - 1] === level) {
      this.#levels.pop();
      hash = this.#nodeHash(this.#hashes.pop()!, hash);
      level++;
      index = Math.floor(index / 2);
      completed?.(level, index, hash);
    }
    this.#levels.push(level);
    this.#hashes.push(hash);
    this.#size++;
  }

  root(): Hash {
    if (this.#hashes.length === 0) return emptyRoot();
    let h = this.#hashes[this.#hashes.length - 1]!;
    for (let i = this.#hashes.length - 2; i >= 0; i--) h = this.#nodeHash(this.#hashes[i]!, h);
    return h;
  }

  /** The perfect-subtree hashes, largest first: with `size`, enough to resume appending. */
  frontier(): Hash[] {
    return [...this.#hashes];
  }

  clone(): TreeBuilder {
    return new TreeBuilder(this.#size, this.#hashes, this.#nodeHash);
  }
}

/** Levels of the maximal perfect subtrees of [0, size), largest first (the set bits of size). */
export function frontierLevels(size: number): number[] {
  const levels: number[] = [];
  for (let level = 52; level >= 0; level--) if (Math.floor(size / 2 ** level) % 2 === 1) levels.push(level);
  return levels;
}

/** The frontier of [0, size) read from a node source (what a TreeBuilder at that size holds). */
export function frontierAt(src: NodeSource, size: number): Hash[] {
  const out: Hash[] = [];
  let start = 0;
  for (const level of frontierLevels(size)) {
    out.push(src.node(level, start / 2 ** level));
    start += 2 ** level;
  }
  return out;
}

/** A NodeSource over leaf hashes held in memory (tests, verifiers). Caches perfect nodes it computes. */
export class MemoryTree implements NodeSource {
  readonly leaves: Hash[];
  readonly #cache = new Map<string, Hash>();

  constructor(leaves: Hash[] = []) {
    this.leaves = leaves;
  }

  node(level: number, index: number): Hash {
    if (level === 0) {
      const leaf = this.leaves[index];
      if (!leaf) throw new RangeError(`no leaf ${index}`);
      return leaf;
    }
    const key = `${level}:${index}`;
    let h = this.#cache.get(key);
    if (!h) {
      h = nodeHash(this.node(level - 1, index * 2), this.node(level - 1, index * 2 + 1));
      this.#cache.set(key, h);
    }
    return h;
  }
}
