// Bearer tokens (RFC 6750) on the MCP door: JWTs — OIDC access tokens or SPIFFE JWT-SVIDs — verified with
// jose against the issuers' JWKS files, the audience bound to this door's resource URI (RFC 8707), `exp`
// required, `exp`/`nbf` with bounded skew. A failure is one of a few stable reason codes, never the token.
//
// Who is acting: a token without `act` is the principal named by its `sub` (an agent's own token, a
// JWT-SVID). A delegated token (RFC 8693 §4.1) names in `sub` the party whose authority it carries and
// in its outermost `act.sub` the party acting now — the agent — with earlier actors nested inside. The
// agent is the principal (its `credentials.token_subjects` holds that subject); the parties it acts for,
// nearest first (the inner actors, then `sub`), are the delegation chain, and the nearest must be the
// principal's configured `acting_for`: a delegation the gateway was not told of is refused.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { decodeJwt, errors, jwtVerify, type JWTPayload } from 'jose';
import { IssuerKeys } from './jwks.ts';
import type { PrincipalConfig } from '../../config/schema.ts';
import type { McpListenerConfig } from './schema.ts';

/** Why a request's bearer token was refused: `detail.reason` of its auth.failed event. */
export const TOKEN_FAILURES = {
  no_token: 'the request carries no `Authorization: Bearer` token',
  bad_token: 'the token is not a JWT, or its signature, algorithm or claims do not verify',
  expired: 'the token\'s `exp` has passed (beyond the allowed clock skew)',
  wrong_audience: 'the token\'s `aud` is not this door\'s resource',
  unknown_issuer: 'the token\'s `iss` is none of the listener\'s issuers',
  unknown_subject: 'the token\'s `sub` names no principal (credentials.token_subjects)',
  principal_expired: 'the token\'s `sub` names a principal whose `expires` has passed',
  act_mismatch: 'the token\'s delegation chain (RFC 8693 `act`) does not agree with the principal\'s `acting_for` (or the principal acts for nobody)',
  act_malformed: 'the token\'s `act` claim is not a chain of objects with a string `sub` (at most 8 deep)',
} as const;
export type TokenFailure = keyof typeof TOKEN_FAILURES;

/** Signatures by public keys only: a symmetric key in a JWKS file must not let anyone who reads it mint tokens. */
const ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA', 'Ed25519'];

export interface VerifiedToken {
  principal: PrincipalConfig;
  /** The acting party's subject: `sub`, or the outermost `act.sub` of a delegated token. */
  subject: string;
  issuer: string;
  /** When the token expires (ms since the epoch). */
  expiresMs: number;
  /** The principal, then whom it acts for, nearest first: what every event of the session carries. */
  chain: string[];
  /** The token's task claim (the listener's `task_claim`), when it has one. */
  task?: string;
}

/** Verified tokens remembered; the oldest is forgotten first. */
const VERIFIED_CACHE = 1024;

/** Deepest `act` nesting read: a chain longer than any real delegation is refused, not walked. */
const MAX_ACT_DEPTH = 8;

/** The actors of a delegated token, outermost (acting now) first; undefined for a token without `act`; 'malformed' if not a chain of `{ sub }`. */
function actors(payload: JWTPayload): string[] | undefined | 'malformed' {
  if (payload.act === undefined) return undefined;
  const out: string[] = [];
  let act: unknown = payload.act;
  while (act !== undefined) {
    if (typeof act !== 'object' || act === null || typeof (act as { sub?: unknown }).sub !== 'string' || out.length >= MAX_ACT_DEPTH) return 'malformed';
    out.push((act as { sub: string }).sub);
    act = (act as { act?: unknown }).act;
  }
  return out;
}

export type TokenCheck = { ok: true; token: VerifiedToken } | { ok: false; reason: TokenFailure; detail: Record<string, unknown> };

interface Issuer {
  issuer: string;
  audience: string;
  keys: IssuerKeys;
}

export class TokenVerifier {
  readonly #issuers = new Map<string, Issuer>();
  readonly #skewSeconds: number;
  readonly #taskClaim: string;
  /** Tokens verified, by SHA-256 (never the token itself), with the principals they were checked against. */
  readonly #verified = new Map<string, { principals: ReadonlyMap<string, PrincipalConfig>; token: VerifiedToken }>();

  /** Reads every pinned JWKS file and cached JWKS now (listener start); a missing or malformed pinned file throws, naming the file. */
  constructor(cfg: McpListenerConfig, stateDir: string, log: Logger) {
    this.#skewSeconds = cfg.clock_skew_seconds;
    this.#taskClaim = cfg.task_claim;
    for (const i of cfg.issuers) {
      let keys: IssuerKeys;
      try {
        keys = new IssuerKeys(i, stateDir, log);
      } catch (err) {
        throw new Error(`listener ${cfg.id}: ${(err as Error).message}`);
      }
      this.#issuers.set(i.issuer, { issuer: i.issuer, audience: i.audience ?? cfg.resource, keys });
    }
  }

  /** Start fetching the issuers' JWKS endpoints (those that have one). */
  start(): void {
    for (const i of this.#issuers.values()) i.keys.start();
  }

  close(): void {
    for (const i of this.#issuers.values()) i.keys.close();
  }

  /** For status: when each fetched issuer's keys last came. */
  status(): Record<string, string | null> {
    return Object.fromEntries([...this.#issuers.values()].map((i) => [i.issuer, i.keys.fetchedAt ?? null]));
  }

  /** The bearer token of an Authorization header, or undefined (RFC 6750 §2.1: the scheme is case-insensitive). */
  static bearer(header: string | undefined): string | undefined {
    const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header ?? '');
    return m?.[1];
  }

  /**
   * Verify a token. A token verified before, against the same principals (the same config snapshot),
   * is answered from a bounded cache until its `exp`: an agent sends its token with every request, and a
   * signature check per request was most of the door's CPU per call.
   */
  async verify(token: string | undefined, principals: ReadonlyMap<string, PrincipalConfig>, nowMs: number): Promise<TokenCheck> {
    if (token === undefined) return { ok: false, reason: 'no_token', detail: {} };
    const key = createHash('sha256').update(token).digest('base64url');
    const hit = this.#verified.get(key);
    if (hit && hit.principals === principals && hit.token.expiresMs + this.#skewSeconds * 1000 > nowMs) {
      const p = hit.token.principal;
      if (p.expires === undefined || Date.parse(p.expires) > nowMs) return { ok: true, token: hit.token };
    }
    if (hit) this.#verified.delete(key);
    const check = await this.#verify(token, principals, nowMs);
    if (check.ok) {
      if (this.#verified.size >= VERIFIED_CACHE) this.#verified.delete(this.#verified.keys().next().value!);
      this.#verified.set(key, { principals, token: check.token });
    }
    return check;
  }

  async #verify(token: string, principals: ReadonlyMap<string, PrincipalConfig>, nowMs: number): Promise<TokenCheck> {
    let claimed: JWTPayload;
    try {
      claimed = decodeJwt(token);
    } catch {
      return { ok: false, reason: 'bad_token', detail: {} };
    }
    // The issuer is read before the signature is checked only to pick its keys; nothing else is trusted yet.
    const issuer = typeof claimed.iss === 'string' ? this.#issuers.get(claimed.iss) : undefined;
    if (!issuer) return { ok: false, reason: 'unknown_issuer', detail: typeof claimed.iss === 'string' ? { issuer: claimed.iss.slice(0, 200) } : {} };
    let payload: JWTPayload;
    const verify = () => jwtVerify(token, issuer.keys.getKey, {
      issuer: issuer.issuer,
      audience: issuer.audience,
      clockTolerance: this.#skewSeconds,
      currentDate: new Date(nowMs),
      requiredClaims: ['exp', 'sub'],
      algorithms: ALGORITHMS,
    });
    try {
      try {
        ({ payload } = await verify());
      } catch (err) {
        // A key we do not hold yet (the issuer rotated): ask the issuer once, then try again.
        if (!(err instanceof errors.JWKSNoMatchingKey) || !(await issuer.keys.onUnknownKey())) throw err;
        ({ payload } = await verify());
      }
    } catch (err) {
      const detail = { issuer: issuer.issuer };
      if (err instanceof errors.JWTExpired) return { ok: false, reason: 'expired', detail };
      if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'aud') return { ok: false, reason: 'wrong_audience', detail };
      return { ok: false, reason: 'bad_token', detail: { ...detail, error: (err as { code?: string }).code ?? 'error' } };
    }
    const acting = actors(payload);
    if (acting === 'malformed') return { ok: false, reason: 'act_malformed', detail: { issuer: issuer.issuer } };
    const subject = acting ? acting[0]! : payload.sub!;
    // Nearest first: the actor that delegated to this one, and so on, then the party whose authority it is.
    const actsFor = acting ? [...acting.slice(1), payload.sub!] : undefined;
    const task = typeof payload[this.#taskClaim] === 'string' ? (payload[this.#taskClaim] as string) : undefined;
    for (const p of principals.values()) {
      const subjects = (p.credentials as { token_subjects?: string[] }).token_subjects;
      if (!subjects?.includes(subject)) continue;
      if (p.expires !== undefined && Date.parse(p.expires) <= nowMs) return { ok: false, reason: 'principal_expired', detail: { issuer: issuer.issuer, principal: p.id } };
      if (actsFor && actsFor[0] !== p.acting_for) {
        return { ok: false, reason: 'act_mismatch', detail: { issuer: issuer.issuer, principal: p.id, token_chain: actsFor.map((a) => a.slice(0, 200)), ...(p.acting_for ? { acting_for: p.acting_for } : {}) } };
      }
      const chain = [p.id, ...(actsFor ?? (p.acting_for ? [p.acting_for] : []))];
      return { ok: true, token: { principal: p, subject, issuer: issuer.issuer, expiresMs: payload.exp! * 1000, chain, ...(task !== undefined ? { task } : {}) } };
    }
    return { ok: false, reason: 'unknown_subject', detail: { issuer: issuer.issuer, subject: subject.slice(0, 200) } };
  }
}
