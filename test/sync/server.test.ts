import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyCheckpoint } from '../../src/journal/checkpoint.ts';
import { leafHash, verifyConsistency, verifyInclusion } from '../../src/journal/merkle.ts';
import { parseIntegerQuery } from '../../src/sync/server.ts';
import { fingerprintOf, makeClientCert, makeTestPki } from './certs.ts';
import type { CertPair, TestPki } from './certs.ts';
import { centralPam, rawRequest, startTestServer } from './harness.ts';
import { until } from '../support.ts';
import type { NoteSigner } from '../../src/journal/checkpoint.ts';
import type { TestServer } from './harness.ts';
import { openJournalFixture } from './journal-fixture.ts';
import { testSigner } from './memory-reader.ts';
import type { JournalFixture } from './journal-fixture.ts';

const b = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

describe('sync server over the real journal', () => {
  let pki: TestPki;
  let work: string;
  let fixture: JournalFixture;
  let ts: TestServer;
  let witnessCert: CertPair;
  let witness: NoteSigner;
  const events = () => fixture.reader.readEvents(0, 1000).map((e) => e.bytes);
  const get = (path: string) => rawRequest(pki, ts.url, 'GET', path);
  const post = (path: string, body: string, headers?: Record<string, string>) => rawRequest(pki, ts.url, 'POST', path, body, headers);

  before(async () => {
    pki = makeTestPki();
    work = mkdtempSync(join(tmpdir(), 'penstock-sync-server-'));
    fixture = await openJournalFixture(join(work, 'journal'));
    await fixture.append(37);
    await fixture.append(20);
    witness = testSigner('witness.central-pam.example');
    witnessCert = makeClientCert(pki, 'witness', 'witness-1');
    ts = await startTestServer(pki, fixture.reader, 25, 0, {
      clientList: [centralPam(pki), { name: 'witness-1', fingerprint: fingerprintOf(witnessCert), roles: ['cosign'], witness_key: witness.vkey }],
      fold: { intervalMs: 100 },
    });
  });
  after(async () => {
    await ts.server.close();
    await fixture.close();
    rmSync(work, { recursive: true, force: true });
    pki.cleanup();
  });
  const journal = { get reader() { return fixture.reader; } };

  test('serves the latest signed checkpoint and the key', async () => {
    const r = await get('/v1/checkpoint');
    assert.equal(r.status, 200);
    const cp = r.json as { size: number; root_hash: string; note: string };
    assert.equal(cp.size, 57);
    const v = verifyCheckpoint(cp.note, fixture.vkey);
    assert.ok(v.ok);
    assert.equal(Buffer.from(v.checkpoint.rootHash).toString('base64'), cp.root_hash);
    assert.deepEqual((await get('/v1/key')).json, { vkey: fixture.vkey });
  });

  test('serves events verbatim in pages capped by the page size', async () => {
    const r = await get('/v1/events?from=10&limit=1000');
    assert.equal(r.status, 200);
    const page = r.json as { events: { seq: number; event: string }[]; next: number; tree_size: number };
    assert.equal(page.events.length, 25);
    assert.equal(page.next, 35);
    assert.equal(page.tree_size, 57);
    page.events.forEach((e, i) => {
      assert.equal(e.seq, 10 + i);
      assert.equal(e.event, events()[10 + i]);
    });
    const last = (await get('/v1/events?from=50&limit=5')).json as { events: unknown[]; next: number };
    assert.equal(last.events.length, 5);
    assert.equal(last.next, 55);
    const end = (await get('/v1/events?from=57')).json as { events: unknown[]; next: number };
    assert.deepEqual(end, { events: [], next: 57, tree_size: 57 });
  });

  test('proofs verify against the signed roots', async () => {
    const cp37 = journal.reader.checkpointFor(37)!;
    const cp57 = journal.reader.checkpointFor(57)!;
    const c = (await get('/v1/proof/consistency?from=37&to=57')).json as { proof: string[] };
    assert.ok(verifyConsistency(37, 57, b(cp37.rootHash), b(cp57.rootHash), c.proof.map(b)));
    const inc = (await get('/v1/proof/inclusion?seq=40&size=57')).json as { proof: string[] };
    const leaf = leafHash(Buffer.from(events()[40]!, 'utf8'));
    assert.ok(verifyInclusion(40, 57, leaf, inc.proof.map(b), b(cp57.rootHash)));
  });

  for (const [path, code] of [
    ['/v1/events', 'bad_parameter'],
    ['/v1/events?from=-1', 'bad_parameter'],
    ['/v1/events?from=01', 'bad_parameter'],
    ['/v1/events?from=1e3', 'bad_parameter'],
    ['/v1/events?from=0x10', 'bad_parameter'],
    ['/v1/events?from=99999999999999999', 'bad_parameter'],
    ['/v1/events?from=1&from=2', 'bad_parameter'],
    ['/v1/events?from=1&limit=0', 'bad_parameter'],
    ['/v1/events?from=1&sort=desc', 'bad_parameter'],
    ['/v1/events?from=58', 'out_of_range'],
    ['/v1/proof/consistency?from=0&to=5', 'out_of_range'],
    ['/v1/proof/consistency?from=9&to=5', 'out_of_range'],
    ['/v1/proof/consistency?from=5&to=58', 'out_of_range'],
    ['/v1/proof/consistency?from=5', 'bad_parameter'],
    ['/v1/proof/inclusion?seq=57&size=57', 'out_of_range'],
    ['/v1/proof/inclusion?seq=abc&size=57', 'bad_parameter'],
    ['/v1/checkpoint?x=1', 'bad_parameter'],
  ] as const) {
    test(`GET ${path} is refused with 400 ${code}`, async () => {
      const r = await get(path);
      assert.equal(r.status, 400);
      assert.equal((r.json as { error: { code: string } }).error.code, code);
    });
  }

  test('unknown paths and wrong methods are refused with stable codes', async () => {
    const r = await get('/v1/nothing');
    assert.equal(r.status, 404);
    assert.equal((r.json as { error: { code: string } }).error.code, 'not_found');
    const m = await rawRequest(pki, ts.url, 'DELETE', '/v1/events?from=0');
    assert.equal(m.status, 405);
    assert.equal((m.json as { error: { code: string } }).error.code, 'method_not_allowed');
    const g = await get('/v1/ack');
    assert.equal(g.status, 405);
  });

  test('ack records the client certificate CN and checks its arguments', async () => {
    const r = await post('/v1/ack', JSON.stringify({ seq: 36, checkpoint_size: 37 }));
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { acknowledged: 36 });
    assert.equal(journal.reader.acknowledged(), 36);
    assert.ok(ts.audit.some((e) => e.kind === 'acknowledged' && e.by === 'central-pam' && e.seq === 36));
    for (const [body, status, code] of [
      [JSON.stringify({ seq: 37, checkpoint_size: 37 }), 400, 'out_of_range'],
      [JSON.stringify({ seq: 40, checkpoint_size: 45 }), 400, 'out_of_range'],
      [JSON.stringify({ seq: 40 }), 400, 'bad_body'],
      [JSON.stringify({ seq: 40, checkpoint_size: 57, extra: 1 }), 400, 'bad_body'],
      [JSON.stringify({ seq: -1, checkpoint_size: 57 }), 400, 'bad_body'],
      [JSON.stringify({ seq: 40.5, checkpoint_size: 57 }), 400, 'bad_body'],
      ['{not json', 400, 'bad_body'],
      [JSON.stringify({ seq: 40, checkpoint_size: 57, pad: 'x'.repeat(20_000) }), 413, 'body_too_large'],
    ] as const) {
      const res = await post('/v1/ack', body);
      assert.equal(res.status, status, body.slice(0, 60));
      assert.equal((res.json as { error: { code: string } }).error.code, code);
    }
    const wrongType = await post('/v1/ack', JSON.stringify({ seq: 40, checkpoint_size: 57 }), { 'content-type': 'text/plain' });
    assert.equal(wrongType.status, 415);
    assert.equal(journal.reader.acknowledged(), 36, 'no refused ack reached the journal');
  });

  test('cosign stores a witness\'s cosignature of a checkpoint the journal issued, once, and rejects anything else', async () => {
    const cosign = (note: string, client = witnessCert) => rawRequest(pki, ts.url, 'POST', '/v1/cosign', JSON.stringify({ note }), {}, client);
    const note = journal.reader.checkpointFor(57)!.note;
    const cosignedBy = (signer: NoteSigner) => note + signer.sign(note.slice(0, note.indexOf('\n\n') + 1)).split('\n\n')[1]!;
    const cosigned = cosignedBy(witness);
    const r = await cosign(cosigned);
    assert.equal(r.status, 200);
    assert.deepEqual(fixture.journal.cosignatures(57), [cosigned]);
    assert.ok(ts.audit.some((e) => e.kind === 'cosigned' && e.size === 57 && e.by === 'witness-1' && e.witness === 'witness.central-pam.example'));
    const again = await cosign(cosigned);
    assert.equal(again.status, 409);
    assert.equal((again.json as { error: { code: string } }).error.code, 'already_cosigned');
    const forged = testSigner(fixture.origin).checkpoint(57, new Uint8Array(32));
    const otherWitness = cosignedBy(testSigner('witness.central-pam.example'));
    const unconfigured = cosignedBy(testSigner('witness.somebody-else.example'));
    for (const bad of [forged, 'not a note', note, otherWitness, unconfigured]) {
      const res = await cosign(bad);
      assert.equal(res.status, 400, bad.slice(0, 40));
      assert.equal((res.json as { error: { code: string } }).error.code, 'rejected');
    }
    const notWitness = await post('/v1/cosign', JSON.stringify({ note: cosigned }));
    assert.equal(notWitness.status, 403);
    assert.equal((notWitness.json as { error: { code: string } }).error.code, 'forbidden');
    assert.deepEqual(fixture.journal.cosignatures(57), [cosigned]);
  });

  test('a witness posting 200 different cosigned notes of one checkpoint stores one; its other roles are refused', async () => {
    const note = journal.reader.checkpointFor(37)!.note;
    const body = note.slice(0, note.indexOf('\n\n') + 1);
    const line = (signer: NoteSigner) => signer.sign(body).split('\n\n')[1]!;
    const cosigned = note + line(witness);
    // Each note differs (one more signature line by a throwaway key): byte-for-byte dedupe cannot help.
    const notes = Array.from({ length: 200 }, (_, i) => (i === 0 ? cosigned : cosigned + line(testSigner(`junk-${i}`))));
    const statuses = await Promise.all(notes.map((n) =>
      rawRequest(pki, ts.url, 'POST', '/v1/cosign', JSON.stringify({ note: n }), {}, witnessCert).then((r) => r.status)));
    assert.equal(statuses.filter((s) => s === 200).length, 1);
    assert.equal(statuses.filter((s) => s === 409).length, 199);
    assert.deepEqual(fixture.journal.cosignatures(37), [cosigned]);
    assert.equal(ts.audit.filter((e) => e.kind === 'cosigned' && e.size === 37).length, 1);
    const ack = await rawRequest(pki, ts.url, 'POST', '/v1/ack', JSON.stringify({ seq: 36, checkpoint_size: 37 }), {}, witnessCert);
    assert.equal(ack.status, 403);
    assert.equal((ack.json as { error: { code: string } }).error.code, 'forbidden');
    const read = await rawRequest(pki, ts.url, 'GET', '/v1/events?from=0', undefined, {}, witnessCert);
    assert.equal(read.status, 403);
  });

  test('events removed by retention after acknowledgement are not_found, later ones are served', async () => {
    await post('/v1/ack', JSON.stringify({ seq: 36, checkpoint_size: 37 }));
    fixture.journal.prune({ maxBytes: 0 });
    assert.equal(fixture.journal.firstRetained(), 37);
    const gone = await get('/v1/events?from=10');
    assert.equal(gone.status, 404);
    assert.equal((gone.json as { error: { code: string } }).error.code, 'not_found');
    const kept = (await get('/v1/events?from=37&limit=3')).json as { events: { seq: number }[] };
    assert.deepEqual(kept.events.map((e) => e.seq), [37, 38, 39]);
  });

  test('a client certificate from another CA is refused at the TLS handshake', async () => {
    const before = ts.audit.length;
    await assert.rejects(rawRequest(pki, ts.url, 'GET', '/v1/checkpoint', undefined, {}, pki.untrustedClient), (err: NodeJS.ErrnoException) => {
      assert.ok(err.code === 'ECONNRESET' || /^ERR_SSL_/.test(err.code ?? ''), `unexpected ${err.code}`);
      return true;
    });
    // The server saw a handshake failure, never a request.
    // Reported at once, or folded into the source's next report when it was refused before.
    await until(() => ts.audit.slice(before).some((e) => e.kind === 'auth_refused'
      && (e.reason === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || (e.reasons?.UNABLE_TO_VERIFY_LEAF_SIGNATURE ?? 0) > 0)), 'the refused handshake to be reported');
    assert.ok(!ts.audit.slice(before).some((e) => e.kind === 'request_refused'), 'no request was served to it');
  });

  test('a client without a certificate is refused at the TLS handshake', async () => {
    await assert.rejects(new Promise((resolve, reject) => {
      import('node:https').then(({ request }) => {
        const req = request(new URL('/v1/checkpoint', ts.url), { ca: pki.ca.cert, agent: false }, resolve);
        req.on('error', reject);
        req.end();
      }, reject);
    }));
  });
});

test('a connection that says nothing is closed by the idle time-out', { timeout: 10_000 }, async () => {
  const pki = makeTestPki();
  const { startSyncServer } = await import('../../src/sync/server.ts');
  const { silentLog } = await import('./harness.ts');
  const { connect } = await import('node:tls');
  const { MemoryJournal, testSigner } = await import('./memory-reader.ts');
  const server = await startSyncServer({
    host: '127.0.0.1', port: 0, journal: new MemoryJournal(testSigner()), pageSize: 10, log: silentLog, clients: () => [],
    tls: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.ca.cert },
    timeouts: { idleMs: 100 },
  });
  try {
    const socket = connect({ host: '127.0.0.1', port: server.address().port, cert: pki.client.cert, key: pki.client.key, ca: pki.ca.cert });
    await new Promise<void>((resolve, reject) => {
      socket.on('secureConnect', () => {});
      socket.on('error', reject);
      socket.on('close', () => resolve()); // the test times out if the server never closes it
    });
  } finally {
    await server.close();
    pki.cleanup();
  }
});

test('an internal failure is a 500 with a fixed message: nothing of the error reaches the peer', async () => {
  const pki = makeTestPki();
  const { MemoryJournal, testSigner } = await import('./memory-reader.ts');
  const j = new MemoryJournal(testSigner());
  j.append(5);
  const broken = new Proxy(j, {
    get(target, prop, receiver) {
      if (prop === 'consistencyProof') return () => { throw new Error('lmdb: /var/lib/penstock/journal/data.mdb: EIO secret-detail'); };
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const ts = await startTestServer(pki, broken, 10);
  try {
    const r = await rawRequest(pki, ts.url, 'GET', '/v1/proof/consistency?from=2&to=5');
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, { error: { code: 'internal', message: 'internal error' } });
    assert.ok(ts.audit.some((e) => e.kind === 'request_refused' && e.status === 500 && e.path === '/v1/proof/consistency'));
  } finally {
    await ts.server.close();
    pki.cleanup();
  }
});

test('parseIntegerQuery accepts exactly the allowlisted decimal parameters', () => {
  assert.deepEqual(parseIntegerQuery(new URLSearchParams('from=0&limit=10'), ['from'], ['limit']), { from: 0, limit: 10 });
  assert.deepEqual(parseIntegerQuery(new URLSearchParams('from=9007199254740991'), ['from']), { from: 9007199254740991 });
  for (const q of ['from=', 'from=+1', 'from= 1', 'from=1.0', 'from=9007199254740992', 'limit=1', 'from=1&x=']) {
    assert.throws(() => parseIntegerQuery(new URLSearchParams(q), ['from'], ['limit']), (e: { wireCode?: string }) => e.wireCode === 'bad_parameter', q);
  }
});
