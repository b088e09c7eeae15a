// Approvals for callers that cannot hold a request open (an agent's tool call): the verdict says
// `approve` at once with the pending request, bound to the SHA-256 of the call's arguments; once a person
// approves, the same principal's action with the same binding is allowed once, and only that one. And
// grants bound to a task (`task.require_claim`) hold only in sessions whose credential names the task.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import type { DaemonCore } from '../../src/core/daemon-core.ts';
import type { Action } from '../../src/policy/types.ts';
import type { Verdict } from '../../src/core/core.ts';
import { MAX_DEFERRED_PER_PRINCIPAL } from '../../src/approvals/approvals.ts';
import { tempDir, until } from '../support.ts';
import { openTestSession, startTestCore, type TestCore } from '../core-harness.ts';

let tmp: { dir: string; cleanup: () => void };
let t: TestCore;
let core: DaemonCore;
const clock = new ManualClock(Date.parse('2026-11-25T09:00:00Z'));
const write = (address: number, value: number): Action => ({ target: 'plc-1', verb: 'write', object: { kind: 'modbus', unit: 1, functionCode: 6, table: 'holding_register', address, quantity: 1, values: [value] } });
const read = (address: number): Action => ({ target: 'plc-1', verb: 'read', object: { kind: 'modbus', unit: 1, functionCode: 3, table: 'holding_register', address, quantity: 1 } });
const OPERATOR = { uid: 1000, user: 'shift-lead', verified: true };
const HASH_A = 'a'.repeat(64);
/** The pending request a verdict names (it must be one). */
const pendingId = (v: Verdict): string => {
  assert.equal(v.effect, 'approve');
  return (v as { approval?: { id: string } }).approval!.id;
};
const HASH_B = 'b'.repeat(64);

before(async () => {
  tmp = tempDir('penstock-deferred-');
  t = await startTestCore(tmp.dir, `
appliance: { id: gw-deferred, site: test, zone: lab, state_dir: ${tmp.dir}/state }
principals:
  - { id: agent, kind: agent, owner: Controls, purpose: test }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: 1502 }
grants:
  - id: g-agent
    principal: agent
    targets: [plc-1]
    task: { ticket: T-1 }
    rules: [{ modbus: { effect: approve, access: write, tables: [holding_register], addresses: ["0-9"] } }]
  - id: g-task
    principal: agent
    targets: [plc-1]
    task: { ticket: WO-7, require_claim: true }
    rules: [{ modbus: { access: read, tables: [holding_register], addresses: ["100-109"] } }]
`, { clock });
  core = t.core;
});

after(async () => {
  await t.stop();
  tmp.cleanup();
});

describe('deferred approvals', () => {
  it('answer at once with the pending request; the approved binding runs once, another binding never', async () => {
    const s = openTestSession(core, 'agent');
    const first = await core.authorize(s, write(3, 7), { approvalBinding: HASH_A, correlation: 'c-1' });
    assert.equal(first.effect, 'approve');
    assert.equal(first.authorization, undefined);
    const id = first.approval!.id;
    assert.equal(first.approval!.binding, HASH_A);
    assert.equal(core.approvals.get(id)?.binding, HASH_A);
    // Asking again with the same arguments names the same request; no second one is made.
    const again = await core.authorize(s, write(3, 7), { approvalBinding: HASH_A });
    assert.equal(again.effect, 'approve');
    assert.equal(again.approval?.id, id);
    assert.equal(core.approvals.list().length, 1);

    core.approvals.approve(id, OPERATOR);
    // Other arguments do not run on it: they are a new request.
    const other = await core.authorize(s, write(3, 8), { approvalBinding: HASH_B });
    assert.equal(other.effect, 'approve');
    assert.notEqual(other.approval?.id, id);
    // The approved arguments run, once.
    const run = await core.authorize(s, write(3, 7), { approvalBinding: HASH_A, correlation: 'c-2' });
    assert.equal(run.effect, 'allow');
    assert.ok(run.authorization);
    assert.match(run.explanation, new RegExp(id));
    const twice = await core.authorize(s, write(3, 7), { approvalBinding: HASH_A });
    assert.equal(twice.effect, 'approve', 'a used approval is gone: the same call asks again');
    await core.recorded();
    const events = t.events();
    assert.ok(events.some((e) => e.event === 'approval.requested' && e.detail?.approval === id && e.detail?.binding === HASH_A && e.detail?.correlation === 'c-1'));
    assert.ok(events.some((e) => e.event === 'approval.granted' && e.detail?.approval === id));
    assert.ok(events.some((e) => e.event === 'action.allowed' && e.detail?.correlation === 'c-2'));
    s.close();
  });

  it('an approval of one principal\'s binding lapses with time and is not another session\'s to take on another target', async () => {
    const s = openTestSession(core, 'agent');
    const asked = await core.authorize(s, write(4, 1), { approvalBinding: HASH_B.replace('b', 'c') });
    core.approvals.approve(pendingId(asked), OPERATOR);
    clock.advance(61_000); // the approvals' time-out in the harness is 60 s
    const late = await core.authorize(s, write(4, 1), { approvalBinding: HASH_B.replace('b', 'c') });
    assert.equal(late.effect, 'approve', 'an approval not used in time lapses');
    s.close();
  });

  it('outlives the session that asked: the principal\'s next session runs the approved call', async () => {
    const first = openTestSession(core, 'agent');
    const id = pendingId(await core.authorize(first, write(6, 2), { approvalBinding: 'e'.repeat(64) }));
    first.close();
    assert.ok(core.approvals.get(id), 'still waiting for a person after the session ended');
    core.approvals.approve(id, OPERATOR);
    const next = openTestSession(core, 'agent');
    assert.equal((await core.authorize(next, write(6, 2), { approvalBinding: 'e'.repeat(64) })).effect, 'allow');
    next.close();
  });

  it('one principal may have at most MAX_DEFERRED_PER_PRINCIPAL requests waiting; beyond it a call is refused, not queued', async () => {
    const s = openTestSession(core, 'agent');
    const waiting = core.approvals.deferredWaiting('agent');
    for (let i = waiting; i < MAX_DEFERRED_PER_PRINCIPAL; i++) {
      assert.equal((await core.authorize(s, write(7, i), { approvalBinding: i.toString(16).padStart(64, '0') })).effect, 'approve');
    }
    const over = await core.authorize(s, write(7, 999), { approvalBinding: 'f'.repeat(64) });
    assert.equal(over.effect, 'deny');
    assert.equal(over.reason, 'session_limit');
    assert.equal(core.approvals.deferredWaiting('agent'), MAX_DEFERRED_PER_PRINCIPAL);
    for (const a of core.approvals.list()) core.approvals.deny(a.id, OPERATOR);
    s.close();
  });

  it('a refused or timed-out request is journaled when it is answered, with its binding', async () => {
    const s = openTestSession(core, 'agent');
    const asked = await core.authorize(s, write(5, 1), { approvalBinding: 'd'.repeat(64), correlation: 'c-3' });
    const id = pendingId(asked);
    core.approvals.deny(id, OPERATOR, 'not during the shift change');
    await until(() => t.events().some((e) => e.event === 'approval.refused' && e.detail?.approval === id && e.detail?.correlation === 'c-3'), 'approval.refused journaled');
    s.close();
  });
});

describe('task-bound grants', () => {
  it('hold only in a session whose credential names the task', async () => {
    const bare = openTestSession(core, 'agent');
    assert.equal((await core.authorize(bare, read(100))).effect, 'deny');
    bare.close();
    const other = core.sessions.open({ principal: core.config().principals.get('agent')!, chain: ['agent'], listener: 'test', protocol: 'mcp', remote: '127.0.0.1:1', attributes: { task: 'WO-8' } }, () => {});
    assert.equal((await core.authorize(other, read(100))).effect, 'deny');
    other.close();
    const right = core.sessions.open({ principal: core.config().principals.get('agent')!, chain: ['agent'], listener: 'test', protocol: 'mcp', remote: '127.0.0.1:1', attributes: { task: 'WO-7' } }, () => {});
    const v = await core.authorize(right, read(100));
    assert.equal(v.effect, 'allow');
    assert.equal(v.grant, 'g-task');
    right.close();
  });
});
