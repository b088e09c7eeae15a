// Grant envelopes for tests, made the way central PAM makes them: jose's CompactSign with a real
// Ed25519 key, or openssl pkeyutl over the JWS signing input (a signer that is not JavaScript).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CompactSign, exportSPKI, generateKeyPair, type CryptoKey } from 'jose';

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicPem: string;
}

export async function makeKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  return { kid, privateKey, publicPem: await exportSPKI(publicKey) };
}

export interface EnvelopeSpec {
  iss: string;
  jti: string;
  /** Seconds since the epoch. */
  iat: number;
  nbf?: number;
  exp: number;
  max_uses: number;
  grant: Record<string, unknown>;
}

/** A grant for vendor-1 on plc-1 (read-only Modbus), windowed to [fromS, toS]. */
export function grantFor(id: string, fromS: number, toS: number, principal = 'vendor-1'): Record<string, unknown> {
  return {
    id,
    principal,
    targets: ['plc-1'],
    task: { ticket: `WO-${id}`, purpose: 'offline maintenance' },
    window: { from: new Date(fromS * 1000).toISOString(), to: new Date(toS * 1000).toISOString() },
    rules: [{ modbus: { preset: 'readonly' } }],
  };
}

/** An envelope spanning [nowS - 60, nowS + days] with a grant over the same span. */
export function spec(id: string, nowS: number, over: Partial<EnvelopeSpec> = {}, days = 2): EnvelopeSpec {
  const from = nowS - 60;
  const to = nowS + days * 86_400;
  return { iss: 'central-pam', jti: `jti-${id}`, iat: from, nbf: from, exp: to, max_uses: 3, grant: grantFor(id, from, to), ...over };
}

export async function sign(key: SigningKey, claims: EnvelopeSpec | Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'penstock-grant+jws', ...header })
    .sign(key.privateKey);
}

/** An Ed25519 key made by openssl, its public half as SPKI PEM. */
export function opensslKey(dir: string): { keyFile: string; publicPem: string } {
  const keyFile = join(dir, 'openssl-ed25519.pem');
  execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', keyFile]);
  return { keyFile, publicPem: execFileSync('openssl', ['pkey', '-in', keyFile, '-pubout'], { encoding: 'utf8' }) };
}

/** A compact JWS whose signature openssl made over the base64url signing input (RFC 7515 §5.1, RFC 8037). */
export function opensslSign(dir: string, keyFile: string, kid: string, claims: EnvelopeSpec): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64({ alg: 'EdDSA', kid, typ: 'penstock-grant+jws' })}.${b64(claims)}`;
  const inFile = join(dir, 'signing-input');
  const sigFile = join(dir, 'signature');
  writeFileSync(inFile, input);
  execFileSync('openssl', ['pkeyutl', '-sign', '-rawin', '-inkey', keyFile, '-in', inFile, '-out', sigFile]);
  return `${input}.${readFileSync(sigFile).toString('base64url')}`;
}
