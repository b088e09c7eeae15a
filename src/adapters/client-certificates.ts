// The principal a client certificate names, on every front door that takes mutual TLS: by pinned
// fingerprint, by the SPIFFE ID of an X.509-SVID, or by subject CN, from the principals' `credentials.x509`.
// Shared by the front doors; it knows no protocol.
import type { X509Certificate } from 'node:crypto';
import type { PrincipalConfig } from '../config/schema.ts';
import { svidOf, type SvidVerdict } from '../common/spiffe.ts';

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

/** Why a client certificate maps to no principal: `detail.reason` of its auth.failed event. */
export type CertificateRefusal = 'unknown_certificate' | 'unknown_spiffe_id' | 'ambiguous_certificate' | Extract<SvidVerdict, { kind: 'invalid' }>['reason'];

export type CertificateMatch =
  | { ok: true; principal: PrincipalConfig; by: 'fingerprint' | 'spiffe_id' | 'subject_cn'; spiffeId?: string }
  | { ok: false; reason: CertificateRefusal; spiffeId?: string };

/**
 * The principal a client certificate names. In this order, strongest first:
 *   1. a listed SHA-256 fingerprint: it pins one key, which no CA can issue again;
 *   2. the SPIFFE ID of an X.509-SVID (principal `spiffe_ids`): the trust domain's CA vouches for a
 *      workload. A certificate that presents itself as an SVID is judged as one: a malformed one, or one
 *      with several URI SANs, is refused, and an SVID is never matched by its subject CN, which the
 *      SVID specification gives no meaning (a workload CA may put anything there);
 *   3. a subject CN: trusts whatever the CA signs under that name.
 * A fingerprint of one principal on an SVID another principal claims is refused as ambiguous, and so
 * are two principals claiming one SPIFFE ID or CN (the config loader refuses the former already).
 */
export function principalForCertificate(cert: X509Certificate, principals: Iterable<PrincipalConfig>): CertificateMatch {
  const svid = svidOf(new Uint8Array(cert.raw));
  if (svid.kind === 'invalid') return { ok: false, reason: svid.reason };
  const spiffeId = svid.kind === 'svid' ? svid.id.text : undefined;
  const withId = spiffeId !== undefined ? { spiffeId } : {};
  const fp = normalizeFingerprint(cert.fingerprint256);
  const cn = subjectCommonName(cert);
  let byFingerprint: PrincipalConfig | undefined;
  const bySpiffeId: PrincipalConfig[] = [];
  const byCn: PrincipalConfig[] = [];
  for (const p of principals) {
    const x509 = p.credentials.x509;
    if (!x509) continue;
    if (!byFingerprint && x509.fingerprints?.some((f) => normalizeFingerprint(f) === fp)) byFingerprint = p;
    if (spiffeId !== undefined && x509.spiffe_ids?.includes(spiffeId)) bySpiffeId.push(p);
    if (spiffeId === undefined && cn !== undefined && x509.subject_cn === cn) byCn.push(p);
  }
  if (byFingerprint) {
    if (bySpiffeId.some((p) => p !== byFingerprint)) return { ok: false, reason: 'ambiguous_certificate', ...withId };
    return { ok: true, principal: byFingerprint, by: 'fingerprint', ...withId };
  }
  if (spiffeId !== undefined) {
    if (bySpiffeId.length === 1) return { ok: true, principal: bySpiffeId[0]!, by: 'spiffe_id', spiffeId };
    return { ok: false, reason: bySpiffeId.length === 0 ? 'unknown_spiffe_id' : 'ambiguous_certificate', spiffeId };
  }
  return byCn.length === 1 ? { ok: true, principal: byCn[0]!, by: 'subject_cn' } : { ok: false, reason: 'unknown_certificate' };
}
