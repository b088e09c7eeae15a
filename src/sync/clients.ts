// Who may do what on the pull API. The TLS handshake proves a certificate chains to `client_ca`; that
// alone says nothing about what its holder may do. Each client is listed in `sync.clients` by its
// certificate's SHA-256 fingerprint (exactly one certificate), the SPIFFE ID of its X.509-SVID (any
// SVID the CA issues for that workload) or its subject (any certificate the CA issues with exactly that
// subject), with roles:
//   read    GET /v1/checkpoint, /v1/events, /v1/proof/*, /v1/key
//   ack     POST /v1/ack (lets retention remove events: give it only to the puller that stores them)
//   cosign  POST /v1/cosign, with the client's own witness key (`witness_key`, a C2SP vkey)
// A certificate no entry names is refused on every endpoint.
import type { PeerCertificate } from 'node:tls';
import { svidOf } from '../common/spiffe.ts';

export const SYNC_ROLES = ['read', 'ack', 'cosign'] as const;
export type SyncRole = (typeof SYNC_ROLES)[number];

/** One `sync.clients` entry as written in the config. */
export interface SyncClientConfig {
  name: string;
  fingerprint?: string | undefined;
  spiffe_id?: string | undefined;
  subject?: string | undefined;
  roles: SyncRole[];
  witness_key?: string | undefined;
}

export interface SyncClientRule {
  name: string;
  /** Lower-case hex of the certificate's SHA-256 (DER), no separators. */
  fingerprint?: string;
  /** The SPIFFE ID the certificate's one URI SAN must be (an X.509-SVID). */
  spiffeId?: string;
  /** Attribute → value; the certificate's subject must hold exactly these. */
  subject?: ReadonlyMap<string, string>;
  roles: ReadonlySet<SyncRole>;
  /** The C2SP verifier key this client's cosignatures must verify against. */
  witnessKey?: string;
}

/** `sha256:AB:CD:…`, `AB:CD:…` or `abcd…` (64 hex digits) → `abcd…`. */
export function normaliseFingerprint(text: string): string {
  return text.replace(/^sha256:/i, '').replaceAll(':', '').toLowerCase();
}

export const FINGERPRINT_RE = /^(sha256:)?([0-9A-Fa-f]{64}|([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2})$/;
/** `CN=central-pam,O=Plant 1`: attributes separated by commas; values cannot hold `,` or `=`. */
export const SUBJECT_RE = /^\s*[A-Za-z][A-Za-z0-9.]*\s*=[^,=]+(,\s*[A-Za-z][A-Za-z0-9.]*\s*=[^,=]+)*$/;

export function parseSubject(text: string): Map<string, string> {
  return new Map(text.split(',').map((part) => {
    const i = part.indexOf('=');
    return [part.slice(0, i).trim(), part.slice(i + 1).trim()] as const;
  }));
}

export function clientRules(clients: readonly SyncClientConfig[]): SyncClientRule[] {
  return clients.map((c) => ({
    name: c.name,
    ...(c.fingerprint ? { fingerprint: normaliseFingerprint(c.fingerprint) } : {}),
    ...(c.spiffe_id ? { spiffeId: c.spiffe_id } : {}),
    ...(c.subject ? { subject: parseSubject(c.subject) } : {}),
    roles: new Set(c.roles),
    ...(c.witness_key ? { witnessKey: c.witness_key } : {}),
  }));
}

function subjectMatches(want: ReadonlyMap<string, string>, cert: PeerCertificate): boolean {
  const have = Object.entries(cert.subject ?? {});
  // A repeated attribute (an array) never matches: the config names one value per attribute.
  if (have.length !== want.size) return false;
  return have.every(([k, v]) => typeof v === 'string' && want.get(k) === v);
}

/**
 * The rule the peer certificate answers to: a fingerprint entry first (it pins one key), else a
 * spiffe_id entry, else a subject entry, else none. A certificate with a spiffe:// URI SAN is judged as
 * an X.509-SVID: by its SPIFFE ID, never by its subject, and not at all when it is not a valid SVID
 * (several URI SANs, a malformed ID); one entry's fingerprint on another entry's SVID is ambiguous and
 * matches neither. The same order as the other TLS doors.
 */
export function identifyClient(cert: PeerCertificate | undefined, rules: readonly SyncClientRule[]): SyncClientRule | undefined {
  if (!cert || !cert.fingerprint256 || !cert.raw) return undefined;
  const svid = svidOf(new Uint8Array(cert.raw));
  if (svid.kind === 'invalid') return undefined;
  const fp = normaliseFingerprint(cert.fingerprint256);
  const byFingerprint = rules.find((r) => r.fingerprint === fp);
  const bySpiffeId = svid.kind === 'svid' ? rules.find((r) => r.spiffeId === svid.id.text) : undefined;
  // One entry's fingerprint on an SVID another entry names: ambiguous, so neither.
  if (byFingerprint && bySpiffeId && byFingerprint !== bySpiffeId) return undefined;
  if (byFingerprint ?? bySpiffeId) return byFingerprint ?? bySpiffeId;
  return svid.kind === 'svid' ? undefined : rules.find((r) => r.subject !== undefined && subjectMatches(r.subject, cert));
}

/** Rules for the current config, rebuilt only when a reload swapped the `sync.clients` list. */
export function currentClientRules(read: () => readonly SyncClientConfig[]): () => readonly SyncClientRule[] {
  let from: readonly SyncClientConfig[] | undefined;
  let rules: SyncClientRule[] = [];
  return () => {
    const clients = read();
    if (clients !== from) {
      from = clients;
      rules = clientRules(clients);
    }
    return rules;
  };
}
