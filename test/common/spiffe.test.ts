// SPIFFE IDs as the specification (SPIFFE-ID.md) writes them, and the URI SANs of certificates made by
// the real openssl: what makes an X.509-SVID, and what only pretends to be one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { parseSpiffeId, svidOf, uriSans, type SpiffeIdError } from '../../src/common/spiffe.ts';
import { makeClientCert, makeSvid, makeTestPki, type TestPki } from '../sync/certs.ts';

test('valid SPIFFE IDs, among them the specification\'s own examples', () => {
  for (const id of [
    'spiffe://staging.example.com/payments/mysql',
    'spiffe://staging.example.com/payments/web-fe',
    'spiffe://k8s-west.example.com/ns/staging/sa/default',
    'spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453',
    'spiffe://plant.example/agent/7',
    'spiffe://plant.example',
    'spiffe://trust_domain-1.x/A.b_c-D/...x/.hidden',
  ]) {
    const r = parseSpiffeId(id);
    assert.ok(r.ok, `${id}: ${r.ok ? '' : r.error}`);
  }
  const r = parseSpiffeId('spiffe://plant.example/agent/7');
  assert.deepEqual(r.ok && r.id, { trustDomain: 'plant.example', path: '/agent/7', text: 'spiffe://plant.example/agent/7' });
});

test('invalid SPIFFE IDs each get their stable reason', () => {
  const cases: [string, SpiffeIdError][] = [
    ['', 'empty'],
    ['https://plant.example/agent/7', 'wrong_scheme'],
    ['SPIFFE://plant.example/agent/7', 'wrong_scheme'],
    ['spiffe:/plant.example/agent', 'wrong_scheme'],
    ['plant.example/agent/7', 'wrong_scheme'],
    ['spiffe://', 'trust_domain_missing'],
    ['spiffe:///agent/7', 'trust_domain_missing'],
    ['spiffe://Plant.example/agent/7', 'trust_domain_chars'], // trust domains are lower case
    ['spiffe://plant.example:8443/agent/7', 'trust_domain_chars'], // no port
    ['spiffe://user@plant.example/agent/7', 'trust_domain_chars'], // no userinfo
    ['spiffe://user:pw@plant.example', 'trust_domain_chars'],
    ['spiffe://plant.example?x=1', 'trust_domain_chars'],
    ['spiffe://plant.example#f', 'trust_domain_chars'],
    ['spiffe://[::1]/agent', 'trust_domain_chars'],
    [`spiffe://${'a'.repeat(256)}/x`, 'trust_domain_too_long'],
    ['spiffe://plant.example/', 'path_empty_segment'], // the trailing slash
    ['spiffe://plant.example/agent/', 'path_empty_segment'],
    ['spiffe://plant.example//agent', 'path_empty_segment'],
    ['spiffe://plant.example/./agent', 'path_dot_segment'],
    ['spiffe://plant.example/agent/..', 'path_dot_segment'],
    ['spiffe://plant.example/agent/7?query=1', 'path_chars'], // no query
    ['spiffe://plant.example/agent/7#frag', 'path_chars'], // no fragment
    ['spiffe://plant.example/agent%2F7', 'path_chars'], // no percent-encoding
    ['spiffe://plant.example/agent 7', 'path_chars'],
    ['spiffe://plant.example/agent/\u00e9', 'path_chars'],
    [`spiffe://plant.example/${'a'.repeat(2048)}`, 'too_long'],
  ];
  for (const [id, error] of cases) {
    const r = parseSpiffeId(id);
    assert.equal(r.ok ? 'ok' : r.error, error, JSON.stringify(id.slice(0, 60)));
  }
  // Exactly 2048 bytes is allowed, one more is not.
  const base = 'spiffe://plant.example/';
  assert.ok(parseSpiffeId(base + 'a'.repeat(2048 - base.length)).ok);
  assert.equal((parseSpiffeId(base + 'a'.repeat(2049 - base.length)) as { error: string }).error, 'too_long');
});

let pki: TestPki;
before(() => {
  pki = makeTestPki();
});
after(() => pki?.cleanup());

const der = (pem: string) => new Uint8Array(new X509Certificate(pem).raw);

test('certificates made by openssl: an SVID, several URI SANs, a malformed ID, and a certificate without one', () => {
  const svid = makeSvid(pki, 'svid', ['spiffe://plant.example/agent/7']);
  assert.deepEqual(uriSans(der(svid.cert)), ['spiffe://plant.example/agent/7']);
  const v = svidOf(der(svid.cert));
  assert.equal(v.kind === 'svid' && v.id.text, 'spiffe://plant.example/agent/7');

  const two = makeSvid(pki, 'svid-two', ['spiffe://plant.example/agent/7', 'spiffe://plant.example/agent/8']);
  assert.deepEqual(svidOf(der(two.cert)), { kind: 'invalid', reason: 'svid_several_uri_sans' });
  const mixed = makeSvid(pki, 'svid-mixed', ['https://plant.example/x', 'spiffe://plant.example/agent/7']);
  assert.deepEqual(svidOf(der(mixed.cert)), { kind: 'invalid', reason: 'svid_several_uri_sans' });
  const malformed = makeSvid(pki, 'svid-bad', ['spiffe://Plant.Example/agent/7']);
  assert.deepEqual(svidOf(der(malformed.cert)), { kind: 'invalid', reason: 'svid_malformed_id' });

  const plain = makeClientCert(pki, 'plain', 'central-pam');
  assert.deepEqual(uriSans(der(plain.cert)), []);
  assert.deepEqual(svidOf(der(plain.cert)), { kind: 'none' });
  const web = makeSvid(pki, 'web-uri', ['https://plant.example/x']);
  assert.deepEqual(svidOf(der(web.cert)), { kind: 'none' }, 'a URI SAN of another scheme makes no SVID');
  // The server certificate has IP and DNS SANs, no URI.
  assert.deepEqual(uriSans(der(pki.server.cert)), []);
});

test('truncated or garbage DER reads as no URI SANs, never a throw', () => {
  const svid = der(makeSvid(pki, 'svid-cut', ['spiffe://plant.example/agent/7']).cert);
  for (let n = 0; n < svid.length; n += 7) assert.deepEqual(uriSans(svid.subarray(0, n)), []);
  assert.deepEqual(uriSans(new Uint8Array([0x30, 0x84, 0xff, 0xff, 0xff, 0xff])), []);
});
