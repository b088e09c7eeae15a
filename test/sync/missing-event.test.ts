// Issue 10 §2: an event deleted from the appliance's LMDB journal (with lmdb itself, as someone with the
// file would) must reach the puller as tampering naming the missing seq, never as a retryable outage, and
// never as "removed by retention" when it was not.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { isPenstockError } from '../../src/common/errors.ts';
import { pull } from '../../src/sync/puller.ts';
import { PullStore } from '../../src/sync/store.ts';
import { makeTestPki, type TestPki } from './certs.ts';
import { pullOptions, rawRequest, startTestServer, type TestServer } from './harness.ts';
import { openJournalFixture, type JournalFixture } from './journal-fixture.ts';
import { testSigningKeyPem } from './memory-reader.ts';
import { tempDir } from '../support.ts';

const MISSING = 264;
const tmp = tempDir('penstock-sync-missing-');
let pki: TestPki;
let fixture: JournalFixture;
let ts: TestServer;

before(async () => {
  pki = makeTestPki();
  const pem = testSigningKeyPem();
  const dir = join(tmp.dir, 'journal');
  const first = await openJournalFixture(dir, pem);
  await first.append(300);
  await first.close();
  // Delete one event body straight from LMDB; the tree and the signed checkpoint still count it.
  const env = openLmdb({ path: dir, maxDbs: 8 });
  const events = env.openDB<Buffer, number>({ name: 'events', encoding: 'binary' });
  assert.ok(events.getBinary(MISSING), 'the event is there before');
  assert.equal(events.removeSync(MISSING), true);
  await env.close();
  fixture = await openJournalFixture(dir, pem);
  ts = await startTestServer(pki, fixture.reader, 50);
});

after(async () => {
  await ts?.server.close();
  await fixture?.close();
  pki?.cleanup();
  tmp.cleanup();
});

test('the pull API names the missing seq with event_missing, whether it is inside a page or its first event', async () => {
  for (const from of [250, MISSING]) {
    const r = await rawRequest(pki, ts.url, 'GET', `/v1/events?from=${from}&limit=50`);
    assert.equal(r.status, 500, `from ${from}`);
    const error = (r.json as { error: { code: string; seq: number } }).error;
    assert.equal(error.code, 'event_missing', `from ${from}`);
    assert.equal(error.seq, MISSING);
  }
  const later = await rawRequest(pki, ts.url, 'GET', `/v1/events?from=${MISSING + 1}&limit=3`);
  assert.equal(later.status, 200, 'events after the missing one are still served');
});

test('the puller reports a missing event as tampering (PS_SYNC_MISMATCH, not retryable) and keeps nothing of that page', async () => {
  const out = join(tmp.dir, 'pam');
  await assert.rejects(pull(pullOptions(pki, ts.url, out, fixture.vkey, { pageSize: 50 })), (err: unknown) => {
    assert.ok(isPenstockError(err, 'PS_SYNC_MISMATCH'), String(err));
    assert.equal(err.details?.seq, MISSING);
    assert.equal(err.details?.retryable, false);
    return true;
  });
  const store = PullStore.open(out, 1000);
  try {
    assert.equal(store.cursor, 250, 'the pages before the gap are held, nothing of the page with it');
  } finally {
    store.close();
  }
  assert.equal(fixture.reader.acknowledged(), -1, 'nothing was acknowledged');
});
