// Which principal a Modbus/TCP Security client certificate names (tls.ts principalForCertificate), on
// certificates made by openssl: fingerprint, then the SPIFFE ID of an X.509-SVID, then subject CN.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { principalForCertificate } from '../../../src/adapters/modbus/tls.ts';
import type { PrincipalConfig } from '../../../src/config/schema.ts';
import { fingerprintOf, makeClientCert, makeSvid, makeTestPki, type CertPair, type TestPki } from '../../sync/certs.ts';

const ID = 'spiffe://plant.example/agent/7';
let pki: TestPki;
let svid: CertPair;
before(() => {
  pki = makeTestPki();
  svid = makeSvid(pki, 'agent-7', [ID], 'vendor-a');
});
after(() => pki?.cleanup());

const principal = (id: string, x509: NonNullable<PrincipalConfig['credentials']['x509']>): PrincipalConfig =>
  ({ id, kind: 'agent', owner: 'o', purpose: 'p', credentials: { x509 } }) as PrincipalConfig;
const match = (cert: CertPair, ...principals: PrincipalConfig[]) => {
  const m = principalForCertificate(new X509Certificate(cert.cert), principals);
  return m.ok ? { by: m.by, principal: m.principal.id, spiffeId: m.spiffeId } : { reason: m.reason, spiffeId: m.spiffeId };
};

test('an SVID names the principal listing its SPIFFE ID, never the one its CN names', () => {
  assert.deepEqual(match(svid, principal('vendor-a', { subject_cn: 'vendor-a' }), principal('agent-7', { spiffe_ids: [ID] })), { by: 'spiffe_id', principal: 'agent-7', spiffeId: ID });
  assert.deepEqual(match(svid, principal('vendor-a', { subject_cn: 'vendor-a' })), { reason: 'unknown_spiffe_id', spiffeId: ID });
  assert.deepEqual(match(svid, principal('a', { spiffe_ids: [ID] }), principal('b', { spiffe_ids: [ID] })), { reason: 'ambiguous_certificate', spiffeId: ID });
});

test('a fingerprint wins; on an SVID another principal claims it is ambiguous', () => {
  const fp = fingerprintOf(svid);
  assert.deepEqual(match(svid, principal('pinned', { fingerprints: [fp], spiffe_ids: [ID] })), { by: 'fingerprint', principal: 'pinned', spiffeId: ID });
  assert.deepEqual(match(svid, principal('pinned', { fingerprints: [fp] })), { by: 'fingerprint', principal: 'pinned', spiffeId: ID });
  assert.deepEqual(match(svid, principal('pinned', { fingerprints: [fp] }), principal('agent-7', { spiffe_ids: [ID] })), { reason: 'ambiguous_certificate', spiffeId: ID });
});

test('a certificate without a SPIFFE ID goes by CN as before; an invalid SVID is refused even when pinned', () => {
  const plain = makeClientCert(pki, 'plain', 'vendor-a');
  assert.deepEqual(match(plain, principal('vendor-a', { subject_cn: 'vendor-a' }), principal('agent-7', { spiffe_ids: [ID] })), { by: 'subject_cn', principal: 'vendor-a', spiffeId: undefined });
  const two = makeSvid(pki, 'two', [ID, 'spiffe://plant.example/agent/8']);
  assert.deepEqual(match(two, principal('pinned', { fingerprints: [fingerprintOf(two)] })), { reason: 'svid_several_uri_sans', spiffeId: undefined });
});
