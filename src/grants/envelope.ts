// Pre-authorised grant envelopes, for sites central PAM cannot reach: central PAM signs a grant, an
// operator carries the file in and runs `penstockctl grants import FILE`, and the gateway verifies it
// offline against the keys pinned in its config (`envelopes.keys`) before issuing it as a runtime grant.
//
// Format: a compact JWS (RFC 7515), alg EdDSA (Ed25519), header typ `penstock-grant+jws`. Why JWS and
// not a C2SP signed note like our checkpoints: central PAMs already issue JWS/JWT signed with Ed25519,
// so they can mint envelopes with the tools they have, and `jose` verifies them here. The note format
// stays what it is for: checkpoints and witness cosignatures. The typ is required and exact, so that an
// ordinary JWT from the same issuer (an access token) can never be imported as an envelope.
//
// Replay: every jti imported is kept in a ledger file in the state directory, written (atomically)
// before the grant is issued, beside grants.json where runtime grants live: grants are restored from
// that file, not rebuilt from the journal, so the ledger follows them (and journal retention may prune
// the import record while the envelope is still valid). The ledger also counts uses: `max_uses` is the
// number of sessions that may use the grant. A session takes a use when its first action under the
// grant is allowed; when none is left, further sessions are refused, and the grant is revoked (with a
// journaled reason) once the last session that took a use has ended.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../common/files.ts';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { z } from 'zod';
import { PenstockError, isPenstockError, type ErrorCode } from '../common/errors.ts';
import type { EnvelopesConfig, GrantConfig } from '../config/schema.ts';
import type { GrantStore } from './store.ts';
import type { Operator } from './types.ts';

export const ENVELOPE_TYP = 'penstock-grant+jws';
/** Clock difference tolerated between central PAM and the gateway, for nbf, iat and exp. */
export const ENVELOPE_SKEW_MS = 60_000;
/** An envelope file is a few KiB; refuse anything far larger before parsing it. */
export const MAX_ENVELOPE_BYTES = 64 * 1024;

const numericDate = z.number().int().min(0);
const claimsSchema = z.looseObject({
  iss: z.string().min(1).max(256),
  jti: z.string().min(1).max(128),
  iat: numericDate,
  nbf: numericDate.optional(),
  exp: numericDate,
  max_uses: z.number().int().min(1).max(1_000_000),
  grant: z.record(z.string(), z.unknown()),
});

export interface VerifiedEnvelope {
  kid: string;
  iss: string;
  jti: string;
  /** The envelope's own lifetime, in ms since the epoch. */
  notBeforeMs: number;
  expiresMs: number;
  maxUses: number;
  grant: GrantConfig;
}

export interface VerifyOptions {
  config: EnvelopesConfig;
  nowMs: number;
  /** The runtime grant check (GrantStore's validateGrant: references, profile points); throws on a bad grant. */
  validateGrant: (g: unknown) => GrantConfig;
  /** Whether this jti was imported before (the ledger): checked before the grant, so a replay is named a replay. */
  seen?: (jti: string) => boolean;
}

function refuse(code: ErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new PenstockError(code, message, details);
}

/** Verify an envelope's signature, header, claims and grant; returns what to issue, or throws a PS_ENVELOPE_* error. */
export async function verifyEnvelope(text: string, opts: VerifyOptions): Promise<VerifiedEnvelope> {
  const jws = text.trim();
  if (Buffer.byteLength(jws) > MAX_ENVELOPE_BYTES) refuse('PS_ENVELOPE_MALFORMED', `envelope is larger than ${MAX_ENVELOPE_BYTES} bytes`);
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(jws)) refuse('PS_ENVELOPE_MALFORMED', 'envelope is not a compact JWS (three base64url parts joined by dots)');
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(jws);
  } catch {
    refuse('PS_ENVELOPE_MALFORMED', 'envelope header is not base64url JSON');
  }
  if (header.typ !== ENVELOPE_TYP) refuse('PS_ENVELOPE_WRONG_TYPE', `envelope typ is ${JSON.stringify(header.typ ?? null)}, not ${ENVELOPE_TYP}`);
  if (header.alg !== 'EdDSA') refuse('PS_ENVELOPE_MALFORMED', `envelope alg is ${JSON.stringify(header.alg ?? null)}, not EdDSA`);
  if (typeof header.kid !== 'string' || header.kid === '') refuse('PS_ENVELOPE_MALFORMED', 'envelope header has no kid');
  const kid = header.kid;
  const pinned = opts.config.keys.find((k) => k.kid === kid);
  if (!pinned) refuse('PS_ENVELOPE_UNKNOWN_KEY', `no pinned envelope key has kid ${JSON.stringify(kid)}`, { kid });

  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(jws, publicKey(pinned.public_key), { algorithms: ['EdDSA'] }));
  } catch {
    refuse('PS_ENVELOPE_BAD_SIGNATURE', `envelope signature does not verify against pinned key ${kid}`, { kid });
  }

  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    refuse('PS_ENVELOPE_MALFORMED', 'envelope payload is not JSON');
  }
  const parsed = claimsSchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    refuse('PS_ENVELOPE_MALFORMED', `envelope claim ${i?.path.join('.') || '(root)'}: ${i?.message ?? 'invalid'}`);
  }
  const c = parsed.data;
  const where = { kid, iss: c.iss, jti: c.jti };
  if (c.iss !== pinned.issuer) refuse('PS_ENVELOPE_FOREIGN_ISSUER', `envelope issuer ${JSON.stringify(c.iss)} is not ${JSON.stringify(pinned.issuer)}, the issuer pinned with key ${kid}`, where);

  const notBeforeMs = (c.nbf ?? c.iat) * 1000;
  const expiresMs = c.exp * 1000;
  if (opts.nowMs + ENVELOPE_SKEW_MS < Math.max(notBeforeMs, c.iat * 1000)) refuse('PS_ENVELOPE_NOT_YET_VALID', `envelope is valid only from ${new Date(notBeforeMs).toISOString()}`, where);
  if (opts.nowMs - ENVELOPE_SKEW_MS >= expiresMs) refuse('PS_ENVELOPE_EXPIRED', `envelope expired at ${new Date(expiresMs).toISOString()}`, where);
  const maxMs = opts.config.max_lifetime_days * 86_400_000;
  if (expiresMs - notBeforeMs > maxMs || expiresMs <= notBeforeMs) {
    refuse('PS_ENVELOPE_LIFETIME', `envelope lifetime (${new Date(notBeforeMs).toISOString()} to ${new Date(expiresMs).toISOString()}) is not within envelopes.max_lifetime_days (${opts.config.max_lifetime_days})`, where);
  }

  if (opts.seen?.(c.jti)) refuse('PS_ENVELOPE_REPLAYED', `envelope ${c.jti} was imported before`, where);

  let grant: GrantConfig;
  try {
    grant = opts.validateGrant(c.grant);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new PenstockError('PS_ENVELOPE_GRANT_INVALID', `envelope grant is invalid: ${message}`, where, { cause: err });
  }
  // The envelope bounds the grant: without a window, the grant would outlive the signature that carries it.
  const w = grant.window;
  if (!w || Date.parse(w.from) < notBeforeMs || Date.parse(w.to) > expiresMs) {
    refuse('PS_ENVELOPE_LIFETIME', w ? `grant window ${w.from} to ${w.to} lies outside the envelope's lifetime` : 'an envelope\'s grant needs a window within the envelope\'s lifetime', where);
  }
  return { kid, iss: c.iss, jti: c.jti, notBeforeMs, expiresMs, maxUses: c.max_uses, grant };
}

function publicKey(pem: string): KeyObject {
  return createPublicKey(pem);
}

/**
 * What a malformed or unverified envelope claims to be, for the journal's refusal record: header kid
 * and payload iss/jti and the grant's principal, decoded without trusting them, bounded in length. Never the envelope itself.
 */
export function describeEnvelope(text: unknown): Record<string, string> | undefined {
  if (typeof text !== 'string') return undefined;
  const parts = text.trim().split('.');
  if (parts.length !== 3) return undefined;
  const out: Record<string, string> = {};
  const pick = (part: string | undefined, keys: string[]): void => {
    try {
      const o = JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
      for (const k of keys) if (typeof o[k] === 'string') out[k] = (o[k] as string).slice(0, 128);
      const principal = (o.grant as { principal?: unknown } | undefined)?.principal;
      if (typeof principal === 'string') out.principal = principal.slice(0, 128);
    } catch {
      // Not JSON: nothing to describe from this part.
    }
  };
  pick(parts[0], ['kid', 'typ']);
  pick(parts[1], ['iss', 'jti']);
  return Object.keys(out).length ? out : undefined;
}

// ---------------------------------------------------------------- the ledger

const ledgerEntrySchema = z.strictObject({
  jti: z.string().min(1),
  iss: z.string().min(1),
  kid: z.string().min(1),
  grant: z.string().min(1),
  imported_at: z.string().min(1),
  expires: z.string().min(1),
  max_uses: z.number().int().min(1),
  uses: z.number().int().min(0),
});
const ledgerSchema = z.strictObject({ version: z.literal(1), envelopes: z.array(ledgerEntrySchema) });
type LedgerEntry = z.infer<typeof ledgerEntrySchema>;

/** Imported envelopes by jti, with their grants' use counts; every change is on disk before it counts. */
export class EnvelopeLedger {
  readonly #file: string;
  #byJti = new Map<string, LedgerEntry>();
  #byGrant = new Map<string, LedgerEntry>();
  /** Sessions that took a use of each grant since start (sessions do not survive a restart). */
  readonly #sessions = new Map<string, Set<string>>();

  constructor(file: string) {
    this.#file = file;
    if (!existsSync(file)) return;
    const parsed = ledgerSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    // A damaged ledger would forget which envelopes were used: refuse to start rather than allow replays.
    if (!parsed.success) throw new PenstockError('PS_ENVELOPE_MALFORMED', `envelope ledger ${file} is malformed; restore it from a backup (deleting it would allow replays)`);
    for (const e of parsed.data.envelopes) this.#index(e);
  }

  seen(jti: string): boolean {
    return this.#byJti.has(jti);
  }

  /** Record an import (on disk) before its grant is issued: a crash in between burns the jti, it never allows a replay. */
  record(env: VerifiedEnvelope, nowMs: number): void {
    if (this.seen(env.jti)) throw new PenstockError('PS_ENVELOPE_REPLAYED', `envelope ${env.jti} was imported before`, { jti: env.jti, iss: env.iss });
    this.#index({ jti: env.jti, iss: env.iss, kid: env.kid, grant: env.grant.id, imported_at: new Date(nowMs).toISOString(), expires: new Date(env.expiresMs).toISOString(), max_uses: env.maxUses, uses: 0 });
    this.#save();
  }

  /** Undo record() when the grant could not be issued after all (nothing was granted, so nothing was used). */
  forget(jti: string): void {
    const e = this.#byJti.get(jti);
    if (!e) return;
    this.#byJti.delete(jti);
    if (this.#byGrant.get(e.grant) === e) this.#byGrant.delete(e.grant);
    this.#save();
  }

  /**
   * May this session use this grant? Grants not from an envelope always may. A session takes one use
   * the first time; when the envelope's uses are all taken, new sessions may not.
   */
  takeUse(grantId: string, sessionId: string): boolean {
    const e = this.#byGrant.get(grantId);
    if (!e) return true;
    const sessions = this.#sessions.get(grantId) ?? new Set<string>();
    if (sessions.has(sessionId)) return true;
    if (e.uses >= e.max_uses) return false;
    e.uses++;
    this.#save();
    sessions.add(sessionId);
    this.#sessions.set(grantId, sessions);
    return true;
  }

  /** Grants whose uses are all taken and whose sessions have all ended: the ones to revoke now. */
  spent(liveSessionIds: ReadonlySet<string>): { grant: string; uses: number; maxUses: number; jti: string }[] {
    const out: { grant: string; uses: number; maxUses: number; jti: string }[] = [];
    for (const e of this.#byGrant.values()) {
      if (e.uses < e.max_uses) continue;
      const sessions = [...(this.#sessions.get(e.grant) ?? [])];
      if (sessions.some((id) => liveSessionIds.has(id))) continue;
      out.push({ grant: e.grant, uses: e.uses, maxUses: e.max_uses, jti: e.jti });
    }
    return out;
  }

  #index(e: LedgerEntry): void {
    this.#byJti.set(e.jti, e);
    this.#byGrant.set(e.grant, e);
  }

  #save(): void {
    writeFileAtomic(this.#file, JSON.stringify({ version: 1, envelopes: [...this.#byJti.values()] }, null, 2), 0o640);
  }
}

/** Verify an envelope, record its jti, and issue its grant; a refusal leaves the ledger and the store as they were. */
export async function importEnvelope(text: string, deps: { config: EnvelopesConfig | undefined; ledger: EnvelopeLedger; grants: GrantStore; validateGrant: (g: unknown) => GrantConfig; nowMs: number; by: Operator }) {
  if (!deps.config) refuse('PS_ENVELOPE_DISABLED', 'this gateway pins no envelope keys (envelopes.keys in the config)');
  const env = await verifyEnvelope(text, { config: deps.config, nowMs: deps.nowMs, validateGrant: deps.validateGrant, seen: (jti) => deps.ledger.seen(jti) });
  deps.ledger.record(env, deps.nowMs);
  try {
    const held = deps.grants.issue(env.grant, deps.by);
    return { id: held.id, jti: env.jti, iss: env.iss, kid: env.kid, max_uses: env.maxUses, expires: new Date(env.expiresMs).toISOString() };
  } catch (err) {
    deps.ledger.forget(env.jti);
    if (isPenstockError(err, 'PS_GRANT_INVALID')) throw new PenstockError('PS_ENVELOPE_GRANT_INVALID', `envelope grant is invalid: ${err.message}`, { jti: env.jti, iss: env.iss }, { cause: err });
    throw err;
  }
}

/** Revoke every spent envelope grant whose sessions have ended (the daemon calls this each second). */
export function revokeSpent(ledger: EnvelopeLedger, grants: GrantStore, liveSessionIds: ReadonlySet<string>, by: Operator): string[] {
  const revoked: string[] = [];
  for (const s of ledger.spent(liveSessionIds)) {
    const g = grants.get(s.grant);
    if (!g || g.revoked) continue;
    grants.revoke(s.grant, by, `envelope ${s.jti} spent: ${s.uses} of ${s.maxUses} sessions used`);
    revoked.push(s.grant);
  }
  return revoked;
}
