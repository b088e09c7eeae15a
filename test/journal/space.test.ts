// Issue 10, item "journal verify leaks an LMDB read transaction": a verify left its per-level range scans
// unfinished, their read transaction stayed open until restart, and LMDB could never reuse a freed page:
// after one verify every event grew data.mdb by ~25 KB instead of ~1 KB. Checked on the file on disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { adminCommands } from '../../src/admin/commands.ts';
import { journalCommands } from '../../src/admin/journal-commands.ts';
import type { LmdbJournal } from '../../src/journal/journal.ts';
import type { JournalHealth } from '../../src/journal/types.ts';
import { makeContext, runCtl, startHarness } from '../admin/fixture.ts';
import { until } from '../support.ts';
import { openJournal, tempDir } from './helpers.ts';

const N = 1200;

/** Appends n events, a few per commit (as Modbus writes arrive), returns data.mdb's growth in bytes. */
async function growthOf(j: LmdbJournal, dir: string, n: number): Promise<number> {
  const before = statSync(join(dir, 'data.mdb')).size;
  for (let i = 0; i < n; i += 4) {
    await Promise.all([0, 1, 2, 3].map((k) => j.append({ event: 'action.allowed', session: `s-${i + k}`, detail: { i: i + k, pad: 'x'.repeat(600) } })));
  }
  return statSync(join(dir, 'data.mdb')).size - before;
}

for (const how of ['verifyAll (on the calling thread)', 'verify (worker thread)'] as const) {
  test(`after ${how}, N more events grow the data file by about what N events take`, async (t) => {
    const { dir, cleanup } = tempDir();
    t.after(cleanup);
    const j = await openJournal(dir);
    t.after(() => j.close());
    await growthOf(j, dir, N); // warm up: the file reaches its working set of pages
    const baseline = await growthOf(j, dir, N);
    const result = how.startsWith('verifyAll') ? j.verifyAll() : await j.verify();
    assert.deepEqual(result, { ok: true, size: 2 * N });
    const after = await growthOf(j, dir, N);
    // Leaked, every commit takes fresh pages: ~20x the baseline. Allow noise, not that.
    assert.ok(after <= 2 * baseline + 256 * 1024, `after the verify ${N} events grew data.mdb by ${after} bytes, without one by ${baseline}`);
    // Status samples the file at most once a second: it catches up with the file on disk.
    const h = await until(() => {
      const now = j.health();
      return now.fileBytes === statSync(join(dir, 'data.mdb')).size ? now : undefined;
    }, 'status to report the real file size');
    assert.ok(h.lmdb.readers <= 1, `${h.lmdb.readers} read transactions open: only this thread's current one may be`);
    assert.ok(h.usedBytes <= h.fileBytes && h.lmdb.freePages >= 0);
  });
}

test('a verify that stops at a bad spot also ends its scans', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(dir, { checkpointEvery: 10_000 });
  t.after(() => j.close());
  await growthOf(j, dir, N);
  const baseline = await growthOf(j, dir, N);
  // A kept checkpoint from a longer journal: verify stops early (rolled back), by a code.
  const r = j.verifyAll({ size: 10 * N, rootHash: new Uint8Array(32) });
  assert.equal(!r.ok && r.code, 'PS_JOURNAL_ROLLED_BACK');
  // A kept root that does not match: the whole scan runs, then the proof fails.
  const f = j.verifyAll({ size: N, rootHash: new Uint8Array(32) });
  assert.equal(!f.ok && f.code, 'PS_JOURNAL_FORKED');
  const after = await growthOf(j, dir, N);
  assert.ok(after <= 2 * baseline + 256 * 1024, `after failed verifies ${N} events grew data.mdb by ${after} bytes, without by ${baseline}`);
});

test('capacity counts the pages LMDB uses, and status reports what is really free', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(dir, { mapSizeMiB: 2 });
  t.after(() => j.close());
  // 2.5 KB bodies: each takes a whole 4 KiB LMDB page, so the file fills long before 2 MiB of event bytes.
  let refused: unknown;
  for (let i = 0; i < 2000 && !refused; i++) {
    await j.append({ event: 'action.allowed', detail: { i, pad: 'y'.repeat(2500) } }).catch((err: unknown) => (refused = err));
  }
  assert.ok(refused, 'capacity reached');
  const h = j.health();
  assert.equal(h.writable, false);
  assert.ok(h.bytes < h.capacityBytes, `stored bytes ${h.bytes} are below the capacity; the pages are not`);
  assert.ok(h.usedBytes + 64 * 1024 > h.capacityBytes, `pages in use ${h.usedBytes} reach the capacity ${h.capacityBytes}`);
  assert.ok(statSync(join(dir, 'data.mdb')).size <= h.capacityBytes + 512 * 1024, 'the data file stays near the configured capacity');
  assert.ok(h.freeBytes < 64 * 1024, `status says ${h.freeBytes} bytes free`);
});

test('penstockctl journal status shows the data file size and LMDB\'s page figures', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(dir);
  t.after(() => j.close());
  await growthOf(j, dir, 400);
  const { context } = makeContext();
  const h = await startHarness({ commands: { ...adminCommands, ...journalCommands }, server: { context: { ...context, journal: j } } });
  t.after(() => h.close());
  const status = async () => (JSON.parse((await runCtl(['--socket', h.path, '--json', 'journal', 'status'])).stdout) as { health: JournalHealth }).health;
  const health = await until(async () => {
    const st = await status();
    return st.fileBytes === statSync(join(dir, 'data.mdb')).size ? st : undefined;
  }, 'journal status to report the data file\'s size');
  assert.ok(health.lmdb.pages > 0 && health.lmdb.freePages >= 0 && health.lmdb.pageSize === 4096);
  const human = await runCtl(['--socket', h.path, 'journal', 'status']);
  assert.match(human.stdout, new RegExp(`data file +${(health.fileBytes / 2 ** 20).toFixed(1)} MiB: .* pages free for reuse, \\d+ read transaction`));
});

test('concurrent verifies run one at a time in the worker, each with its own answer', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(dir);
  t.after(() => j.close());
  await growthOf(j, dir, 200);
  const results = await Promise.all([j.verify(), j.verify({ size: 10_000, rootHash: new Uint8Array(32) }), j.verify()]);
  assert.deepEqual(results.map((r) => (r.ok ? r.size : r.code)), [200, 'PS_JOURNAL_ROLLED_BACK', 200]);
});
