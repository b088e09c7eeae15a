// Refusals journaled by rate: bounded per listener and kind (event and reason code), counted beyond
// the bound, and a flood of one kind never hides another — the rate limit a login flood triggers is
// journaled even while the flood's own failures are being counted.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { RateLimitedRefusals } from '../../src/core/refusals.ts';
import { tempDir } from '../support.ts';
import { startTestCore, type TestCore } from '../core-harness.ts';

let tmp: { dir: string; cleanup: () => void };
let t: TestCore;
const clock = new ManualClock(Date.parse('2026-11-25T09:00:00Z'));

before(async () => {
  tmp = tempDir('penstock-refusals-');
  t = await startTestCore(tmp.dir, `appliance: { id: gw-refusals, site: test, zone: lab, state_dir: ${tmp.dir}/state }\n`, { clock });
});

after(async () => {
  await t.stop();
  tmp.cleanup();
});

it('a flood is journaled up to the bound per kind, counted beyond it, and does not hide another kind', async () => {
  const r = new RateLimitedRefusals(t.core, 'door-1', 'test');
  const before = t.events().length;
  for (let i = 0; i < 1000; i++) r.authFailed('192.0.2.1:5000', 'unknown_key');
  r.record('auth.rate_limited', '192.0.2.1:5000', undefined, { reason: 'source_rate_limited' });
  r.record('action.malformed', '192.0.2.9:5000', undefined, { reason: 'bad_frame' });
  await t.core.recorded();
  const journaled = t.events().slice(before);
  assert.equal(journaled.filter((e) => e.event === 'auth.failed').length, RateLimitedRefusals.PER_WINDOW);
  assert.equal(journaled.filter((e) => e.event === 'auth.rate_limited').length, 1, 'the rate limit is journaled in the middle of the flood');
  assert.equal(journaled.filter((e) => e.event === 'action.malformed').length, 1);
  assert.ok(journaled.every((e) => e.detail?.protocol === 'test' && e.listener === 'door-1'));

  // The next window: the first failure journaled carries the count of those left out.
  clock.advance(RateLimitedRefusals.WINDOW_MS);
  r.authFailed('192.0.2.1:5000', 'unknown_key');
  await t.core.recorded();
  const next = t.events().slice(before + journaled.length);
  assert.deepEqual(next.map((e) => [e.event, e.detail?.suppressed_since_last]), [['auth.failed', 1000 - RateLimitedRefusals.PER_WINDOW]]);
});
