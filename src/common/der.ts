// A bounded, read-only walk over DER (X.509 certificates): enough to find one extension's value. It never
// throws and never reads past the bytes it was given; malformed input reads as "not there".

export interface Tlv {
  tag: number;
  start: number; // first content byte
  end: number; // one past the last content byte
}

/** One TLV at `pos`, or undefined when the bytes do not hold one inside `limit`. */
export function readTlv(der: Uint8Array, pos: number, limit: number): Tlv | undefined {
  if (pos + 2 > limit) return undefined;
  const tag = der[pos]!;
  let len = der[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > limit) return undefined; // DER has no indefinite lengths; certificates are < 16 MiB
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | der[start + i]!;
    start += n;
  }
  const end = start + len;
  return end <= limit ? { tag, start, end } : undefined;
}

export function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = parent.start; pos < parent.end;) {
    const t = readTlv(der, pos, parent.end);
    if (!t) return out;
    out.push(t);
    pos = t.end;
  }
  return out;
}

/** The DER content bytes of an OID (`1.3.6.1…`), to compare with an extension's OID TLV. */
export function encodeOid(oid: string): Buffer {
  const parts = oid.split('.').map(Number);
  const bytes = [parts[0]! * 40 + parts[1]!];
  for (const n of parts.slice(2)) {
    const chunk = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return Buffer.from(bytes);
}

/** The OCTET STRING of a certificate's extension `oid` (its extnValue), or undefined when it has none. */
export function certificateExtension(der: Uint8Array, oid: Buffer): Tlv | undefined {
  const top = readTlv(der, 0, der.length);
  if (!top || top.tag !== 0x30) return undefined;
  const tbs = children(der, top)[0];
  if (!tbs || tbs.tag !== 0x30) return undefined;
  const explicitExtensions = children(der, tbs).find((t) => t.tag === 0xa3);
  const extensions = explicitExtensions && children(der, explicitExtensions)[0];
  if (!extensions || extensions.tag !== 0x30) return undefined;
  for (const ext of children(der, extensions)) {
    const [id, ...rest] = children(der, ext);
    if (!id || id.tag !== 0x06 || !Buffer.from(der.subarray(id.start, id.end)).equals(oid)) continue;
    return rest.find((t) => t.tag === 0x04);
  }
  return undefined;
}
