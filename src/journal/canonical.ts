// Canonical JSON: the one encoder of the bytes that are hashed into the journal's Merkle tree (and that
// verify.ts and exports check). RFC 8785 (JCS) for the values events hold: object keys sorted by UTF-16
// code units, no whitespace, strings escaped as JSON.stringify does (JCS: only `"`, `\` and U+0000..U+001F,
// lone surrogates as \udxxx), numbers as ECMAScript prints them (finite only; -0 as 0), undefined object
// members dropped. The same value always gives the same bytes, so the same hash.
//
// Values that are not JSON data get one fixed rule each, never a guess:
//   - a Date is its toISOString(), as a string (what JSON.stringify gives); an invalid Date throws;
//   - an object for which the caller's `omit` says yes (the journal passes `instanceof Secret`) is left
//     out: as an object member the member is dropped, in an array the item is; its path is recorded;
//   - any other object that is not plain — its prototype is neither Object.prototype nor null: a Map,
//     Set, Buffer, typed array, boxed primitive, Error or class instance — throws. toJSON is never
//     called (it would let a class choose its own evidence), and own members are not taken either (a
//     Map would hash as {}, a Buffer as {"0":…}: evidence lost or bloated without a word);
//   - undefined in an array, a function, a symbol, a bigint, NaN and ±Infinity throw;
//   - nesting deeper than MAX_DEPTH throws (a cycle ends there too).
// test/journal/canonical.test.ts proves it equal to an independent JCS reference with fast-check.
// Pure: the puller and auditors use it too.

export class CanonicalJsonError extends Error {
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'CanonicalJsonError';
    this.path = path;
  }
}

/** Deepest nesting encoded: the top-level value is depth 0. */
export const MAX_DEPTH = 32;

/** Leaves some objects out (see above) and records the JSON path of each, in the caller's order. */
export interface Omission {
  omit(value: object): boolean;
  paths: string[];
}

export function canonicalJson(value: unknown): string {
  return encode(value, '$', undefined, 0)!;
}

/** True when `text` is exactly the canonical encoding of what it parses to. */
export function isCanonicalJson(text: string): boolean {
  try {
    return canonicalJson(JSON.parse(text)) === text;
  } catch {
    return false;
  }
}

/**
 * [key, canonical value] of a plain object's defined, not omitted members, sorted by key (UTF-16 code
 * units, as JCS): the members of canonicalJson(obj), for callers that splice in members of their own.
 */
export function canonicalMembers(obj: object, path: string, omission?: Omission, depth = 0): [string, string][] {
  if (!isPlain(obj)) throw notPlain(obj, path);
  return members(obj as Record<string, unknown>, path, omission, depth);
}

/** Canonical JSON of `value`; undefined when `omission` leaves the value itself out. */
function encode(value: unknown, path: string, omission: Omission | undefined, depth: number): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(path, `number ${value} is not finite`);
      return JSON.stringify(value); // ES Number-to-String, as JCS requires; -0 prints as 0
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(path, `${typeof value} is not JSON`);
  }
  if (value === null) return 'null';
  if (omission?.omit(value)) {
    omission.paths.push(path);
    return undefined;
  }
  if (depth > MAX_DEPTH) throw new CanonicalJsonError(path, `nested deeper than ${MAX_DEPTH}`);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === undefined) throw new CanonicalJsonError(`${path}[${i}]`, 'undefined in an array');
      const encoded = encode(item, `${path}[${i}]`, omission, depth + 1);
      if (encoded === undefined) continue; // an omitted item is dropped from the array
      out += out.length === 1 ? encoded : `,${encoded}`;
    }
    return `${out}]`;
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new CanonicalJsonError(path, 'invalid date');
    return JSON.stringify(value.toISOString());
  }
  if (!isPlain(value)) throw notPlain(value, path);
  const m = members(value as Record<string, unknown>, path, omission, depth);
  let out = '{';
  for (let i = 0; i < m.length; i++) out += `${i === 0 ? '' : ','}${JSON.stringify(m[i]![0])}:${m[i]![1]}`;
  return `${out}}`;
}

function members(obj: Record<string, unknown>, path: string, omission: Omission | undefined, depth: number): [string, string][] {
  const out: [string, string][] = [];
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    if (v === undefined) continue;
    const encoded = encode(v, `${path}.${key}`, omission, depth + 1);
    if (encoded !== undefined) out.push([key, encoded]);
  }
  return out.sort(byKey);
}

function byKey(a: [string, string], b: [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

function isPlain(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function notPlain(value: object, path: string): CanonicalJsonError {
  const name = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name;
  return new CanonicalJsonError(path, `${name || 'object'} is not plain JSON`);
}
