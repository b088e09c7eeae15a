import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { isPenstockError } from '../../src/common/errors.ts';
import { Approvals, type ApprovalOutcome } from '../../src/approvals/approvals.ts';
import type { Operator } from '../../src/grants/types.ts';
import type { Action } from '../../src/policy/types.ts';

const T0 = Date.parse('2026-06-15T10:00:00Z');
const alice: Operator = { uid: 1001, user: 'alice', verified: true };
const action: Action = { target: 'plc-1', verb: 'write', object: { kind: 'modbus', unit: 1, functionCode: 6, table: 'holding_register', address: 40100, quantity: 1, values: [500] } };

/** Without `timers`, the approvals see only a clock (now, monotonic): time-outs happen in tick() and in late answers. */
function setup(timers = false) {
  const clock = new ManualClock(T0);
  let n = 0;
  const clockOnly = { now: () => clock.now(), monotonic: () => clock.monotonic() };
  const approvals = new Approvals({ clock: timers ? clock : clockOnly, timeoutMs: 300_000, newId: () => `ap-${++n}` });
  const ask = (session = 's1') => approvals.request({ session, principal: 'agent-1', chain: ['agent-1', 'vendor-a'], target: 'plc-1', action, grant: 'G', rule: 'G#2' });
  return { clock, approvals, ask };
}

/** The outcome if the promise has settled, else 'pending' (settled promises resolve within a microtask turn). */
async function peek(p: Promise<ApprovalOutcome>): Promise<ApprovalOutcome | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);
}

test('a request is listed with who, what, which rule, since and time-out', () => {
  const { approvals, ask } = setup();
  const { id } = ask();
  assert.deepEqual(approvals.list(), [{
    id, session: 's1', principal: 'agent-1', chain: ['agent-1', 'vendor-a'], target: 'plc-1', action, grant: 'G', rule: 'G#2',
    since: '2026-06-15T10:00:00.000Z', expiresAt: '2026-06-15T10:05:00.000Z',
  }]);
  assert.equal(approvals.nextTimeout(), T0 + 300_000);
});

test('approve resolves the outcome with the approver, once', async () => {
  const { clock, approvals, ask } = setup();
  const { id, outcome } = ask();
  assert.equal(await peek(outcome), 'pending');
  clock.advance(10_000);
  approvals.approve(id, alice, 'checked with shift lead');
  assert.deepEqual(await outcome, { approved: true, by: alice, reason: 'approved', note: 'checked with shift lead', at: '2026-06-15T10:00:10.000Z' });
  assert.deepEqual(approvals.list(), []);
  assert.throws(() => approvals.deny(id, alice), (e) => isPenstockError(e, 'PS_APPROVAL_UNKNOWN') && /already resolved \(approved by uid 1001/.test(e.message));
  assert.throws(() => approvals.approve(id, alice), (e) => isPenstockError(e, 'PS_APPROVAL_UNKNOWN'));
  assert.equal((await outcome).approved, true, 'the first answer stands');
});

test('deny resolves as refused', async () => {
  const { approvals, ask } = setup();
  const { id, outcome } = ask();
  approvals.deny(id, alice);
  const o = await outcome;
  assert.equal(o.approved, false);
  assert.equal(o.reason, 'refused');
  assert.deepEqual(o.by, alice);
  assert.throws(() => approvals.approve('ap-999', alice), (e) => isPenstockError(e, 'PS_APPROVAL_UNKNOWN'));
});

test('requests time out at expiresAt, and a late answer is refused', async () => {
  const { clock, approvals, ask } = setup();
  const a = ask();
  clock.advance(100_000);
  const b = ask();
  clock.set(T0 + 299_999);
  assert.deepEqual(approvals.tick(), []);
  assert.equal(await peek(a.outcome), 'pending');
  clock.set(T0 + 300_000);
  assert.deepEqual(approvals.tick(), [a.id]);
  assert.deepEqual(await a.outcome, { approved: false, reason: 'timed_out', at: '2026-06-15T10:05:00.000Z' });
  assert.throws(() => approvals.approve(a.id, alice), (e) => isPenstockError(e, 'PS_APPROVAL_UNKNOWN'));
  assert.deepEqual(approvals.list().map((p) => p.id), [b.id]);
  assert.equal(approvals.nextTimeout(), T0 + 400_000);
  // Past its time but before the timer ran: the answer is refused and the request times out.
  clock.set(T0 + 400_000);
  assert.throws(() => approvals.approve(b.id, alice), (e) => isPenstockError(e, 'PS_APPROVAL_UNKNOWN'));
  assert.equal((await b.outcome).reason, 'timed_out');
  assert.equal(approvals.nextTimeout(), undefined);
});

test('a request bounded by its client\'s deadline times out then, not at the approvals time-out', async () => {
  const { clock, approvals } = setup();
  const r = approvals.request({ session: 's1', principal: 'agent-1', chain: ['agent-1'], target: 'plc-1', action, deadlineMs: T0 + 5_000 });
  const later = approvals.request({ session: 's1', principal: 'agent-1', chain: ['agent-1'], target: 'plc-1', action, deadlineMs: T0 + 900_000 });
  assert.equal(approvals.get(r.id)?.expiresAt, '2026-06-15T10:00:05.000Z');
  assert.equal(approvals.get(later.id)?.expiresAt, '2026-06-15T10:05:00.000Z', 'a deadline never extends the approvals time-out');
  assert.equal('deadlineMs' in approvals.get(r.id)!, false);
  clock.set(T0 + 5_000);
  // The client has stopped waiting: a person's late answer no longer applies.
  assert.throws(() => approvals.approve(r.id, alice), (e) => isPenstockError(e, 'PS_APPROVAL_UNKNOWN') && /timed out/.test(e.message));
  assert.equal((await r.outcome).reason, 'timed_out');
  assert.equal(await peek(later.outcome), 'pending');
});

test('given a scheduler, a request times out on its own timer at its expiry, with no tick', async () => {
  const { clock, approvals } = setup(true);
  const r = approvals.request({ session: 's1', principal: 'agent-1', chain: ['agent-1'], target: 'plc-1', action, deadlineMs: T0 + 5_000 });
  const answered = approvals.request({ session: 's1', principal: 'agent-1', chain: ['agent-1'], target: 'plc-1', action });
  approvals.approve(answered.id, alice);
  assert.equal(clock.pendingTimers, 1, 'an answered request leaves no timer behind');
  clock.set(T0 + 4_999);
  assert.equal(await peek(r.outcome), 'pending');
  clock.set(T0 + 5_000);
  assert.deepEqual(await peek(r.outcome), { approved: false, reason: 'timed_out', at: '2026-06-15T10:00:05.000Z' });
  assert.equal(clock.pendingTimers, 0);
  assert.deepEqual(approvals.list(), []);
});

test('cancel resolves the ended session\'s requests only', async () => {
  const { approvals, ask } = setup();
  const a = ask('s1');
  const b = ask('s2');
  const c = ask('s1');
  assert.equal(approvals.cancel('s1'), 2);
  assert.equal((await a.outcome).reason, 'cancelled');
  assert.equal((await c.outcome).reason, 'cancelled');
  assert.equal(await peek(b.outcome), 'pending');
  assert.deepEqual(approvals.list().map((p) => p.id), [b.id]);
  assert.equal(approvals.cancel('s1'), 0);
});

test('ids are unique even when the generator repeats itself', () => {
  const clock = new ManualClock(T0);
  const ids = ['x', 'x', 'y'];
  const approvals = new Approvals({ clock, timeoutMs: 1000, newId: () => ids.shift() ?? 'z' });
  const req = { session: 's', principal: 'p', chain: ['p'], target: 't', action };
  assert.equal(approvals.request(req).id, 'x');
  assert.equal(approvals.request(req).id, 'y');
  const real = new Approvals({ clock, timeoutMs: 1000 });
  assert.match(real.request(req).id, /^ap-[0-9a-f]{10}$/);
});
