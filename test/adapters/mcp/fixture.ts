// What the MCP door's tests share: a test identity provider (an ES256 key pair, its public half written
// as a JWKS file the listener trusts) that mints bearer JWTs the way a site's IdP would, with the claims
// each test varies (subject, RFC 8693 `act`, task, audience, issuer, lifetime); and the listener's YAML.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import type { TestPki } from '../../sync/certs.ts';

export interface TokenClaims {
  sub?: string;
  /** RFC 8693 actor chain, e.g. `{ sub: agent, act: { sub: earlier } }`. */
  act?: unknown;
  task?: string;
  aud?: string;
  iss?: string;
  /** Seconds from now to `exp` (negative: already expired). Default 600. */
  expIn?: number;
}

export interface TestIssuer {
  issuer: string;
  jwksFile: string;
  /** A token with these claims; `sub` and `aud` default to the issuer's defaults. */
  token(claims?: TokenClaims): Promise<string>;
}

/** A test IdP: its JWKS file is written to DIR/<name>.jwks.json now. `defaults` are read at each token (a resource known later). */
export async function makeIssuer(dir: string, defaults: { issuer: string; sub: string; aud: () => string; kid?: string; name?: string }): Promise<TestIssuer> {
  const kid = defaults.kid ?? 'k1';
  const keys = await generateKeyPair('ES256', { extractable: true });
  const signingKey: CryptoKey = keys.privateKey;
  const jwksFile = join(dir, `${defaults.name ?? 'idp'}.jwks.json`);
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid, alg: 'ES256', use: 'sig' }] }));
  return {
    issuer: defaults.issuer,
    jwksFile,
    token: (c = {}) => {
      const now = Math.floor(Date.now() / 1000);
      const extra: Record<string, unknown> = {};
      if (c.act !== undefined) extra.act = c.act;
      if (c.task !== undefined) extra.task = c.task;
      return new SignJWT(extra).setProtectedHeader({ alg: 'ES256', kid }).setIssuer(c.iss ?? defaults.issuer).setAudience(c.aud ?? defaults.aud())
        .setSubject(c.sub ?? defaults.sub).setIssuedAt(now - 5).setExpirationTime(now + (c.expIn ?? 600)).sign(signingKey);
    },
  };
}

/** One MCP listener on loopback (a `- id:` item of `listeners:`), TLS from the test PKI; `extra` lines are indented by the caller. */
export function mcpListenerYaml(o: { id: string; port: number; resource: string; pki: TestPki; idp: TestIssuer; clientCa?: boolean; audience?: string; extra?: string }): string {
  return `
  - id: ${o.id}
    protocol: mcp
    host: 127.0.0.1
    port: ${o.port}
    tls: { cert: ${o.pki.server.certPath}, key: ${o.pki.server.keyPath} }${o.clientCa ? `\n    client_ca: ${o.pki.ca.certPath}` : ''}
    resource: ${o.resource}
    issuers: [{ issuer: "${o.idp.issuer}", jwks_file: ${o.idp.jwksFile}${o.audience ? `, audience: "${o.audience}"` : ''} }]${o.extra ?? ''}`;
}
