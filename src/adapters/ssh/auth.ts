// Who is this? Maps an SSH publickey request to a Penstock principal: a key listed in the principal's
// `credentials.ssh_keys`, or an OpenSSH user certificate from a trusted CA naming the principal (its id
// or one of its `ssh_cert_principals`). Pure over the config snapshot and the clock; the listener
// (adapter.ts) owns the protocol exchange, the journal and the rate limits.
//
// The user name picks what to reach: `TARGET` (principal from the key), `PRINCIPAL+TARGET` (when one key
// or certificate stands for several principals), or anything that is not a target (e.g. the principal's
// own id) for the listing of targets and grants.
import ssh2 from 'ssh2';
import type { PrincipalConfig } from '../../config/schema.ts';
import { sshCredentials } from './rules.ts';
import type { LoadedConfig } from '../../config/types.ts';
import { checkCertificate, isCertificateType, parseCertificate, type OpenSshCertificate } from './certs.ts';
import { fingerprint, parseAuthorizedKeyLine, verifySshSignature, type SshPublicKey } from './keys.ts';

const { utils } = ssh2;

export interface UserName {
  /** Principal named in the user name (`PRINCIPAL+TARGET`). */
  principal?: string;
  /** The SSH target, when the name picks one; undefined means "list my targets". */
  target?: string;
}

export function parseUserName(name: string, config: LoadedConfig): UserName {
  const plus = name.indexOf('+');
  if (plus > 0) {
    const principal = name.slice(0, plus);
    const target = name.slice(plus + 1);
    return { principal, ...(target && isSshTarget(config, target) ? { target } : {}) };
  }
  return isSshTarget(config, name) ? { target: name } : {};
}

function isSshTarget(config: LoadedConfig, id: string): boolean {
  return config.targets.get(id)?.protocol === 'ssh';
}

export interface PublicKeyRequest {
  username: string;
  algo: string;
  blob: Buffer;
  /** Absent for the "would you accept this key?" query. */
  signature?: Buffer;
  /** What the signature covers (session id + request), from ssh2. */
  signed?: Buffer;
  hashAlgo?: string;
}

export interface Authenticated {
  principal: PrincipalConfig;
  user: UserName;
  attributes: Record<string, string>;
  /** Certificate logins: force-command and extensions from the certificate. */
  forceCommand?: string;
  extensions?: ReadonlySet<string>;
}

export type AuthVerdict =
  | { ok: true; who: Authenticated }
  /** `principal` is set when the failure can be pinned on one (counts toward its rate limit). */
  | { ok: false; reason: string; detail: string; principal?: string };

export interface AuthContext {
  config: LoadedConfig;
  cas: readonly SshPublicKey[];
  now: number;
  address: string;
}

/**
 * Decide a publickey request. For the query form (no signature) the answer says whether the key
 * would be accepted; for the signed form the client's signature is verified as well.
 */
export function authenticatePublicKey(req: PublicKeyRequest, ctx: AuthContext): AuthVerdict {
  const user = parseUserName(req.username, ctx.config);
  if (isCertificateType(req.algo)) return authenticateCertificate(req, ctx, user);

  let candidates = principalsWithKey(ctx.config, req.blob);
  if (candidates.length === 0) return { ok: false, reason: 'unknown_key', detail: `key ${fingerprint(req.blob)} belongs to no principal` };
  if (user.principal !== undefined) candidates = candidates.filter((p) => p.id === user.principal);
  if (candidates.length === 0) return { ok: false, reason: 'wrong_principal', detail: `key ${fingerprint(req.blob)} is not a key of ${user.principal}`, principal: user.principal! };
  if (candidates.length > 1) return { ok: false, reason: 'ambiguous', detail: `key ${fingerprint(req.blob)} belongs to ${candidates.map((p) => p.id).join(', ')}: log in as PRINCIPAL+TARGET` };
  const principal = candidates[0]!;
  if (req.signature) {
    const parsed = utils.parseKey(req.blob);
    if (parsed instanceof Error || parsed.type !== req.algo.replace(/^rsa-sha2-(256|512)$/, 'ssh-rsa') && parsed.type !== req.algo) {
      return { ok: false, reason: 'bad_signature', detail: 'the key cannot be parsed', principal: principal.id };
    }
    if (!parsed.verify(req.signed!, req.signature, req.hashAlgo)) return { ok: false, reason: 'bad_signature', detail: 'the signature does not verify', principal: principal.id };
  }
  return { ok: true, who: { principal, user, attributes: { auth: 'publickey', key_fingerprint: fingerprint(req.blob) } } };
}

function authenticateCertificate(req: PublicKeyRequest, ctx: AuthContext, user: UserName): AuthVerdict {
  if (ctx.cas.length === 0) return { ok: false, reason: 'no_ca', detail: 'this listener trusts no certificate authority' };
  let cert: OpenSshCertificate;
  try {
    cert = parseCertificate(req.blob);
  } catch (err) {
    return { ok: false, reason: 'malformed_certificate', detail: (err as Error).message };
  }
  if (cert.type !== req.algo) return { ok: false, reason: 'malformed_certificate', detail: `request says ${req.algo}, certificate is ${cert.type}` };
  // Which principals could this certificate stand for? Those whose names it lists.
  let candidates = [...ctx.config.principals.values()].filter((p) => cert.principals.some((n) => namesOf(p).has(n)));
  if (user.principal !== undefined) candidates = candidates.filter((p) => p.id === user.principal);
  if (candidates.length > 1) return { ok: false, reason: 'ambiguous', detail: `certificate ${cert.keyId} names ${candidates.map((p) => p.id).join(', ')}: log in as PRINCIPAL+TARGET` };
  const principal = candidates[0] ?? (user.principal !== undefined ? ctx.config.principals.get(user.principal) : undefined);
  const names = principal ? namesOf(principal) : new Set<string>(['(none)']);
  const verdict = checkCertificate(cert, { cas: ctx.cas, now: ctx.now, names, address: ctx.address });
  const pin = principal ? { principal: principal.id } : {};
  if (!verdict.ok) return { ok: false, reason: `certificate_${verdict.reason}`, detail: `certificate ${JSON.stringify(cert.keyId)} serial ${cert.serial}: ${verdict.detail}`, ...pin };
  if (!principal) return { ok: false, reason: 'certificate_wrong_principal', detail: `certificate ${cert.keyId} names no principal` };
  if (req.signature && !verifySshSignature(cert.key, req.signed!, req.signature)) {
    return { ok: false, reason: 'bad_signature', detail: 'the signature by the certified key does not verify', ...pin };
  }
  return {
    ok: true,
    who: {
      principal,
      user,
      attributes: { auth: 'certificate', key_fingerprint: fingerprint(cert.key.blob), cert_key_id: verdict.keyId, cert_serial: verdict.serial, cert_ca: verdict.ca, ...(verdict.forceCommand !== undefined ? { force_command: verdict.forceCommand } : {}) },
      ...(verdict.forceCommand !== undefined ? { forceCommand: verdict.forceCommand } : {}),
      extensions: verdict.extensions,
    },
  };
}

function namesOf(p: PrincipalConfig): Set<string> {
  return new Set([p.id, ...(sshCredentials(p).ssh_cert_principals ?? [])]);
}

/** Parsed key lines per config snapshot (a reload builds a new snapshot, so the cache follows it). */
const keyCache = new WeakMap<LoadedConfig, Map<string, PrincipalConfig[]>>();

function principalsWithKey(config: LoadedConfig, blob: Buffer): PrincipalConfig[] {
  let byKey = keyCache.get(config);
  if (!byKey) {
    byKey = new Map();
    for (const p of config.principals.values()) {
      for (const line of sshCredentials(p).ssh_keys ?? []) {
        let key: SshPublicKey;
        try {
          key = parseAuthorizedKeyLine(line);
        } catch {
          continue; // a line that is not a key matches nothing
        }
        const k = key.blob.toString('base64');
        const list = byKey.get(k) ?? [];
        if (!list.includes(p)) list.push(p);
        byKey.set(k, list);
      }
    }
    keyCache.set(config, byKey);
  }
  return byKey.get(blob.toString('base64')) ?? [];
}

/**
 * Failed logins in a sliding window, per key (a source address, a principal). Entries are pruned as
 * they age out, and the map is bounded so a spray from many addresses cannot grow it without end.
 */
export class FailureWindow {
  readonly #windowMs: number;
  readonly #limit: number;
  readonly #max: number;
  readonly #times = new Map<string, number[]>();

  constructor(windowMs: number, limit: number, maxKeys = 10_000) {
    this.#windowMs = windowMs;
    this.#limit = limit;
    this.#max = maxKeys;
  }

  #recent(key: string, now: number): number[] {
    const list = (this.#times.get(key) ?? []).filter((t) => now - t < this.#windowMs);
    if (list.length === 0) this.#times.delete(key);
    else this.#times.set(key, list);
    return list;
  }

  limited(key: string, now: number): boolean {
    return this.#recent(key, now).length >= this.#limit;
  }

  add(key: string, now: number): void {
    const list = this.#recent(key, now);
    list.push(now);
    if (list.length > this.#limit) list.splice(0, list.length - this.#limit);
    this.#times.set(key, list);
    if (this.#times.size > this.#max) {
      // Drop the oldest keys: bounded memory matters more than remembering every sprayer.
      const drop = this.#times.size - this.#max;
      let i = 0;
      for (const k of this.#times.keys()) {
        if (i++ >= drop) break;
        this.#times.delete(k);
      }
    }
  }
}
