// Following the journal (detectors, live views): each committed batch reaches the listeners in order,
// as stored — seq, code, time, and no Secret; a listener that throws does not stop the journal or the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Secret } from '../../src/common/secret.ts';
import type { StoredEvent } from '../../src/journal/event.ts';
import { openJournal, tempDir } from './helpers.ts';

test('listeners get committed events in order, as stored, after the appenders', async () => {
  const tmp = tempDir();
  const j = await openJournal(join(tmp.dir, 'j'));
  try {
    const seen: StoredEvent[] = [];
    const stop = j.onCommitted((events) => void seen.push(...events));
    j.onCommitted(() => {
      throw new Error('a broken listener');
    });
    const receipts = await Promise.all([
      j.append({ event: 'session.opened', session: 's1', principal: 'p', detail: { password: new Secret('hunter2') as unknown as string, n: 1 } }),
      j.append({ event: 'action.denied', session: 's1', principal: 'p', detail: { n: 2 } }),
    ]);
    await j.append({ event: 'session.closed', session: 's1', principal: 'p' });
    assert.deepEqual(seen.map((e) => e.seq), [...receipts.map((r) => r.seq), receipts[1]!.seq + 1]);
    assert.deepEqual(seen.map((e) => e.event), ['session.opened', 'action.denied', 'session.closed']);
    assert.equal(seen[1]!.code, 'PS3002W');
    assert.ok(!JSON.stringify(seen).includes('hunter2'), 'no secret reaches a listener');
    stop();
    await j.append({ event: 'session.opened', session: 's2', principal: 'p' });
    assert.equal(seen.length, 3, 'a stopped listener hears nothing more');
  } finally {
    await j.close();
    tmp.cleanup();
  }
});
