// Issuers' keys with no uplink needed: fetched from the issuer's JWKS endpoint (a real HTTPS server on
// loopback, the test CA's certificate), cached in the state directory, refreshed on rotation. A key the
// issuer rotates in is accepted after one fetch; with the endpoint gone, the keys held — and after a
// restart, the cached ones — still verify tokens; a fetch flood is bounded by the cool-down.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { pino } from 'pino';
import { TokenVerifier } from '../../../src/adapters/mcp/tokens.ts';
import { mcpListenerSchema } from '../../../src/adapters/mcp/schema.ts';
import type { PrincipalConfig } from '../../../src/config/schema.ts';
import { freePort, tempDir, until } from '../../support.ts';
import { makeTestPki, type TestPki } from '../../sync/certs.ts';

const ISSUER = 'https://idp.plant.example';
const RESOURCE = 'https://127.0.0.1:8443/mcp';
const silent = pino({ level: 'silent' });
const principal = { id: 'tuner', kind: 'agent', owner: 'x', purpose: 'y', credentials: { token_subjects: ['agent-1'] } } as unknown as PrincipalConfig;
const principals = new Map([['tuner', principal]]);

let tmp: { dir: string; cleanup: () => void };
let pki: TestPki;
let server: https.Server;
let port: number;
let served: JWK[] = [];
let fetches = 0;

async function key(kid: string): Promise<{ priv: CryptoKey; jwk: JWK }> {
  const k = await generateKeyPair('ES256', { extractable: true });
  return { priv: k.privateKey, jwk: { ...(await exportJWK(k.publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

const token = (priv: CryptoKey, kid: string) => new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid }).setIssuer(ISSUER).setAudience(RESOURCE)
  .setSubject('agent-1').setExpirationTime('5m').sign(priv);

function verifier(stateDir: string): TokenVerifier {
  const cfg = mcpListenerSchema.parse({
    id: 'mcp-1', protocol: 'mcp', host: '127.0.0.1', port: 8443, tls: { cert: 'x', key: 'y' }, resource: RESOURCE,
    issuers: [{ issuer: ISSUER, jwks_uri: `https://127.0.0.1:${port}/jwks.json`, jwks_ca_file: pki.ca.certPath, jwks_refresh_seconds: 3600 }],
  });
  return new TokenVerifier(cfg, stateDir, silent);
}

before(async () => {
  tmp = tempDir('penstock-jwks-');
  pki = makeTestPki();
  port = await freePort();
  server = https.createServer({ cert: pki.server.cert, key: pki.server.key }, (req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: served }));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
});

after(async () => {
  server?.close();
  pki?.cleanup();
  tmp?.cleanup();
});

test('keys come from the issuer\'s endpoint, a rotated-in key after one fetch, and a restart with the link down uses the cache', async () => {
  const a = await key('a');
  const b = await key('b');
  served = [a.jwk];
  const state = join(tmp.dir, 'state');
  const v = verifier(state);
  v.start();
  await until(() => fetches >= 1 && existsSync(join(state, 'jwks')) && readdirSync(join(state, 'jwks')).length === 1, 'the first fetch cached');
  assert.equal((await v.verify(await token(a.priv, 'a'), principals, Date.now())).ok, true);

  // The issuer rotates to key b: a token signed with b names a kid we do not hold, so we ask once.
  served = [a.jwk, b.jwk];
  const before = fetches;
  assert.equal((await v.verify(await token(b.priv, 'b'), principals, Date.now())).ok, true);
  assert.equal(fetches, before + 1);
  // A flood of unknown key ids is not a fetch flood: within the cool-down nobody asks again.
  const stranger = await key('z');
  for (let i = 0; i < 20; i++) assert.equal((await v.verify(await token(stranger.priv, 'z'), principals, Date.now())).ok, false);
  assert.equal(fetches, before + 1);
  v.close();

  // The link goes down; the gateway restarts: the cached keys still verify.
  await new Promise<void>((r) => server.close(() => r()));
  server.closeAllConnections();
  const again = verifier(state);
  again.start();
  assert.equal((await again.verify(await token(b.priv, 'b'), principals, Date.now())).ok, true);
  assert.equal((await again.verify(await token(a.priv, 'a'), principals, Date.now())).ok, true);
  again.close();
});
