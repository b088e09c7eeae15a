// Metered links: the byte rate cap holds as an upper bound, measured where the bytes arrive (a plain
// subscriber on the nats-server sees every publish as it comes); send windows, on an injected clock:
// outside them the pusher is disconnected and publishes nothing, inside it catches up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { startNats } from '../peers/nats-server.ts';
import { tempDir, until } from '../support.ts';
import { startPusher, PUSH_CURSOR } from '../../src/push/pusher.ts';
import { inWindow, parseWindow, parseWindows } from '../../src/push/windows.ts';
import { applianceSubject } from '../../src/fleet/wire.ts';
import { APPLIANCE, appendN, createStream, openPushJournal, pushConfig, streamCount, withNats } from './helpers.ts';

const CAP = 20_000;

test('the byte rate cap is an upper bound on what reaches the server, over any stretch of time', async () => {
  const nats = await startNats();
  const { dir, cleanup } = tempDir('penstock-push-rate-');
  const journal = await openPushJournal(dir);
  try {
    await createStream({ servers: nats.urls });
    await appendN(journal, 300);
    const arrivals = await withNats({ servers: nats.urls }, async (nc) => {
      const got: { at: number; bytes: number }[] = [];
      const sub = nc.subscribe(applianceSubject(APPLIANCE), { callback: (_err, m) => void got.push({ at: performance.now(), bytes: m.data.length }) });
      await nc.flush();
      const pusher = startPusher({ journal, appliance: APPLIANCE, config: pushConfig(nats.urls, { max_bytes_per_second: CAP }) });
      await until(() => journal.cursor(PUSH_CURSOR) === 299, 'all 300 events pushed under the cap', 60_000);
      const shown = pusher.status().bytes_per_second;
      assert.ok(shown > 0 && shown <= CAP * 1.1, `status shows the rate (${shown} B/s)`);
      await pusher.close();
      await nc.flush();
      sub.unsubscribe();
      return got;
    });
    const total = arrivals.reduce((n, a) => n + a.bytes, 0);
    assert.ok(total > 2 * CAP, `enough bytes to measure (${total})`);
    // A token bucket allows one second's burst on top of the rate: bytes in any window of w seconds <= CAP * (w + 1).
    for (const w of [0.5, 1, 2]) {
      for (let i = 0; i < arrivals.length; i++) {
        let sum = 0;
        for (let k = i; k < arrivals.length && arrivals[k]!.at - arrivals[i]!.at < w * 1000; k++) sum += arrivals[k]!.bytes;
        assert.ok(sum <= CAP * (w + 1) * 1.05, `${sum} bytes within ${w}s from arrival ${i} (cap ${CAP}/s)`);
      }
    }
    const seconds = (arrivals.at(-1)!.at - arrivals[0]!.at) / 1000;
    assert.ok(total <= CAP * (seconds + 1) * 1.05, `${total} bytes in ${seconds.toFixed(2)}s`);
  } finally {
    await journal.close();
    await nats.stop();
    cleanup();
  }
});

test('send windows: outside them the pusher stays disconnected and publishes nothing; inside it catches up', async () => {
  const nats = await startNats();
  const { dir, cleanup } = tempDir('penstock-push-window-');
  const journal = await openPushJournal(dir);
  // Wednesday 2026-12-02 12:00 UTC; the window is weeknights 22:00-06:00 UTC.
  const clock = new ManualClock(Date.parse('2026-12-02T12:00:00Z'));
  const pusher = startPusher({ journal, appliance: APPLIANCE, clock, config: pushConfig(nats.urls, { windows: ['mon-fri 22:00-06:00'], windows_tz: 'UTC' }) });
  try {
    await createStream({ servers: nats.urls });
    await appendN(journal, 300);
    await until(() => pusher.status().state === 'outside_window' && pusher.status().lag_events === 300, 'the pusher waiting for its window');
    assert.equal(pusher.status().connected, false);
    assert.equal(pusher.status().in_window, false);
    assert.equal(await streamCount({ servers: nats.urls }), 0);

    clock.set(Date.parse('2026-12-02T22:30:00Z'));
    await until(() => journal.cursor(PUSH_CURSOR) === 299, 'pushed inside the window');
    assert.equal(pusher.status().in_window, true);

    // Thursday 06:01: the window is over; what is appended now waits for Thursday night.
    clock.set(Date.parse('2026-12-03T06:01:00Z'));
    await until(() => pusher.status().state === 'outside_window' && !pusher.status().connected, 'disconnected after the window');
    await appendN(journal, 100);
    await until(() => pusher.status().lag_events === 100, 'the new events seen, waiting');
    const before = await streamCount({ servers: nats.urls });
    clock.set(Date.parse('2026-12-03T21:59:00Z'));
    assert.equal(pusher.status().state, 'outside_window');
    assert.equal(await streamCount({ servers: nats.urls }), before, 'nothing published outside the window');
    clock.set(Date.parse('2026-12-03T22:00:30Z'));
    await until(() => journal.cursor(PUSH_CURSOR) === 399, 'pushed in the next window');
  } finally {
    await pusher.close();
    await journal.close();
    await nats.stop();
    cleanup();
  }
});

test('windows: days, midnight, the whole day, and what is not a window', () => {
  const at = (iso: string, ...w: string[]) => inWindow(parseWindows(w), Date.parse(iso), 'UTC');
  // Friday night runs into Saturday morning; Saturday night does not start (mon-fri).
  assert.equal(at('2026-12-05T05:59:00Z', 'mon-fri 22:00-06:00'), true); // Saturday 05:59
  assert.equal(at('2026-12-05T22:00:00Z', 'mon-fri 22:00-06:00'), false); // Saturday 22:00
  assert.equal(at('2026-12-07T05:00:00Z', 'mon-fri 22:00-06:00'), false); // Monday 05:00: Sunday night was not in it
  assert.equal(at('2026-12-06T13:00:00Z', 'sat,sun 00:00-24:00'), true);
  assert.equal(at('2026-12-07T13:00:00Z', 'sat,sun 00:00-24:00', '12:00-12:30'), false);
  assert.equal(at('2026-12-07T12:15:00Z', 'sat,sun 00:00-24:00', '12:00-12:30'), true);
  assert.equal(at('2026-12-07T12:15:00Z'), true, 'no windows: always');
  assert.equal(inWindow(parseWindows(['09:00-17:00']), Date.parse('2026-12-07T08:30:00Z'), 'Europe/Berlin'), true, '09:30 in Berlin');
  for (const bad of ['22:00', '25:00-06:00', 'mon-fry 22:00-06:00', '08:00-08:00', '24:00-06:00']) assert.equal(typeof parseWindow(bad), 'string', bad);
});
