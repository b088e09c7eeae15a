// Bearer tokens (RFC 6750) on the MCP door: JWTs — OIDC access tokens or SPIFFE JWT-SVIDs — verified with
// jose against the issuers' JWKS files, the audience bound to this door's resource URI (RFC 8707), `exp`
// required, `exp`/`nbf` with bounded skew; `sub` names the principal whose `credentials.token_subjects`
// holds it. A failure is one of a few stable reason codes, never the token.
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, decodeJwt, errors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
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
} as const;
export type TokenFailure = keyof typeof TOKEN_FAILURES;

/** Signatures by public keys only: a symmetric key in a JWKS file must not let anyone who reads it mint tokens. */
const ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA', 'Ed25519'];

export interface VerifiedToken {
  principal: PrincipalConfig;
  subject: string;
  issuer: string;
  /** When the token expires (ms since the epoch). */
  expiresMs: number;
}

export type TokenCheck = { ok: true; token: VerifiedToken } | { ok: false; reason: TokenFailure; detail: Record<string, unknown> };

interface Issuer {
  issuer: string;
  audience: string;
  keys: ReturnType<typeof createLocalJWKSet>;
}

export class TokenVerifier {
  readonly #issuers = new Map<string, Issuer>();
  readonly #skewSeconds: number;

  /** Reads every JWKS file now (listener start); a missing or malformed file throws, naming the file. */
  constructor(cfg: McpListenerConfig) {
    this.#skewSeconds = cfg.clock_skew_seconds;
    for (const i of cfg.issuers) {
      let jwks: JSONWebKeySet;
      try {
        jwks = JSON.parse(readFileSync(i.jwks_file, 'utf8')) as JSONWebKeySet;
        if (!Array.isArray(jwks?.keys)) throw new Error('no "keys" array');
      } catch (err) {
        throw new Error(`listener ${cfg.id}: JWKS file ${i.jwks_file} of issuer ${i.issuer}: ${(err as Error).message}`);
      }
      this.#issuers.set(i.issuer, { issuer: i.issuer, audience: i.audience ?? cfg.resource, keys: createLocalJWKSet(jwks) });
    }
  }

  /** The bearer token of an Authorization header, or undefined (RFC 6750 §2.1: the scheme is case-insensitive). */
  static bearer(header: string | undefined): string | undefined {
    const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header ?? '');
    return m?.[1];
  }

  async verify(token: string | undefined, principals: Iterable<PrincipalConfig>, nowMs: number): Promise<TokenCheck> {
    if (token === undefined) return { ok: false, reason: 'no_token', detail: {} };
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
    try {
      ({ payload } = await jwtVerify(token, issuer.keys, {
        issuer: issuer.issuer,
        audience: issuer.audience,
        clockTolerance: this.#skewSeconds,
        currentDate: new Date(nowMs),
        requiredClaims: ['exp', 'sub'],
        algorithms: ALGORITHMS,
      }));
    } catch (err) {
      const detail = { issuer: issuer.issuer };
      if (err instanceof errors.JWTExpired) return { ok: false, reason: 'expired', detail };
      if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'aud') return { ok: false, reason: 'wrong_audience', detail };
      return { ok: false, reason: 'bad_token', detail: { ...detail, error: (err as { code?: string }).code ?? 'error' } };
    }
    const subject = payload.sub!;
    for (const p of principals) {
      const subjects = (p.credentials as { token_subjects?: string[] }).token_subjects;
      if (!subjects?.includes(subject)) continue;
      if (p.expires !== undefined && Date.parse(p.expires) <= nowMs) return { ok: false, reason: 'principal_expired', detail: { issuer: issuer.issuer, principal: p.id } };
      return { ok: true, token: { principal: p, subject, issuer: issuer.issuer, expiresMs: payload.exp! * 1000 } };
    }
    return { ok: false, reason: 'unknown_subject', detail: { issuer: issuer.issuer, subject: subject.slice(0, 200) } };
  }
}
