// Who is on the other end of an OPC UA session: a user name and password checked against a password
// HASH held in the vault, or an X.509 user certificate named by fingerprint or subject CN. Anonymous is
// never a principal. The vault never holds a front-door password in clear: `hashOpcuaPassword` makes
// the entry (`scrypt$N$r$p$salt$hash`, base64url), and a clear-text entry is refused at login.
import { X509Certificate, createHash, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { opcuaCredentials } from './rules.ts';
import type { PrincipalConfig } from '../../config/schema.ts';
import type { Vault } from '../../vault/vault.ts';

const SCRYPT = { N: 16384, r: 8, p: 1, keyLen: 32 };
const MAX_PASSWORD_BYTES = 1024;

/** The vault entry for a front-door password. */
export function hashOpcuaPassword(password: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, SCRYPT.keyLen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p });
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

/** True when `password` matches `stored` (a hashOpcuaPassword string); false for anything else. */
export function verifyOpcuaPassword(password: string, stored: string): boolean {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![N, r, p].every((n) => Number.isInteger(n) && n > 0) || N > 1 << 20 || r > 32 || p > 16) return false;
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return false;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const want = Buffer.from(parts[5]!, 'base64url');
  if (want.length < 16 || want.length > 64) return false;
  const got = scryptSync(password, salt, want.length, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 });
  return timingSafeEqual(got, want);
}

export type PasswordCheck =
  | { ok: true; principal: PrincipalConfig }
  | { ok: false; reason: 'unknown_user' | 'wrong_password' | 'vault_entry_missing' | 'vault_entry_not_a_hash'; principal?: string };

export function checkPassword(principals: Iterable<PrincipalConfig>, vault: Vault, username: string, password: string): PasswordCheck {
  let principal: PrincipalConfig | undefined;
  for (const p of principals) if (opcuaCredentials(p).opcua_user?.username === username) principal = p;
  if (!principal) return { ok: false, reason: 'unknown_user' };
  let stored: string;
  try {
    stored = vault.resolve(opcuaCredentials(principal).opcua_user!.password).reveal();
  } catch {
    return { ok: false, reason: 'vault_entry_missing', principal: principal.id };
  }
  if (!stored.startsWith('scrypt$')) return { ok: false, reason: 'vault_entry_not_a_hash', principal: principal.id };
  return verifyOpcuaPassword(password, stored) ? { ok: true, principal } : { ok: false, reason: 'wrong_password', principal: principal.id };
}

/** Colon-free lower-case hex, the form fingerprints are compared in. */
export function normalizeHex(fp: string): string {
  return fp.replace(/:/g, '').toLowerCase();
}

export interface CertificateFacts {
  /** SHA-1 thumbprint, the form OPC UA tools (UaExpert) show. */
  thumbprint: string;
  sha256: string;
  subject_cn?: string;
}

export function certificateFacts(der: Buffer): CertificateFacts {
  const facts: CertificateFacts = {
    thumbprint: createHash('sha1').update(der).digest('hex'),
    sha256: createHash('sha256').update(der).digest('hex'),
  };
  try {
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(new X509Certificate(der).subject)?.[1];
    if (cn) facts.subject_cn = cn;
  } catch {
    // Not parseable: the thumbprints still identify it in the journal.
  }
  return facts;
}

/** The principal an X.509 user certificate names: by SHA-256 fingerprint first, then by subject CN. */
export function principalForUserCertificate(principals: Iterable<PrincipalConfig>, der: Buffer): PrincipalConfig | undefined {
  const facts = certificateFacts(der);
  const list = [...principals];
  const byFp = list.find((p) => p.credentials.x509?.fingerprints?.some((f) => normalizeHex(f) === facts.sha256));
  if (byFp) return byFp;
  return facts.subject_cn === undefined ? undefined : list.find((p) => p.credentials.x509?.subject_cn === facts.subject_cn);
}
