// Canonical JSON (RFC 8785 JCS for the values events hold): object keys sorted by UTF-16 code units,
// no whitespace, strings escaped as JSON.stringify does, numbers as ECMAScript prints them (finite
// only), undefined object members dropped. The same value always gives the same bytes, so the same hash.
// Pure: the puller and auditors use it too.

export class CanonicalJsonError extends Error {
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'CanonicalJsonError';
    this.path = path;
  }
}

export function canonicalJson(value: unknown): string {
  return encode(value, '$');
}

function encode(value: unknown, path: string): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(path, `number ${value} is not finite`);
      return JSON.stringify(value); // ES Number-to-String, as JCS requires; -0 prints as 0
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        const parts: string[] = [];
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined) throw new CanonicalJsonError(`${path}[${i}]`, 'undefined in an array');
          parts.push(encode(item, `${path}[${i}]`));
        }
        return `[${parts.join(',')}]`;
      }
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw new CanonicalJsonError(path, 'invalid date');
        return JSON.stringify(value.toISOString());
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new CanonicalJsonError(path, `${proto?.constructor?.name ?? 'object'} is not plain JSON`);
      }
      const obj = value as Record<string, unknown>;
      // Default sort compares UTF-16 code units, which is what JCS specifies.
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${encode(obj[k], `${path}.${k}`)}`).join(',')}}`;
    }
    default:
      throw new CanonicalJsonError(path, `${typeof value} is not JSON`);
  }
}

/** True when `text` is exactly the canonical encoding of what it parses to. */
export function isCanonicalJson(text: string): boolean {
  try {
    return canonicalJson(JSON.parse(text)) === text;
  } catch {
    return false;
  }
}
