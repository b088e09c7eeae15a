// Modbus/TCP Security (Modbus Organization, "MB-TCP-Security-v36"): mutual TLS on port 802 by
// default, TLS 1.2 or later, the client certificate identifies the principal. The specification's
// role extension (OID 1.3.6.1.4.1.50316.802.1, an ASN.1 UTF8String naming the client's role) is read
// from the certificate and recorded with the session; it narrows nothing by itself — grants decide —
// but a role the listener has not been told to accept can be refused (`roles` on the listener).
import type { X509Certificate } from 'node:crypto';
import type { PrincipalConfig } from '../../config/schema.ts';

/** The Modbus/TCP Security role extension. */
export const MODBUS_ROLE_OID = '1.3.6.1.4.1.50316.802.1';

/** Hex of a SHA-256 fingerprint without separators, lower case: how we compare fingerprints. */
export function normalizeFingerprint(fp: string): string {
  return fp.replace(/[:\s]/g, '').toLowerCase();
}

/** The subject's common name (the first CN RDN), or undefined. */
export function subjectCommonName(cert: X509Certificate): string | undefined {
  for (const line of cert.subject.split('\n')) {
    if (line.startsWith('CN=')) return line.slice(3);
  }
  return undefined;
}

export type CertificateMatch = { principal: PrincipalConfig; by: 'fingerprint' | 'subject_cn' };

/**
 * The principal a client certificate names: a listed SHA-256 fingerprint wins over a subject CN (a
 * fingerprint pins one key; a CN trusts whatever the CA signs under that name). Two principals
 * claiming the same CN is a config error the loader should catch; here the ambiguity refuses.
 */
export function principalForCertificate(cert: X509Certificate, principals: Iterable<PrincipalConfig>): CertificateMatch | undefined {
  const fp = normalizeFingerprint(cert.fingerprint256);
  const cn = subjectCommonName(cert);
  const byCn: PrincipalConfig[] = [];
  for (const p of principals) {
    const x509 = p.credentials.x509;
    if (!x509) continue;
    if (x509.fingerprints?.some((f) => normalizeFingerprint(f) === fp)) return { principal: p, by: 'fingerprint' };
    if (cn !== undefined && x509.subject_cn === cn) byCn.push(p);
  }
  return byCn.length === 1 ? { principal: byCn[0]!, by: 'subject_cn' } : undefined;
}

// ------------------------------------------------------------------ a bounded DER walk for the role

interface Tlv {
  tag: number;
  start: number; // first content byte
  end: number; // one past the last content byte
}

/** One TLV at `pos`, or undefined when the bytes do not hold one inside `limit` (never throws). */
function readTlv(der: Uint8Array, pos: number, limit: number): Tlv | undefined {
  if (pos + 2 > limit) return undefined;
  const tag = der[pos]!;
  let len = der[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > limit) return undefined; // no indefinite lengths in DER; certs are < 16 MiB
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | der[start + i]!;
    start += n;
  }
  const end = start + len;
  return end <= limit ? { tag, start, end } : undefined;
}

function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let pos = parent.start;
  while (pos < parent.end) {
    const t = readTlv(der, pos, parent.end);
    if (!t) return out;
    out.push(t);
    pos = t.end;
  }
  return out;
}

function encodeOid(oid: string): Buffer {
  const parts = oid.split('.').map(Number);
  const bytes = [parts[0]! * 40 + parts[1]!];
  for (const n of parts.slice(2)) {
    const chunk = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return Buffer.from(bytes);
}
const ROLE_OID_BYTES = encodeOid(MODBUS_ROLE_OID);

/**
 * The role named by the certificate's Modbus role extension, or undefined when it has none. The
 * extension value is an OCTET STRING wrapping a UTF8String (the spec's `Role ::= UTF8String`); a
 * PrintableString or IA5String is accepted too, since some CAs encode plain ASCII that way.
 */
export function modbusRole(cert: X509Certificate): string | undefined {
  const der = new Uint8Array(cert.raw);
  const top = readTlv(der, 0, der.length);
  if (!top || top.tag !== 0x30) return undefined;
  const tbs = children(der, top)[0];
  if (!tbs || tbs.tag !== 0x30) return undefined;
  const explicitExtensions = children(der, tbs).find((t) => t.tag === 0xa3);
  if (!explicitExtensions) return undefined;
  const extensions = children(der, explicitExtensions)[0];
  if (!extensions || extensions.tag !== 0x30) return undefined;
  for (const ext of children(der, extensions)) {
    const [oid, ...rest] = children(der, ext);
    if (!oid || oid.tag !== 0x06) continue;
    if (!Buffer.from(der.subarray(oid.start, oid.end)).equals(ROLE_OID_BYTES)) continue;
    const value = rest.find((t) => t.tag === 0x04);
    if (!value) return undefined;
    const inner = readTlv(der, value.start, value.end);
    if (!inner || ![0x0c, 0x13, 0x16].includes(inner.tag)) return undefined;
    return Buffer.from(der.subarray(inner.start, inner.end)).toString('utf8');
  }
  return undefined;
}

