// Who may do what on the pull API (sync.clients), what a refusal costs (folded per source), and which
// TLS suites the server accepts — over the real LMDB journal and real TLS on loopback.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { RefusalFold, type FoldedRefusal } from '../../src/sync/refusal-fold.ts';
import { sourceKey } from '../../src/sync/sources.ts';
import { PerKeyLimit } from '../../src/common/per-key-limit.ts';
import { fingerprintOf, makeClientCert, makeRsaServerCert, makeTestPki, type CertPair, type TestPki } from './certs.ts';
import { centralPam, rawRequest, startTestServer, type TestServer } from './harness.ts';
import { openJournalFixture, type JournalFixture } from './journal-fixture.ts';
import { MemoryJournal, testSigner } from './memory-reader.ts';
import { tempDir, until } from '../support.ts';

const code = (r: { json: unknown }) => (r.json as { error?: { code: string } }).error?.code;

describe('sync.clients over the real journal', () => {
  const tmp = tempDir('penstock-sync-access-');
  let pki: TestPki;
  let auditor: CertPair;
  let stranger: CertPair;
  let fixture: JournalFixture;
  let ts: TestServer;

  before(async () => {
    pki = makeTestPki();
    auditor = makeClientCert(pki, 'auditor', 'auditor');
    stranger = makeClientCert(pki, 'stranger', 'stranger');
    fixture = await openJournalFixture(join(tmp.dir, 'journal'));
    await fixture.append(40);
    ts = await startTestServer(pki, fixture.reader, 50, 0, {
      clientList: [centralPam(pki), { name: 'auditor', subject: 'CN=auditor', roles: ['read'] }],
      fold: { intervalMs: 100 },
    });
  });
  after(async () => {
    await ts.server.close();
    await fixture.close();
    pki.cleanup();
    tmp.cleanup();
  });

  test('a read-only client reads but its ack is refused (403 forbidden), so retention removes nothing', async () => {
    const page = await rawRequest(pki, ts.url, 'GET', '/v1/events?from=0&limit=5', undefined, {}, auditor);
    assert.equal(page.status, 200);
    const ack = await rawRequest(pki, ts.url, 'POST', '/v1/ack', JSON.stringify({ seq: 39, checkpoint_size: 40 }), {}, auditor);
    assert.equal(ack.status, 403);
    assert.equal(code(ack), 'forbidden');
    assert.equal(fixture.journal.acknowledged(), -1);
    const pruned = fixture.journal.prune({ maxBytes: 0 });
    assert.equal(pruned.removed, 0, 'retention removed nothing');
    assert.equal(fixture.journal.firstRetained(), 0);
    assert.deepEqual(fixture.reader.readEvents(0, 1).map((e) => e.seq), [0]);
    await until(() => ts.audit.some((e) => e.kind === 'auth_refused' && (e.reason === 'forbidden_ack' || (e.reasons?.forbidden_ack ?? 0) > 0) && e.client === 'auditor'), 'the refusal to be reported');
  });

  test('an unlisted certificate under client_ca is refused on every endpoint with 403 unknown_client', async () => {
    for (const [method, path, body] of [['GET', '/v1/checkpoint'], ['GET', '/v1/events?from=0'], ['GET', '/v1/key'], ['POST', '/v1/ack', JSON.stringify({ seq: 1, checkpoint_size: 40 })], ['GET', '/v1/nothing']] as const) {
      const r = await rawRequest(pki, ts.url, method, path, body, {}, stranger);
      assert.equal(r.status, 403, path);
      assert.equal(code(r), 'unknown_client', path);
    }
    assert.equal(fixture.journal.acknowledged(), -1);
  });

  test('a subject entry must match the attributes of the certificate exactly: an entry naming one more does not match', async () => {
    const rules = [{ name: 'auditor-org', subject: 'CN=auditor, O=Plant', roles: ['read' as const] }];
    const strict = await startTestServer(pki, fixture.reader, 50, 0, { clientList: rules });
    try {
      const r = await rawRequest(pki, strict.url, 'GET', '/v1/checkpoint', undefined, {}, auditor);
      assert.equal(code(r), 'unknown_client');
    } finally {
      await strict.server.close();
    }
  });

  test('central PAM acknowledges, and only then retention may remove what it acknowledged', async () => {
    const ack = await rawRequest(pki, ts.url, 'POST', '/v1/ack', JSON.stringify({ seq: 19, checkpoint_size: 40 }));
    assert.equal(ack.status, 200);
    assert.equal(fixture.journal.prune({ maxBytes: 0 }).removed, 20);
    assert.ok(ts.audit.some((e) => e.kind === 'acknowledged' && e.by === 'central-pam' && e.seq === 19));
    // Repeating (or going back on) an ack changes nothing and is not journaled again.
    for (const seq of [19, 19, 10, 19]) {
      const again = await rawRequest(pki, ts.url, 'POST', '/v1/ack', JSON.stringify({ seq, checkpoint_size: 40 }));
      assert.deepEqual(again.json, { acknowledged: 19 });
    }
    assert.equal(ts.audit.filter((e) => e.kind === 'acknowledged').length, 1);
  });
});

describe('TLS suites with an RSA server certificate', () => {
  let pki: TestPki;
  let ts: TestServer;
  before(async () => {
    pki = makeTestPki();
    const rsa = makeRsaServerCert(pki);
    const j = new MemoryJournal(testSigner());
    j.append(3);
    ts = await startTestServer(pki, j, 10, 0, { tls: { cert: rsa.cert, key: rsa.key, clientCa: pki.ca.cert } });
  });
  after(async () => {
    await ts.server.close();
    pki.cleanup();
  });

  const handshake = (cipher: string) => new Promise<string>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: ts.server.address().port, ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key, servername: 'localhost', maxVersion: 'TLSv1.2', ciphers: cipher }, () => {
      const name = s.getCipher().standardName;
      s.end();
      resolve(name);
    });
    s.on('error', reject);
  });

  test('static-RSA key exchange is refused, with CBC or with GCM; ECDHE-RSA with GCM is accepted', async () => {
    assert.equal(await handshake('ECDHE-RSA-AES128-GCM-SHA256'), 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256');
    for (const cipher of ['AES128-SHA', 'AES128-GCM-SHA256', 'AES256-SHA256', 'ECDHE-RSA-AES128-SHA']) {
      await assert.rejects(handshake(cipher), /handshake failure|ERR_SSL/i, cipher);
    }
  });
});

test('sources: IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64', () => {
  assert.equal(sourceKey('127.0.0.2'), '127.0.0.2');
  assert.equal(sourceKey('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8:1:2::ffff'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(sourceKey('::1'), '0:0:0:0::/64');
  assert.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(sourceKey(undefined), '?');
  const c = new PerKeyLimit<string>(2);
  assert.equal(c.admit('a'), true);
  assert.equal(c.admit('a'), true);
  assert.equal(c.admit('a'), false, 'the third from one source');
  assert.equal(c.admit('b'), true, 'another source is not affected');
  c.release('a');
  assert.equal(c.admit('a'), true);
});

test('refusal fold: one report at once, one aggregate per interval, bounded sources', async () => {
  const reports: FoldedRefusal[] = [];
  const fold = new RefusalFold({ intervalMs: 50, maxSources: 3, report: (r) => reports.push(r) });
  try {
    for (let i = 0; i < 300; i++) fold.refuse('10.0.0.1', i % 3 === 0 ? 'ECONNRESET' : 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    assert.deepEqual(reports, [{ remote: '10.0.0.1', reason: 'ECONNRESET', folded: 0 }]);
    await until(() => reports.length === 2 || undefined, 'the aggregate');
    assert.deepEqual(reports[1], { remote: '10.0.0.1', reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', folded: 299, reasons: { ECONNRESET: 99, UNABLE_TO_VERIFY_LEAF_SIGNATURE: 200 } });
    // Still flooding in the next interval: no report at once, one aggregate.
    for (let i = 0; i < 50; i++) fold.refuse('10.0.0.1', 'ECONNRESET');
    assert.equal(reports.length, 2);
    await until(() => reports.length === 3 || undefined, 'the next aggregate');
    assert.equal(reports[2]!.folded, 50);
    // Many sources: three tracked, the rest share one bucket.
    reports.length = 0;
    fold.flush(); // what the interval timer does: an interval with nothing from 10.0.0.1, which is forgotten
    for (let i = 0; i < 100; i++) fold.refuse(`10.1.0.${i}`, 'ECONNRESET');
    assert.equal(reports.length, 3);
    fold.flush();
    assert.deepEqual(reports.at(-1), { remote: 'other', reason: 'ECONNRESET', folded: 97, reasons: { ECONNRESET: 97 } });
  } finally {
    fold.close();
  }
});

test('connections over the per-source cap and over the server-wide cap are closed and reported, folded', async () => {
  const pki = makeTestPki();
  const j = new MemoryJournal(testSigner());
  const ts = await startTestServer(pki, j, 10, 0, { maxConnections: 4, maxConnectionsPerSource: 2, fold: { intervalMs: 60_000 } });
  const { connect } = await import('node:net');
  const sockets: { socket: import('node:net').Socket; closed: boolean }[] = [];
  const open = (localAddress: string) => new Promise<void>((resolve) => {
    const entry = { socket: connect({ host: '127.0.0.1', port: ts.server.address().port, localAddress }), closed: false };
    sockets.push(entry);
    entry.socket.on('error', () => {});
    entry.socket.once('close', () => (entry.closed = true));
    entry.socket.once('connect', () => resolve());
  });
  try {
    for (const from of ['127.0.0.2', '127.0.0.2', '127.0.0.2']) await open(from);
    await until(() => sockets[2]!.closed, 'the third connection from 127.0.0.2 to be closed');
    for (const from of ['127.0.0.3', '127.0.0.3', '127.0.0.4']) await open(from);
    await until(() => sockets[5]!.closed, 'the fifth connection in all to be closed');
    assert.deepEqual(sockets.map((e) => e.closed), [false, false, true, false, false, true], 'the others stay open');
    const reasons = ts.audit.flatMap((e) => (e.kind === 'auth_refused' ? [`${e.remote} ${e.reason}`] : []));
    assert.deepEqual(reasons, ['127.0.0.2 too_many_connections', '127.0.0.4 server_full']);
  } finally {
    for (const e of sockets) e.socket.destroy();
    await ts.server.close();
    pki.cleanup();
  }
});

test('a connection that never starts its handshake is closed after 3 s and reported', { timeout: 30_000 }, async () => {
  const pki = makeTestPki();
  const ts = await startTestServer(pki, new MemoryJournal(testSigner()), 10);
  const { connect } = await import('node:net');
  try {
    const started = Date.now();
    const s = connect(ts.server.address().port, '127.0.0.1');
    s.on('error', () => {});
    await new Promise((resolve) => s.once('close', resolve));
    const held = Date.now() - started;
    assert.ok(held >= 2_500 && held < 6_000, `closed after ${held} ms`);
    await until(() => ts.audit.some((e) => e.kind === 'auth_refused' && e.reason === 'ERR_TLS_HANDSHAKE_TIMEOUT'), 'the time-out to be reported');
  } finally {
    await ts.server.close();
    pki.cleanup();
  }
});
