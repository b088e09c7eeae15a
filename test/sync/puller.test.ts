import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPenstockError } from '../../src/common/errors.ts';
import type { PenstockError } from '../../src/common/errors.ts';
import { verifyCheckpoint } from '../../src/journal/checkpoint.ts';
import { pull, runPullCommand } from '../../src/sync/puller.ts';
import type { JournalReaderLike } from '../../src/sync/types.ts';
import { makeTestPki } from './certs.ts';
import type { TestPki } from './certs.ts';
import { pullOptions, startRewritingProxy, startTestServer } from './harness.ts';
import type { TestServer } from './harness.ts';
import { openJournalFixture } from './journal-fixture.ts';
import type { JournalFixture } from './journal-fixture.ts';
import { MemoryJournal, tamperingReader, testSigner } from './memory-reader.ts';

const NODE = process.execPath;
const EVENTS_PER_FILE = 40;

/** All events held in outDir, in file order. */
function heldEvents(outDir: string): string[] {
  return readdirSync(outDir).filter((n) => /^events-\d+\.jsonl$/.test(n)).sort()
    .flatMap((n) => readFileSync(join(outDir, n), 'utf8').split('\n').slice(0, -1));
}

function expectCode(code: PenstockError['code'], details: Record<string, unknown> = {}) {
  return (err: unknown) => {
    assert.ok(isPenstockError(err, code), `expected ${code}, got ${String(err)}`);
    for (const [k, v] of Object.entries(details)) assert.equal(err.details?.[k], v, `details.${k}`);
    return true;
  };
}

describe('puller against the journal over mutual TLS', () => {
  let pki: TestPki;
  let work: string;
  const fixtures: JournalFixture[] = [];
  const servers: TestServer[] = [];
  const proxies: { close(): Promise<void> }[] = [];

  before(() => {
    pki = makeTestPki();
    work = mkdtempSync(join(tmpdir(), 'penstock-pull-'));
  });
  after(async () => {
    for (const p of proxies) await p.close();
    for (const s of servers) await s.server.close();
    for (const f of fixtures) await f.close();
    rmSync(work, { recursive: true, force: true });
    pki.cleanup();
  });

  async function journal(name: string, keyPem?: string): Promise<JournalFixture> {
    const f = await openJournalFixture(join(work, `journal-${name}`), keyPem);
    fixtures.push(f);
    return f;
  }
  async function serve(reader: JournalReaderLike, pageSize = 25, port = 0): Promise<TestServer> {
    const s = await startTestServer(pki, reader, pageSize, port);
    servers.push(s);
    return s;
  }
  const out = (name: string) => join(work, `out-${name}`);

  test('pulls every event exactly once, verifies, stores checkpoints and acknowledges', async () => {
    const j = await journal('a');
    await j.append(130);
    const s = await serve(j.reader);
    const dir = out('a');
    const opts = pullOptions(pki, s.url, dir, j.vkey, { pageSize: 20, eventsPerFile: EVENTS_PER_FILE });
    const first = await pull(opts);
    assert.equal(first.pulled, 130);
    assert.equal(first.cursor, 130);
    assert.equal(first.complete, true);
    assert.equal(first.treeSize, 130);
    assert.ok(verifyCheckpoint(first.checkpoint.note, j.vkey).ok);
    assert.deepEqual(heldEvents(dir), j.reader.readEvents(0, 130).map((e) => e.bytes));
    assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.jsonl')), ['events-000001.jsonl', 'events-000002.jsonl', 'events-000003.jsonl', 'events-000004.jsonl']);
    assert.equal(j.reader.acknowledged(), 129);
    assert.equal(first.acknowledged, 129);
    assert.ok(s.audit.some((e) => e.kind === 'acknowledged' && e.by === 'central-pam' && e.seq === 129 && e.checkpointSize === 130));

    // Nothing new: nothing pulled, nothing duplicated.
    assert.equal((await pull(opts)).pulled, 0);
    // More events: consistency with the held checkpoint is proven, only the new ones come.
    await j.append(45);
    const second = await pull(opts);
    assert.equal(second.pulled, 45);
    assert.deepEqual(heldEvents(dir), j.reader.readEvents(0, 175).map((e) => e.bytes));
    assert.deepEqual(readdirSync(join(dir, 'checkpoints')), ['000000000130.note', '000000000175.note']);
    assert.equal(j.reader.acknowledged(), 174);
    // The pulled files are an export an auditor can check offline with the journal's verifier.
    assert.equal(j.verifyExport(heldEvents(dir), second.checkpoint.note), true);
    const altered = heldEvents(dir);
    altered[99] = altered[99]!.replace('plant-operator', 'plant-0perator');
    assert.notEqual(j.verifyExport(altered, second.checkpoint.note), true);
  });

  test('a pull stopped between pages resumes where it stopped', async () => {
    const j = await journal('b');
    await j.append(100);
    const s = await serve(j.reader);
    const dir = out('b');
    const opts = pullOptions(pki, s.url, dir, j.vkey, { pageSize: 15, eventsPerFile: EVENTS_PER_FILE });
    const partial = await pull({ ...opts, maxPages: 3 });
    assert.equal(partial.pulled, 45);
    assert.equal(partial.complete, false);
    assert.equal(j.reader.acknowledged(), 44, 'only what is held is acknowledged');
    await j.append(10);
    const rest = await pull(opts);
    assert.equal(rest.pulled, 65);
    assert.deepEqual(heldEvents(dir), j.reader.readEvents(0, 110).map((e) => e.bytes));
  });

  test('a puller SIGKILLed at random moments ends with every event exactly once', async () => {
    const j = await journal('c');
    await j.append(300);
    const s = await serve(j.reader, 10);
    const dir = out('c');
    const opts = pullOptions(pki, s.url, dir, j.vkey, { pageSize: 7, eventsPerFile: EVENTS_PER_FILE });
    const { log: _log, ...childOpts } = opts;
    let kills = 0;
    for (let round = 0; round < 12; round++) {
      const child = spawn(NODE, [join(import.meta.dirname, 'pull-child.ts'), JSON.stringify(childOpts)], { stdio: ['ignore', 'pipe', 'pipe'] });
      const target = 1 + Math.floor(Math.random() * 4);
      let pages = 0;
      let done = false;
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        pages += (chunk.match(/^page /gm) ?? []).length;
        if (chunk.includes('done ')) done = true;
        if (pages >= target && !done) child.kill('SIGKILL');
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
      const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.on('exit', (c, sig) => r([c, sig])));
      if (signal === 'SIGKILL') kills++;
      else assert.equal(code, 0, stderr);
      if (done) break;
    }
    assert.ok(kills >= 3, `killed ${kills} times`);
    const final = await pull(opts);
    assert.equal(final.cursor, 300);
    assert.deepEqual(heldEvents(dir), j.reader.readEvents(0, 300).map((e) => e.bytes));
  });

  test('the appliance disappearing mid-pull is a retryable error; the next pull completes', async () => {
    const j = await journal('d');
    await j.append(90);
    const s = await serve(j.reader);
    const port = Number(new URL(s.url).port);
    const dir = out('d');
    const opts = pullOptions(pki, s.url, dir, j.vkey, { pageSize: 20, eventsPerFile: EVENTS_PER_FILE });
    let closing: Promise<void> | undefined;
    await assert.rejects(pull({ ...opts, onPage: (p) => { if (p.cursor === 40) closing ??= s.server.close(); } }),
      (err) => expectCode('PS_SYNC_UNAVAILABLE', { retryable: true })(err));
    await closing;
    // Up again on the same address.
    await serve(j.reader, 25, port);
    const r = await pull(opts);
    assert.equal(r.pulled, 50);
    assert.deepEqual(heldEvents(dir), j.reader.readEvents(0, 90).map((e) => e.bytes));
  });

  test('an event changed in transit is refused, naming its seq; nothing of its page is kept', async () => {
    const j = await journal('e');
    await j.append(120);
    const s = await serve(tamperingReader(j.reader, 73));
    const dir = out('e');
    const opts = pullOptions(pki, s.url, dir, j.vkey, { pageSize: 20, eventsPerFile: EVENTS_PER_FILE });
    await assert.rejects(pull(opts), expectCode('PS_SYNC_MISMATCH', { seq: 73, checkpointSize: 120 }));
    assert.deepEqual(heldEvents(dir), j.reader.readEvents(0, 60).map((e) => e.bytes));
  });

  test('events beyond the latest checkpoint wait for the next checkpoint', async () => {
    const j = new MemoryJournal(testSigner());
    j.append(50);
    j.appendUnsigned(10);
    const s = await serve(j);
    const dir = out('m');
    const opts = pullOptions(pki, s.url, dir, j.publicKeyVkey(), { pageSize: 40 });
    const r = await pull(opts);
    assert.deepEqual([r.pulled, r.cursor, r.treeSize, r.complete], [50, 50, 50, true]);
    j.checkpoint();
    assert.equal((await pull(opts)).pulled, 10);
    assert.deepEqual(heldEvents(dir), j.events);
  });

  test('a page with a gap, a repeat or a line break is refused, naming the seq', async () => {
    const j = new MemoryJournal(testSigner());
    j.append(30);
    const s = await serve(j);
    type Page = { events: { seq: number; event: string }[] };
    const lying = async (edit: (p: Page) => void) => {
      const proxy = await startRewritingProxy(pki, s.url, (path, json) => {
        if (path.startsWith('/v1/events')) edit(json as Page);
        return json;
      });
      proxies.push(proxy);
      return proxy.url;
    };
    const gap = await lying((p) => p.events.splice(12, 1));
    await assert.rejects(pull(pullOptions(pki, gap, out('n1'), j.publicKeyVkey())), expectCode('PS_SYNC_MISMATCH', { seq: 12, got: 13 }));
    const repeat = await lying((p) => p.events.unshift(p.events[0]!));
    await assert.rejects(pull(pullOptions(pki, repeat, out('n2'), j.publicKeyVkey())), expectCode('PS_SYNC_MISMATCH', { seq: 1, got: 0 }));
    const newline = await lying((p) => { p.events[5]!.event += '\n{}'; });
    await assert.rejects(pull(pullOptions(pki, newline, out('n3'), j.publicKeyVkey())), expectCode('PS_SYNC_BAD_RESPONSE', { seq: 5 }));
    const flipped = await lying((p) => { for (const e of p.events) if (e.seq === 17) e.event = e.event.replace('ünïcode', 'unicode'); });
    await assert.rejects(pull(pullOptions(pki, flipped, out('n4'), j.publicKeyVkey())), expectCode('PS_SYNC_MISMATCH', { seq: 17 }));
    const malformed = await lying((p) => { (p as { events: unknown }).events = 'nope'; });
    await assert.rejects(pull(pullOptions(pki, malformed, out('n5'), j.publicKeyVkey())), expectCode('PS_SYNC_BAD_RESPONSE'));
    for (const n of ['n1', 'n2', 'n3', 'n4', 'n5']) assert.deepEqual(heldEvents(out(n)), []);
  });

  test('a checkpoint signed by another key is refused', async () => {
    const j = await journal('f');
    await j.append(10);
    const impostor = new MemoryJournal(testSigner(j.origin));
    impostor.append(10);
    const s = await serve(impostor);
    const dir = out('f');
    await assert.rejects(pull(pullOptions(pki, s.url, dir, j.vkey)), expectCode('PS_SYNC_BAD_SIGNATURE', { size: 10 }));
    assert.deepEqual(heldEvents(dir), []);
  });

  test('a fork (same key, other events) and a rollback are refused, naming the sizes', async () => {
    const keyPem = (await import('./memory-reader.ts')).testSigningKeyPem();
    const honest = await journal('g', keyPem);
    const forked = await journal('h', keyPem);
    await honest.append(50);
    await forked.append(30, 'other');
    await forked.append(40, 'other');
    const dir = out('g');
    const sHonest = await serve(honest.reader);
    await pull(pullOptions(pki, sHonest.url, dir, honest.vkey));
    const held = heldEvents(dir);
    assert.equal(held.length, 50);

    const sFork = await serve(forked.reader);
    await assert.rejects(pull(pullOptions(pki, sFork.url, dir, honest.vkey)), expectCode('PS_SYNC_FORK', { heldSize: 50, servedSize: 70 }));
    // A smaller tree than held.
    const small = await journal('i', keyPem);
    await small.append(20);
    const sSmall = await serve(small.reader);
    await assert.rejects(pull(pullOptions(pki, sSmall.url, dir, honest.vkey)), expectCode('PS_SYNC_ROLLBACK', { heldSize: 50, servedSize: 20 }));
    // Same size, other root.
    const same = new MemoryJournal(honest.signer());
    same.append(50, 'other');
    const sSame = await serve(same);
    await assert.rejects(pull(pullOptions(pki, sSame.url, dir, honest.vkey)), expectCode('PS_SYNC_FORK', { heldSize: 50, servedSize: 50 }));
    assert.deepEqual(heldEvents(dir), held, 'refusals change nothing held');
    // The honest appliance still works.
    await honest.append(5);
    assert.equal((await pull(pullOptions(pki, sHonest.url, dir, honest.vkey))).pulled, 5);
  });

  test('runPullCommand reads the vkey from a file and refuses a malformed one', async () => {
    const j = await journal('k');
    await j.append(12);
    const s = await serve(j.reader);
    const vkeyFile = join(work, 'appliance.vkey');
    (await import('node:fs')).writeFileSync(vkeyFile, `${j.vkey}\n`);
    const args = { url: s.url, cert: pki.client.certPath, key: pki.client.keyPath, ca: pki.ca.certPath, out: out('k') };
    const r = await runPullCommand({ ...args, vkey: vkeyFile });
    assert.equal(r.pulled, 12);
    await assert.rejects(runPullCommand({ ...args, vkey: 'gw+00000000+AAAA' }), expectCode('PS_CONFIG_INVALID'));
  });

  test('TLS trust failures: our client certificate refused by the appliance, the appliance\'s not trusted by us', async () => {
    const j = await journal('l');
    await j.append(3);
    const s = await serve(j.reader);
    const opts = { ...pullOptions(pki, s.url, out('l'), j.vkey), cert: pki.untrustedClient.certPath, key: pki.untrustedClient.keyPath };
    // The server just closes the connection: to the client a reset, retryable, with a hint.
    await assert.rejects(pull(opts), expectCode('PS_SYNC_UNAVAILABLE', { cause: 'ECONNRESET', retryable: true }));
    assert.ok(s.audit.some((e) => e.kind === 'auth_refused' && e.reason === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'));
    // A puller that does not trust the appliance's server certificate stops, not retryable.
    const wrongCa = { ...pullOptions(pki, s.url, out('l2'), j.vkey), ca: pki.otherCa.certPath };
    await assert.rejects(pull(wrongCa), expectCode('PS_SYNC_TLS', { retryable: false }));
    assert.equal(j.reader.acknowledged(), -1);
  });
});
