// Pull API clients named by the SPIFFE ID of their X.509-SVID (sync.clients[].spiffe_id), over real
// mutual TLS on loopback with certificates made by openssl: the SVID gets its client's roles and no
// more; an SVID naming no client, or with two URI SANs, is refused; an SVID is never taken for a
// subject entry by its CN.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fingerprintOf, makeClientCert, makeSvid, makeTestPki, type TestPki } from './certs.ts';
import { rawRequest, startTestServer, type TestServer } from './harness.ts';
import { MemoryJournal, testSigner } from './memory-reader.ts';

const PULLER = 'spiffe://pam.example/puller';
let pki: TestPki;
let ts: TestServer;
let journal: MemoryJournal;

before(async () => {
  pki = makeTestPki();
  journal = new MemoryJournal(testSigner());
  journal.append(12);
  ts = await startTestServer(pki, journal, 50, 0, {
    clientList: [
      { name: 'central-pam', fingerprint: fingerprintOf(pki.client), roles: ['read', 'ack'] },
      { name: 'agent-puller', spiffe_id: PULLER, roles: ['read'] },
      { name: 'auditor', subject: 'CN=auditor', roles: ['read'] },
    ],
  });
});

after(async () => {
  await ts?.server.close();
  pki?.cleanup();
});

const errorCode = (json: unknown) => (json as { error?: { code?: string } }).error?.code;

test('an SVID whose SPIFFE ID a client names reads, with that client\'s roles only', async () => {
  const svid = makeSvid(pki, 'puller', [PULLER], 'anything');
  const cp = await rawRequest(pki, ts.url, 'GET', '/v1/checkpoint', undefined, {}, svid);
  assert.equal(cp.status, 200, JSON.stringify(cp.json));
  assert.equal((cp.json as { size: number }).size, 12);
  const events = await rawRequest(pki, ts.url, 'GET', '/v1/events?from=0&limit=5', undefined, {}, svid);
  assert.deepEqual((events.json as { events: { seq: number }[] }).events.map((e) => e.seq), [0, 1, 2, 3, 4]);
  const ack = await rawRequest(pki, ts.url, 'POST', '/v1/ack', JSON.stringify({ seq: 3, checkpoint_size: 12 }), {}, svid);
  assert.equal(ack.status, 403);
  assert.equal(errorCode(ack.json), 'forbidden');
  assert.deepEqual(journal.acks, [], 'nothing acknowledged');
});

test('an SVID naming no client, or with two URI SANs, is refused as unknown_client', async () => {
  for (const cert of [
    makeSvid(pki, 'stranger', ['spiffe://pam.example/other']),
    makeSvid(pki, 'two-uris', [PULLER, 'spiffe://pam.example/other']),
    makeSvid(pki, 'malformed', ['spiffe://pam.example/puller/']),
  ]) {
    const r = await rawRequest(pki, ts.url, 'GET', '/v1/checkpoint', undefined, {}, cert);
    assert.equal(r.status, 403);
    assert.equal(errorCode(r.json), 'unknown_client');
  }
});

test('an SVID is judged by its SPIFFE ID, never by a subject entry its CN matches', async () => {
  const plain = makeClientCert(pki, 'auditor', 'auditor');
  assert.equal((await rawRequest(pki, ts.url, 'GET', '/v1/checkpoint', undefined, {}, plain)).status, 200, 'the subject entry works for a plain certificate');
  const svid = makeSvid(pki, 'auditor-svid', ['spiffe://pam.example/unlisted'], 'auditor');
  const r = await rawRequest(pki, ts.url, 'GET', '/v1/checkpoint', undefined, {}, svid);
  assert.equal(r.status, 403);
  assert.equal(errorCode(r.json), 'unknown_client');
});
