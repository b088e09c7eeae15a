// SPIFFE IDs and X.509-SVIDs, as the SPIFFE specifications define them (github.com/spiffe/spiffe,
// standards/SPIFFE-ID.md and X509-SVID.md). A SPIFFE ID is `spiffe://TRUST-DOMAIN/PATH`: the trust
// domain lower-case letters, digits, `.`, `-`, `_`; each path segment letters, digits, `.`, `-`, `_`,
// never empty, `.` or `..`; no port, userinfo, query, fragment or percent-encoding; at most 2048 bytes.
// An X.509-SVID carries exactly one URI SAN, its SPIFFE ID. Shared by every door that takes TLS clients.
import { certificateExtension, children, encodeOid, readTlv } from './der.ts';

/** Why a string is not a SPIFFE ID: stable codes, matched by tests and tools. */
export const SPIFFE_ID_ERRORS = {
  empty: 'is empty',
  too_long: 'is longer than 2048 bytes',
  wrong_scheme: 'must start with spiffe://',
  trust_domain_missing: 'has no trust domain',
  trust_domain_chars: 'trust domain may hold only lower-case letters, digits, `.`, `-` and `_` (no port, no user info)',
  trust_domain_too_long: 'trust domain is longer than 255 bytes',
  path_empty_segment: 'path has an empty segment (`//`) or a trailing `/`',
  path_dot_segment: 'path has a `.` or `..` segment',
  path_chars: 'path segments may hold only letters, digits, `.`, `-` and `_` (no query, fragment or percent-encoding)',
} as const;
export type SpiffeIdError = keyof typeof SPIFFE_ID_ERRORS;

export interface SpiffeId {
  trustDomain: string;
  /** `/agent/7`, or '' for the trust domain itself. */
  path: string;
  /** The whole ID as written (it has one spelling: nothing in it is case-folded or escaped). */
  text: string;
}

const SCHEME = 'spiffe://';
const MAX_BYTES = 2048;
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

export function parseSpiffeId(text: string): { ok: true; id: SpiffeId } | { ok: false; error: SpiffeIdError } {
  if (text === '') return { ok: false, error: 'empty' };
  if (Buffer.byteLength(text, 'utf8') > MAX_BYTES) return { ok: false, error: 'too_long' };
  if (!text.startsWith(SCHEME)) return { ok: false, error: 'wrong_scheme' };
  const rest = text.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (trustDomain === '') return { ok: false, error: 'trust_domain_missing' };
  if (!TRUST_DOMAIN_RE.test(trustDomain)) return { ok: false, error: 'trust_domain_chars' };
  if (trustDomain.length > 255) return { ok: false, error: 'trust_domain_too_long' };
  if (path !== '') {
    for (const segment of path.slice(1).split('/')) {
      if (segment === '') return { ok: false, error: 'path_empty_segment' };
      if (segment === '.' || segment === '..') return { ok: false, error: 'path_dot_segment' };
      if (!SEGMENT_RE.test(segment)) return { ok: false, error: 'path_chars' };
    }
  }
  return { ok: true, id: { trustDomain, path, text } };
}

/** The config's message for a string that is not a SPIFFE ID, or undefined when it is one. */
export function spiffeIdProblem(text: string): string | undefined {
  const r = parseSpiffeId(text);
  return r.ok ? undefined : `not a SPIFFE ID: ${SPIFFE_ID_ERRORS[r.error]}`;
}

/**
 * What a certificate says about SPIFFE: `none` when no URI SAN has the spiffe scheme (not an SVID: other
 * rules decide); else it presents itself as an X.509-SVID and must be one — exactly one URI SAN, a valid
 * SPIFFE ID — or it is refused with a stable reason.
 */
export type SvidVerdict =
  | { kind: 'none' }
  | { kind: 'svid'; id: SpiffeId }
  | { kind: 'invalid'; reason: 'svid_several_uri_sans' | 'svid_malformed_id' };

export function svidOf(certificateDer: Uint8Array): SvidVerdict {
  const uris = uriSans(certificateDer);
  // Case-insensitive on purpose: `SPIFFE://…` is a malformed SVID, not a certificate without one.
  if (!uris.some((u) => u.toLowerCase().startsWith('spiffe:'))) return { kind: 'none' };
  if (uris.length !== 1) return { kind: 'invalid', reason: 'svid_several_uri_sans' };
  const parsed = parseSpiffeId(uris[0]!);
  return parsed.ok ? { kind: 'svid', id: parsed.id } : { kind: 'invalid', reason: 'svid_malformed_id' };
}

// ------------------------------------------------------------------ the SAN

const SAN_OID = encodeOid('2.5.29.17'); // subjectAltName
const URI_TAG = 0x86; // GeneralName uniformResourceIdentifier: [6] IMPLICIT IA5String

/** Every URI SAN of a DER certificate, in order (Node's `subjectAltName` text is not meant to be parsed). */
export function uriSans(certificateDer: Uint8Array): string[] {
  const der = certificateDer;
  const value = certificateExtension(der, SAN_OID);
  const names = value && readTlv(der, value.start, value.end);
  if (!names || names.tag !== 0x30) return [];
  return children(der, names).filter((n) => n.tag === URI_TAG).map((n) => Buffer.from(der.subarray(n.start, n.end)).toString('latin1'));
}
