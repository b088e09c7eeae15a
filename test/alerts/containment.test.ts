// Containment against a real core (config loader, LMDB journal, grant store, approvals): each action
// config `alerts.<kind>.action` names, what the core then does with the session's or grant's next
// actions, lifting by staff, and alerts that name no session or grant (logged, never thrown).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { isPenstockError } from '../../src/common/errors.ts';
import type { DaemonCore } from '../../src/core/daemon-core.ts';
import type { Action } from '../../src/policy/types.ts';
import type { StoredEvent } from '../../src/journal/event.ts';
import type { Alert, AlertKind } from '../../src/alerts/types.ts';
import { Containment, CONTAINMENT_OPERATOR } from '../../src/alerts/containment.ts';
import { adminCommands } from '../../src/admin/commands.ts';
import type { AdminContext } from '../../src/admin/types.ts';
import { tempDir, until } from '../support.ts';
import { openTestSession, startTestCore, type TestCore } from '../core-harness.ts';

let tmp: { dir: string; cleanup: () => void };
let t: TestCore;
let core: DaemonCore;
let containment: Containment;
const clock = new ManualClock(Date.parse('2026-11-25T09:00:00Z'));
const OPERATOR = { uid: 1000, user: 'shift-lead', verified: true };
const write = (address: number, value: number): Action => ({ target: 'plc-1', verb: 'write', object: { kind: 'modbus', unit: 1, functionCode: 6, table: 'holding_register', address, quantity: 1, values: [value] } });
const read = (address: number): Action => ({ target: 'plc-1', verb: 'read', object: { kind: 'modbus', unit: 1, functionCode: 3, table: 'holding_register', address, quantity: 1 } });

before(async () => {
  tmp = tempDir('penstock-containment-');
  t = await startTestCore(tmp.dir, `
appliance: { id: gw-contain, site: test, zone: lab, state_dir: ${tmp.dir}/state }
principals:
  - { id: vendor, kind: vendor, owner: Pumps Ltd, purpose: test }
  - { id: other, kind: vendor, owner: Valves Ltd, purpose: test }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: 1502 }
grants:
  - id: g-vendor
    principal: vendor
    targets: [plc-1]
    task: { ticket: T-1 }
    rules: [{ modbus: { access: write, tables: [holding_register], addresses: ["0-9"] } }]
  - id: g-revoke
    principal: vendor
    targets: [plc-1]
    task: { ticket: T-2 }
    rules: [{ modbus: { access: read, tables: [holding_register], addresses: ["100-109"] } }]
  - id: g-other
    principal: other
    targets: [plc-1]
    task: { ticket: T-3 }
    rules: [{ modbus: { access: write, tables: [holding_register], addresses: ["0-9"] } }]
  - id: g-other-read
    principal: other
    targets: [plc-1]
    task: { ticket: T-4 }
    rules: [{ modbus: { access: read, tables: [holding_register], addresses: ["200-209"] } }]
alerts:
  probing: { action: suspend }
  cross_zone: { action: kill }
  new_target: { action: revoke }
  programming: { action: require_approval }
  unusual_write: { action: log }
`, { clock });
  core = t.core;
  containment = new Containment(core);
});

after(async () => {
  await t.stop();
  tmp.cleanup();
});

/** Journal an alert event as the engine would and return the alert with its seq. */
async function raise(kind: AlertKind, over: Partial<Alert> = {}): Promise<{ alert: Alert; seq: number }> {
  const alert: Alert = { kind, severity: 'warning', summary: `test ${kind}`, principal: 'vendor', triggers: [], ...over };
  // The engine journals `alert.<kind>`; until its codes are merged a registered alert stands in here.
  const { seq } = await core.journal.append({ event: 'alert.denial_burst', principal: alert.principal, detail: { kind } });
  return { alert, seq };
}

const events = (name: string): StoredEvent[] => t.events().filter((e) => e.event === name);
const appliedFor = (seq: number): StoredEvent | undefined => events('containment.applied').find((e) => (e.detail?.alert as { seq?: number })?.seq === seq);

/** Whether a promise has settled by the time the event loop has run what is queued. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
}

describe('containment', () => {
  it('log: nothing beyond the alert; the session acts as before', async () => {
    const s = openTestSession(core, 'vendor');
    const { alert, seq } = await raise('unusual_write', { session: s.id, grant: 'g-vendor' });
    await containment.apply(alert, seq);
    assert.equal(appliedFor(seq), undefined, 'no containment record');
    assert.equal(s.suspended, undefined);
    assert.equal((await core.authorize(s, write(1, 5))).effect, 'allow');
    s.close();
  });

  it('suspend: the session\'s next allowed action waits for a person, naming the alert; other sessions do not; resume lifts it', async () => {
    const s = openTestSession(core, 'vendor');
    const bystander = openTestSession(core, 'vendor');
    const { alert, seq } = await raise('probing', { session: s.id });
    await containment.apply(alert, seq);

    const applied = appliedFor(seq)!;
    assert.ok(applied, 'containment.applied journaled');
    assert.equal(applied.code, 'PS5013I');
    assert.equal(applied.session, s.id);
    assert.deepEqual(applied.detail, { alert: { kind: 'probing', seq }, action: 'suspend', applied: true, session: s.id });
    assert.deepEqual(s.view().suspended, { alert: { kind: 'probing', seq }, since: new Date(clock.now()).toISOString() });

    const pending = core.authorize(s, write(2, 7));
    const ask = await until(() => core.approvals.list().find((a) => a.session === s.id), 'the approval request');
    assert.deepEqual(ask.alert, { kind: 'probing', seq }, 'the approval names the alert');
    assert.equal(await settled(pending), false, 'the write waits');
    const requested = await until(() => events('approval.requested').find((e) => e.detail?.approval === ask.id), 'approval.requested');
    assert.deepEqual(requested.detail?.alert, { kind: 'probing', seq });
    // A denial stays a denial (nothing to ask a person about); another session of the principal is not held.
    assert.equal((await core.authorize(s, write(50, 1))).effect, 'deny');
    assert.equal((await core.authorize(bystander, write(2, 7))).effect, 'allow');

    core.approvals.approve(ask.id, OPERATOR);
    const v = await pending;
    assert.equal(v.effect, 'allow');
    assert.ok(v.authorization, 'approved: allowed with its proof');
    // Still suspended: the next one asks again.
    const next = core.authorize(s, write(3, 9));
    const ask2 = await until(() => core.approvals.list().find((a) => a.session === s.id), 'the second approval request');
    core.approvals.deny(ask2.id, OPERATOR);
    assert.equal((await next).effect, 'deny');

    const view = await core.resumeSession(s.id, OPERATOR);
    assert.equal(view.suspended, undefined);
    const lifted = events('containment.lifted').find((e) => e.session === s.id)!;
    assert.equal(lifted.code, 'PS5014I');
    assert.deepEqual(lifted.detail, { action: 'suspend', session: s.id, alert: { kind: 'probing', seq }, by: OPERATOR });
    assert.equal((await core.authorize(s, write(2, 8))).effect, 'allow', 'lifted: allowed at once');
    await assert.rejects(core.resumeSession(s.id, OPERATOR), (e) => isPenstockError(e, 'PS_NOT_CONTAINED'));
    await assert.rejects(core.resumeSession('s-nope', OPERATOR), (e) => isPenstockError(e, 'PS_SESSION_UNKNOWN'));
    s.close();
    bystander.close();
  });

  it('suspend: a caller that cannot wait (an agent\'s call) gets the pending approval at once, naming the alert', async () => {
    const s = openTestSession(core, 'vendor');
    const { alert, seq } = await raise('probing', { session: s.id });
    await containment.apply(alert, seq);
    const binding = 'c'.repeat(64);
    const first = await core.authorize(s, write(5, 1), { approvalBinding: binding });
    assert.equal(first.effect, 'approve');
    const id = (first as { approval?: { id: string } }).approval!.id;
    assert.deepEqual(core.approvals.get(id)?.alert, { kind: 'probing', seq });
    core.approvals.approve(id, OPERATOR);
    assert.equal((await core.authorize(s, write(5, 1), { approvalBinding: binding })).effect, 'allow', 'approved: runs once');
    assert.equal((await core.authorize(s, write(5, 1), { approvalBinding: binding })).effect, 'approve', 'still suspended: asks again');
    s.close();
  });

  it('suspend: a second alert does not replace the first suspension', async () => {
    const s = openTestSession(core, 'vendor');
    const first = await raise('probing', { session: s.id });
    await containment.apply(first.alert, first.seq);
    const second = await raise('probing', { session: s.id });
    await containment.apply(second.alert, second.seq);
    assert.equal(s.suspended?.alert.seq, first.seq);
    assert.equal(appliedFor(second.seq)!.detail!.applied, false);
    assert.match(String(appliedFor(second.seq)!.detail!.note), /already suspended/);
    s.close();
  });

  it('kill: the session ends through its front door with a reason that names the alert', async () => {
    let ended: unknown;
    const s = core.sessions.open({ principal: core.config().principals.get('vendor')!, chain: ['vendor'], target: 'plc-1', listener: 'test', protocol: 'modbus', remote: '127.0.0.1:1', attributes: {} }, (end) => (ended = end));
    const { alert, seq } = await raise('cross_zone', { session: s.id });
    await containment.apply(alert, seq);
    assert.equal(s.active, false);
    assert.equal(core.sessions.get(s.id), undefined);
    assert.match(String((ended as { detail?: string }).detail), new RegExp(`containment of alert\\.cross_zone \\(journal seq ${seq}\\)`));
    const killed = await until(() => events('session.killed').find((e) => e.session === s.id), 'session.killed');
    assert.equal((killed.detail as { reason: string }).reason, 'killed');
    assert.deepEqual(appliedFor(seq)!.detail, { alert: { kind: 'cross_zone', seq }, action: 'kill', applied: true, session: s.id });
  });

  it('revoke: the grant is revoked with the alert as reason, and sessions that used it end', async () => {
    const s = openTestSession(core, 'vendor');
    assert.equal((await core.authorize(s, read(100))).effect, 'allow');
    const { alert, seq } = await raise('new_target', { session: s.id, grant: 'g-revoke' });
    await containment.apply(alert, seq);
    const g = core.grants.get('g-revoke')!;
    assert.ok(g.revoked, 'revoked');
    assert.deepEqual(g.revoked.by, CONTAINMENT_OPERATOR);
    assert.match(g.revoked.reason, new RegExp(`alert\\.new_target \\(journal seq ${seq}\\)`));
    assert.equal(s.active, false, 'the session that used it ended');
    const revoked = await until(() => events('grant.revoked').find((e) => e.detail?.grant === 'g-revoke'), 'grant.revoked');
    assert.deepEqual(revoked.detail!.sessions_ended, [s.id]);
    assert.deepEqual(appliedFor(seq)!.detail, { alert: { kind: 'new_target', seq }, action: 'revoke', applied: true, session: s.id, grant: 'g-revoke' });
    // Revoking twice is not an error: logged, with why.
    const again = await raise('new_target', { grant: 'g-revoke' });
    await containment.apply(again.alert, again.seq);
    assert.equal(appliedFor(again.seq)!.detail!.applied, false);
    assert.match(String(appliedFor(again.seq)!.detail!.note), /already revoked/);
  });

  it('require_approval: every allow by the grant, in any session, waits for a person until released', async () => {
    const s = openTestSession(core, 'other', 'plc-1');
    const { alert, seq } = await raise('programming', { principal: 'other', grant: 'g-other' });
    await containment.apply(alert, seq);
    assert.deepEqual(appliedFor(seq)!.detail, { alert: { kind: 'programming', seq }, action: 'require_approval', applied: true, grant: 'g-other' });

    // The admin view says so.
    const context = { core } as unknown as AdminContext;
    const listed = (await adminCommands['grants.list']!.handler({} as never, { operator: OPERATOR, context })) as { id: string; approval_required?: unknown }[];
    assert.deepEqual(listed.find((g) => g.id === 'g-other')!.approval_required, { alert: { kind: 'programming', seq }, since: new Date(clock.now()).toISOString() });
    assert.equal(listed.find((g) => g.id === 'g-vendor')!.approval_required, undefined);

    const fresh = openTestSession(core, 'other', 'plc-1');
    const pending = core.authorize(fresh, write(4, 4));
    const ask = await until(() => core.approvals.list().find((a) => a.session === fresh.id), 'the approval request');
    assert.deepEqual(ask.alert, { kind: 'programming', seq });
    assert.equal(ask.grant, 'g-other');
    core.approvals.approve(ask.id, OPERATOR);
    assert.equal((await pending).effect, 'allow');
    // policy check (the dry run) says so too.
    const dry = core.explain('other', write(4, 4));
    assert.equal(dry.effect, 'approve');
    assert.match(dry.explanation, new RegExp(`containment of alert\\.programming \\(journal seq ${seq}\\)`));
    // Another principal's grant is not held.
    const v = openTestSession(core, 'vendor');
    assert.equal((await core.authorize(v, write(4, 4))).effect, 'allow');

    await adminCommands['grants.release']!.handler({ id: 'g-other' } as never, { operator: OPERATOR, context });
    const lifted = events('containment.lifted').find((e) => e.detail?.grant === 'g-other')!;
    assert.deepEqual(lifted.detail, { action: 'require_approval', grant: 'g-other', alert: { kind: 'programming', seq }, by: OPERATOR });
    assert.equal(lifted.principal, 'other');
    assert.equal((await core.authorize(s, write(4, 5))).effect, 'allow', 'released: allowed at once');
    await assert.rejects(core.releaseGrant('g-other', OPERATOR), (e) => isPenstockError(e, 'PS_NOT_CONTAINED'));
    for (const x of [s, fresh, v]) x.close();
  });

  it('an alert without the session or grant its action needs is logged, said so, and never throws', async () => {
    const ended = openTestSession(core, 'vendor');
    ended.close();
    const cases: [AlertKind, Partial<Alert>, RegExp][] = [
      ['probing', {}, /names no session/],
      ['probing', { session: ended.id }, /already ended/],
      ['cross_zone', { session: 's-unknown' }, /already ended/],
      ['new_target', {}, /names no grant or target/],
      ['new_target', { principal: 'other', target: 'plc-1' }, /holds 2 on plc-1 \(g-other, g-other-read\)/],
      ['programming', { target: 'plc-9' }, /holds none on plc-9/],
      ['new_target', { grant: 'g-nope' }, /no grant g-nope/],
      ['programming', { grant: 'g-nope' }, /no grant g-nope/],
    ];
    for (const [kind, over, note] of cases) {
      const { alert, seq } = await raise(kind, over);
      await containment.apply(alert, seq);
      const applied = appliedFor(seq)!;
      assert.equal(applied.detail!.applied, false, `${kind} ${JSON.stringify(over)}`);
      assert.match(String(applied.detail!.note), note);
    }
  });

  it('an alert naming a target but no grant acts on the principal\'s only grant on that target', async () => {
    // vendor's g-revoke was revoked above: g-vendor is its one grant on plc-1 left.
    const { alert, seq } = await raise('programming', { target: 'plc-1' });
    await containment.apply(alert, seq);
    assert.deepEqual(appliedFor(seq)!.detail, { alert: { kind: 'programming', seq }, action: 'require_approval', applied: true, grant: 'g-vendor', grant_from: 'target' });
    assert.deepEqual(core.grantHolds().map((h) => h.grant), ['g-vendor']);
    await core.releaseGrant('g-vendor', OPERATOR);
  });

  it('reads the config at each alert: a kind not configured is only logged', async () => {
    const s = openTestSession(core, 'vendor');
    const quiet = new Containment(core, () => ({ probing: { action: 'log' } }));
    const { alert, seq } = await raise('probing', { session: s.id });
    await quiet.apply(alert, seq);
    assert.equal(quiet.actionFor('cross_zone'), 'log');
    assert.equal(appliedFor(seq), undefined);
    assert.equal(s.suspended, undefined);
    s.close();
  });
});
