import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, truncateSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isPenstockError } from '../../src/common/errors.ts';
import type { LmdbJournal } from '../../src/journal/journal.ts';
import { openJournal, tempDir } from './helpers.ts';
import { until } from '../support.ts';

type Alert = { kind: 'unavailable' | 'recovered'; reason: string };

/** Appends until one is refused; returns the seqs that were committed and the refusal. */
async function fillUp(j: LmdbJournal, bodyBytes: number): Promise<{ committed: number; error: unknown }> {
  const pad = 'x'.repeat(bodyBytes);
  for (let committed = 0; ; ) {
    const results = await Promise.allSettled(Array.from({ length: 16 }, (_, i) => j.append({ event: 'action.allowed', detail: { i, pad } })));
    const refused = results.find((r) => r.status === 'rejected');
    committed += results.filter((r) => r.status === 'fulfilled').length;
    if (refused) return { committed, error: (refused as PromiseRejectedResult).reason };
    if (committed > 1_000_000) throw new Error('never filled up');
  }
}

/**
 * A 3 MiB tmpfs half taken by a filler file, unmounted after the test; undefined (test skipped) where
 * mounting is not permitted.
 */
function fullishTmpfs(t: TestContext): { mnt: string; filler: string; teardown: (() => unknown)[] } | undefined {
  const { dir, cleanup } = tempDir();
  const teardown: (() => unknown)[] = [cleanup];
  t.after(async () => {
    for (const step of teardown.reverse()) await step();
  });
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    t.skip(`cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): ${(err as Error).message.split('\n')[0]}`);
    return undefined;
  }
  teardown.push(() => execFileSync('umount', [mnt]));
  const filler = join(mnt, 'filler');
  writeFileSync(filler, Buffer.alloc(1536 * 1024, 1));
  return { mnt, filler, teardown };
}


test('capacity (map size) reached: appends refused with an alert and no partial state; pruning acknowledged events brings it back by itself', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const alerts: Alert[] = [];
  const j = await openJournal(dir, { mapSizeMiB: 1, checkpointEvery: 64, probeMs: 20, onAlert: (a) => alerts.push(a) });
  t.after(() => j.close());
  const { committed, error } = await fillUp(j, 2000);
  assert.ok(isPenstockError(error, 'PS_JOURNAL_UNAVAILABLE'), String(error));
  assert.ok(committed > 100);
  assert.deepEqual(alerts.map((a) => a.kind), ['unavailable']);
  assert.match(alerts[0]!.reason, /^map full/);
  const h = j.health();
  assert.equal(h.writable, false);
  assert.match(h.failure ?? '', /map full/);
  assert.equal(j.size(), committed, 'the refused batch left no event and no gap');
  assert.deepEqual(j.verifyAll(), { ok: true, size: committed });
  // While unavailable, an append is refused without a commit, and leaves nothing.
  await assert.rejects(j.append({ event: 'action.allowed', detail: { pad: 'y'.repeat(256 * 1024) } }), (err) => isPenstockError(err, 'PS_JOURNAL_UNAVAILABLE'));
  assert.equal(j.size(), committed);
  // Upstream acknowledges; retention frees space; the probe notices without anyone appending.
  await j.acknowledge(committed - 1, 'central-pam');
  // Capacity counts LMDB pages: a 2 KB event takes a 4 KiB page, so prune to a quarter of the capacity.
  j.prune({ maxBytes: 256 * 1024 });
  await until(() => alerts.length === 2, 'the recovery alert');
  assert.deepEqual(alerts.map((a) => a.kind), ['unavailable', 'recovered']);
  assert.equal(j.health().writable, true);
  const { seq } = await j.append({ event: 'action.allowed' });
  const events = j.readEvents(committed, 10).map((e) => JSON.parse(e.bytes).event);
  assert.deepEqual(events, ['alert.journal_recovered', 'action.allowed'], 'the outage is itself journaled');
  assert.equal(seq, committed + 1);
  assert.deepEqual(j.verifyAll(), { ok: true, size: committed + 2 });
});

test('a real full filesystem (tmpfs): ENOSPC fails closed, and freeing space recovers by itself', async (t) => {
  const fs = fullishTmpfs(t);
  if (!fs) return;
  const { mnt, filler, teardown } = fs;
  const alerts: Alert[] = [];
  const j = await openJournal(join(mnt, 'journal'), { mapSizeMiB: 64, checkpointEvery: 64, probeMs: 20, onAlert: (a) => alerts.push(a) });
  teardown.push(() => j.close());
  const { committed, error } = await fillUp(j, 1000);
  assert.ok(isPenstockError(error, 'PS_JOURNAL_UNAVAILABLE'), String(error));
  assert.match(alerts[0]?.reason ?? '', /^disk full/);
  assert.equal(j.health().writable, false);
  assert.equal(j.size(), committed);
  assert.deepEqual(j.verifyAll(), { ok: true, size: committed });
  rmSync(filler);
  await until(() => alerts.length === 2, 'the recovery alert');
  assert.equal(alerts[1]!.kind, 'recovered');
  assert.equal((await j.append({ event: 'action.allowed' })).seq, committed + 1);
  assert.deepEqual(j.verifyAll(), { ok: true, size: committed + 2 });
});

test('on a full disk the probe does not report writable while an event still cannot be written', async (t) => {
  const fs = fullishTmpfs(t);
  if (!fs) return;
  const { mnt, filler, teardown } = fs;
  const alerts: Alert[] = [];
  // No probe timer in the way: the test probes by hand.
  const j = await openJournal(join(mnt, 'journal'), { mapSizeMiB: 64, checkpointEvery: 64, probeMs: 3_600_000, recoverySettleMs: 50, onAlert: (a) => alerts.push(a) });
  teardown.push(() => j.close());
  const { committed } = await fillUp(j, 1000);
  // A little space comes back: enough to rewrite the state record, not for a batch like the refused one.
  truncateSync(filler, statSync(filler).size - 8 * 1024);
  const batch = (round: number) => Promise.all(Array.from({ length: 16 }, (_, i) => j.append({ event: 'action.allowed', detail: { i, round, pad: 'z'.repeat(1000) } })));
  for (let round = 0; round < 5; round++) {
    const writable = j.probe();
    const appended = await batch(round).then(() => true, () => false);
    if (writable) assert.ok(appended, `round ${round}: the probe said writable, and then a batch like the refused one could not be written`);
  }
  assert.deepEqual(alerts.map((a) => a.kind), ['unavailable'], 'one outage, one alert');
  // Real space returns: the probe says so, and it is true.
  rmSync(filler);
  assert.equal(j.probe(), true);
  await batch(5);
  assert.ok(j.size() >= committed + 16);
  await until(() => alerts.length === 2, 'the recovery alert');
  assert.deepEqual(alerts.map((a) => a.kind), ['unavailable', 'recovered']);
});

test('a recovery that does not hold is the same outage: one unavailable alert, one recovered alert, one recovery event', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const alerts: Alert[] = [];
  const j = await openJournal(dir, { mapSizeMiB: 1, checkpointEvery: 64, probeMs: 20, recoverySettleMs: 2000, onAlert: (a) => alerts.push(a) });
  t.after(() => j.close());
  const first = await fillUp(j, 2000);
  assert.ok(isPenstockError(first.error, 'PS_JOURNAL_UNAVAILABLE'));
  // Flap: space returns, writes go through, and it fills up again before the recovery held.
  for (let flap = 0; flap < 3; flap++) {
    await j.acknowledge(j.size() - 1, 'central-pam');
    j.prune({ maxBytes: 256 * 1024 });
    await until(() => j.health().writable, 'the journal writable again');
    const again = await fillUp(j, 2000);
    assert.ok(isPenstockError(again.error, 'PS_JOURNAL_UNAVAILABLE'));
    assert.equal(j.health().writable, false);
  }
  assert.deepEqual(alerts.map((a) => a.kind), ['unavailable'], 'three flaps, still one outage');
  // Space returns for good: the recovery holds, and is alerted and journaled once, naming the outage's start.
  await j.acknowledge(j.size() - 1, 'central-pam');
  j.prune({ maxBytes: 256 * 1024 });
  await until(() => alerts.length === 2, 'the recovery alert');
  assert.deepEqual(alerts.map((a) => a.kind), ['unavailable', 'recovered']);
  await until(() => j.readEvents(j.size() - 1, 1)[0]?.bytes.includes('alert.journal_recovered') === true, 'alert.journal_recovered journaled');
  const recoveries = j.readEvents(j.firstRetained(), 100_000).filter((e) => e.bytes.includes('"alert.journal_recovered"'));
  assert.equal(recoveries.length, 1);
});
