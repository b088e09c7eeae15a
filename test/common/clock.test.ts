// The ManualClock's timers: what tests of time-outs and back-off rely on instead of sleeping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';

const T0 = Date.parse('2026-12-05T08:00:00Z');

test('timers fire when time reaches them, in due order, each seeing its own due time', () => {
  const clock = new ManualClock(T0);
  const fired: Array<[string, number]> = [];
  clock.setTimeout(() => fired.push(['b', clock.now() - T0]), 200);
  clock.setTimeout(() => fired.push(['a', clock.now() - T0]), 100);
  clock.setTimeout(() => fired.push(['a2', clock.now() - T0]), 100);
  clock.advance(99);
  assert.deepEqual(fired, []);
  clock.advance(150);
  assert.deepEqual(fired, [['a', 100], ['a2', 100], ['b', 200]]);
  assert.equal(clock.now() - T0, 249);
  assert.equal(clock.monotonic(), 249_000_000n);
  assert.equal(clock.pendingTimers, 0);
});

test('a timer set by a timer fires in the same advance if it falls due; a cleared one never fires', () => {
  const clock = new ManualClock(T0);
  const fired: number[] = [];
  clock.setTimeout(() => clock.setTimeout(() => fired.push(clock.now() - T0), 50), 100);
  const cleared = clock.setTimeout(() => fired.push(-1), 120);
  clock.clearTimeout(cleared);
  clock.clearTimeout(undefined);
  clock.advance(149);
  assert.deepEqual(fired, []);
  clock.advance(1);
  assert.deepEqual(fired, [150]);
});

test('timers run on monotonic time: setting the wall clock back neither fires nor delays them', () => {
  const clock = new ManualClock(T0);
  let fired = false;
  clock.setTimeout(() => { fired = true; }, 100);
  clock.set(T0 - 60_000);
  assert.equal(fired, false);
  clock.advance(100);
  assert.equal(fired, true);
});
