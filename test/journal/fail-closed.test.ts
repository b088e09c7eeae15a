import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isPenstockError } from '../../src/common/errors.ts';
import type { LmdbJournal } from '../../src/journal/journal.ts';
import { openJournal, tempDir } from './helpers.ts';

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

async function waitFor(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 10));
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
  // Each append is also a probe: one that does not fit is refused too, and leaves nothing.
  await assert.rejects(j.append({ event: 'action.allowed', detail: { pad: 'y'.repeat(256 * 1024) } }), (err) => isPenstockError(err, 'PS_JOURNAL_UNAVAILABLE'));
  assert.equal(j.size(), committed);
  // Upstream acknowledges; retention frees space; the probe notices without anyone appending.
  await j.acknowledge(committed - 1, 'central-pam');
  // Capacity counts LMDB pages: a 2 KB event takes a 4 KiB page, so prune to a quarter of the capacity.
  j.prune({ maxBytes: 256 * 1024 });
  await waitFor(() => alerts.length === 2);
  assert.deepEqual(alerts.map((a) => a.kind), ['unavailable', 'recovered']);
  assert.equal(j.health().writable, true);
  const { seq } = await j.append({ event: 'action.allowed' });
  const events = j.readEvents(committed, 10).map((e) => JSON.parse(e.bytes).event);
  assert.deepEqual(events, ['alert.journal_recovered', 'action.allowed'], 'the outage is itself journaled');
  assert.equal(seq, committed + 1);
  assert.deepEqual(j.verifyAll(), { ok: true, size: committed + 2 });
});

test('a real full filesystem (tmpfs): ENOSPC fails closed, and freeing space recovers by itself', async (t) => {
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
    return;
  }
  teardown.push(() => execFileSync('umount', [mnt]));
  const filler = join(mnt, 'filler');
  writeFileSync(filler, Buffer.alloc(1536 * 1024, 1));
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
  await waitFor(() => alerts.length === 2);
  assert.equal(alerts[1]!.kind, 'recovered');
  assert.equal((await j.append({ event: 'action.allowed' })).seq, committed + 1);
  assert.deepEqual(j.verifyAll(), { ok: true, size: committed + 2 });
});
