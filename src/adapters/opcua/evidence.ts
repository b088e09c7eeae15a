// What the journal keeps of a value written, read before a write, or passed to a method. A small value
// is kept as it is (a long string cut at 256 characters). A large one (an array of more than
// EXCERPT_ELEMENTS elements, a long byte string) is kept as its type, dimensions, size in bytes and
// SHA-256, plus the first few elements: never rendered whole as text, so an 8 MB array written by an
// allowed client costs the evidence a hash pass over its bytes, not a 30 MB JSON string on a 128 MB heap.
import { createHash, type Hash } from 'node:crypto';

const MAX_TEXT = 256;
const EXCERPT_ELEMENTS = 16;

export interface LargeValueEvidence {
  type: string;
  dimensions: number[];
  bytes: number;
  sha256: string;
  excerpt: unknown[];
}

type TypedArray = Exclude<NodeJS.TypedArray, DataView>;

function isTypedArray(v: unknown): v is TypedArray {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

function scalar(v: unknown): unknown {
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean') return v ?? null;
  if (typeof v === 'string') return v.length > MAX_TEXT ? `${v.slice(0, MAX_TEXT)}…` : v;
  if (typeof v === 'bigint') return v.toString();
  if (Buffer.isBuffer(v)) return v.length > MAX_TEXT / 2 ? undefined : `0x${v.toString('hex')}`;
  return undefined;
}

/** Evidence of a value: as it is when small, else LargeValueEvidence (never the whole value as text). */
export function evidence(v: unknown): unknown {
  const s = scalar(v);
  if (s !== undefined || v === null || v === undefined) return s;
  if (Buffer.isBuffer(v)) return summary('ByteString', [v.length], v);
  if (isTypedArray(v)) return v.length > EXCERPT_ELEMENTS ? summary(v.constructor.name.replace(/Array$/, ''), [v.length], v) : Array.from(v as ArrayLike<number | bigint>, scalar);
  if (Array.isArray(v)) {
    if (v.length > EXCERPT_ELEMENTS) return summary(elementType(v), dimensionsOf(v), v);
    return smallObject(v);
  }
  return smallObject(v);
}

/** A small structure (a short array, an ExtensionObject): JSON, cut at 256 characters, unless it is huge. */
function smallObject(v: unknown): unknown {
  const size = approximateBytes(v);
  if (size > 64 * 1024) return summary(elementType(v), dimensionsOf(v), v);
  const s = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : isTypedArray(x) ? Array.from(x as ArrayLike<number>) : x)) ?? String(v);
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s;
}

function summary(type: string, dimensions: number[], v: unknown): LargeValueEvidence {
  const hash = createHash('sha256');
  const bytes = hashInto(hash, v, 0);
  return { type, dimensions, bytes, sha256: hash.digest('hex'), excerpt: excerptOf(v) };
}

function excerptOf(v: unknown): unknown[] {
  if (Buffer.isBuffer(v)) return [`0x${v.subarray(0, EXCERPT_ELEMENTS).toString('hex')}`];
  if (isTypedArray(v)) return Array.from((v as TypedArray).subarray(0, EXCERPT_ELEMENTS) as ArrayLike<number | bigint>, scalar);
  if (Array.isArray(v)) return v.slice(0, EXCERPT_ELEMENTS).map((x) => scalar(x) ?? '…');
  return [];
}

/**
 * Hash a value's content without rendering it: typed arrays and buffers by their bytes (little-endian,
 * as on the wire), strings as UTF-8 with a length prefix, arrays element by element. Returns the bytes hashed.
 */
function hashInto(hash: Hash, v: unknown, depth: number): number {
  if (isTypedArray(v)) {
    const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    hash.update(b);
    return b.length;
  }
  if (Buffer.isBuffer(v)) {
    hash.update(v);
    return v.length;
  }
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    hash.update(lengthPrefix(b.length));
    hash.update(b);
    return 4 + b.length;
  }
  if (typeof v === 'number') {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    hash.update(b);
    return 8;
  }
  if (typeof v === 'boolean') {
    hash.update(v ? '\x01' : '\x00');
    return 1;
  }
  if (typeof v === 'bigint') {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt.asIntN(64, v));
    hash.update(b);
    return 8;
  }
  if (v === null || v === undefined || depth > 8) {
    hash.update(lengthPrefix(-1));
    return 4;
  }
  if (Array.isArray(v)) {
    let n = 4;
    hash.update(lengthPrefix(v.length));
    for (const x of v) n += hashInto(hash, x, depth + 1);
    return n;
  }
  if (typeof v === 'object') {
    let n = 0;
    for (const [k, x] of Object.entries(v)) {
      if (typeof x === 'function') continue;
      n += hashInto(hash, k, depth + 1) + hashInto(hash, x, depth + 1);
    }
    return n;
  }
  return 0;
}

function lengthPrefix(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(n);
  return b;
}

function elementType(v: unknown): string {
  if (!Array.isArray(v)) return v && typeof v === 'object' ? (v.constructor?.name ?? 'Object') : typeof v;
  const first = v.find((x) => x !== null && x !== undefined);
  if (first === undefined) return 'Null';
  if (isTypedArray(first)) return `${first.constructor.name.replace(/Array$/, '')}[]`;
  if (Array.isArray(first)) return `${elementType(first)}[]`;
  return typeof first === 'object' ? (first.constructor?.name ?? 'Object') : typeof first;
}

function dimensionsOf(v: unknown): number[] {
  const dims: number[] = [];
  let x: unknown = v;
  while ((Array.isArray(x) || isTypedArray(x)) && dims.length < 8) {
    dims.push((x as ArrayLike<unknown>).length);
    x = (x as ArrayLike<unknown>)[0];
  }
  return dims;
}

/**
 * A cheap upper estimate of the bytes a value occupies once decoded (typed arrays exactly, strings at two
 * bytes a character, other elements at 16), walking at most the first levels of nesting.
 */
export function approximateBytes(v: unknown, depth = 0): number {
  if (isTypedArray(v) || Buffer.isBuffer(v)) return (v as ArrayBufferView).byteLength;
  if (typeof v === 'string') return 2 * v.length;
  if (v === null || typeof v !== 'object') return 16;
  if (depth > 4) return 16;
  if (Array.isArray(v)) {
    let n = 16;
    for (const x of v) n += typeof x === 'object' && x !== null ? approximateBytes(x, depth + 1) : typeof x === 'string' ? 2 * x.length + 16 : 16;
    return n;
  }
  let n = 16;
  for (const x of Object.values(v)) if (typeof x !== 'function') n += approximateBytes(x, depth + 1);
  return n;
}
