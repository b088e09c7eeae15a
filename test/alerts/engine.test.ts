// The alert engine on a real core (real LMDB journal, real policy): actions go through core.authorize
// as a front door's would, the engine follows the journal's committed events, and the alerts are
// asserted in the journal itself, with the seqs of the events that triggered them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import type { Action } from '../../src/policy/types.ts';
import type { StoredEvent } from '../../src/journal/event.ts';
import { EVENT_CODES } from '../../src/journal/codes.ts';
import { AlertEngine, coreEnvironment } from '../../src/alerts/engine.ts';
import type { Alert } from '../../src/alerts/types.ts';
import { tempDir } from '../support.ts';
import { openTestSession, startTestCore, type TestCore } from '../core-harness.ts';

const clock = new ManualClock(Date.parse('2026-12-05T09:00:00Z'));
const write = (address: number, value: number, target = 'plc-1'): Action => ({ target, verb: 'write', object: { kind: 'modbus', unit: 1, functionCode: 6, table: 'holding_register', address, quantity: 1, values: [value] } });

const yaml = (dir: string) => `
appliance: { id: gw-alerts, site: test, zone: ot, state_dir: ${dir}/state }
alerts:
  probing: { denials: 50, retries: 3 }
  unusual_write: { min_samples: 5 }
principals:
  - { id: vendor-a, kind: vendor, owner: A Ltd, purpose: test }
  - { id: vendor-b, kind: vendor, owner: B Ltd, purpose: test }
targets:
  - { id: plc-1, protocol: modbus, zone: ot, host: 127.0.0.1, port: 1502 }
  - { id: erp-1, protocol: modbus, zone: it, host: 127.0.0.1, port: 1503 }
grants:
  - id: g-a
    principal: vendor-a
    targets: [plc-1]
    task: { ticket: T-1 }
    rules: [{ modbus: { access: write, tables: [holding_register], addresses: ["0-9"] } }]
  - id: g-it
    principal: vendor-a
    targets: [erp-1]
    task: { ticket: T-2 }
    rules: [{ modbus: { access: write, tables: [holding_register], addresses: ["0-9"] } }]
  - id: g-next-week
    principal: vendor-b
    targets: [plc-1]
    task: { ticket: T-3 }
    window: { from: "2026-12-12T08:00:00Z", to: "2026-12-12T17:00:00Z" }
    rules: [{ modbus: { access: write, tables: [holding_register], addresses: ["0-9"] } }]
`;

/** Start an engine on the core, as the daemon does; every alert it tells is collected with its seq. */
function engineOn(t: TestCore) {
  const told: { alert: Alert; seq: number }[] = [];
  const engine = new AlertEngine({ journal: t.journal, clock, settings: () => t.core.config().raw.alerts, env: coreEnvironment(t.core), onAlert: (alert, seq) => told.push({ alert, seq }) });
  engine.start();
  return { engine, told };
}

async function settle(t: TestCore, engine: AlertEngine): Promise<void> {
  await t.core.recorded();
  await engine.settled();
}

const alertsIn = (events: StoredEvent[]) => events.filter((e) => e.event.startsWith('alert.') && e.event !== 'alert.denial_burst');

describe('alert engine on a real core', () => {
  let tmp: { dir: string; cleanup: () => void };
  let t: TestCore;

  before(async () => {
    tmp = tempDir('penstock-alerts-');
    t = await startTestCore(tmp.dir, yaml(tmp.dir), { clock });
  });
  after(async () => {
    await t.stop();
    tmp.cleanup();
  });

  it('a probing sequence (denied, then the next registers) journals one alert.probing naming the denials and retries, and tells onAlert its seq', async () => {
    const { engine, told } = engineOn(t);
    try {
      const s = openTestSession(t.core, 'vendor-a');
      for (const address of [20, 21, 22, 23, 24]) {
        assert.equal((await t.core.authorize(s, write(address, 1))).effect, 'deny');
        clock.advance(200);
      }
      await settle(t, engine);
      const events = t.events();
      const alerts = alertsIn(events);
      assert.deepEqual(alerts.map((e) => [e.event, e.code]), [['alert.probing', EVENT_CODES['alert.probing']]]);
      const probing = alerts[0]!;
      assert.equal(probing.principal, 'vendor-a');
      assert.equal(probing.session, s.id);
      assert.deepEqual(probing.chain, ['vendor-a']);
      assert.equal(probing.detail?.sign, 'retries');
      // Every trigger is one of the denials, in the journal, of this session.
      const denials = events.filter((e) => e.event === 'action.denied' && e.session === s.id).map((e) => e.seq);
      const triggers = probing.detail?.triggers as number[];
      assert.ok(triggers.length >= 4);
      assert.ok(triggers.every((seq) => denials.includes(seq)), `triggers ${triggers} are denials ${denials}`);
      assert.deepEqual(told.map((x) => [x.alert.kind, x.seq]), [['probing', probing.seq]]);
      s.terminate({ reason: 'shutdown' });
      await settle(t, engine);
    } finally {
      engine.stop();
    }
  });

  it('learns the usual band from the journal at start, then a write far outside it journals alert.unusual_write', async () => {
    const s = openTestSession(t.core, 'vendor-a');
    for (const v of [100, 104, 98, 101, 103, 99]) assert.equal((await t.core.authorize(s, write(5, v))).effect, 'allow');
    await t.core.recorded();
    // Started after those writes: what it knows of register 5 it read from the journal.
    const { engine } = engineOn(t);
    try {
      assert.equal((await t.core.authorize(s, write(5, 102))).effect, 'allow');
      assert.equal((await t.core.authorize(s, write(5, 5000))).effect, 'allow');
      await settle(t, engine);
      const events = t.events();
      const unusual = events.filter((e) => e.event === 'alert.unusual_write');
      assert.equal(unusual.length, 1);
      const trigger = events.find((e) => e.seq === (unusual[0]!.detail?.triggers as number[])[0]);
      assert.equal(trigger?.event, 'action.allowed');
      assert.deepEqual((trigger?.action?.modbus as { values: number[] }).values, [5000]);
      assert.deepEqual([unusual[0]!.detail?.usual_min, unusual[0]!.detail?.usual_max], [98, 104]);
      s.terminate({ reason: 'shutdown' });
      await settle(t, engine);
    } finally {
      engine.stop();
    }
  });

  it('a write before the grant\'s window opens journals alert.out_of_window naming the grant, once for repeated attempts', async () => {
    const { engine } = engineOn(t);
    try {
      const s = openTestSession(t.core, 'vendor-b');
      for (const v of [1, 2, 3]) assert.equal((await t.core.authorize(s, write(1, v))).reason, 'grant_not_active');
      await settle(t, engine);
      const events = t.events();
      const late = events.filter((e) => e.event === 'alert.out_of_window');
      assert.equal(late.length, 1);
      assert.equal(late[0]!.code, EVENT_CODES['alert.out_of_window']);
      assert.equal(late[0]!.principal, 'vendor-b');
      assert.match(String(late[0]!.detail?.explanation), /g-next-week/);
      const [trigger] = late[0]!.detail?.triggers as number[];
      assert.equal(events.find((e) => e.seq === trigger)?.decision?.reason, 'grant_not_active');
      s.terminate({ reason: 'shutdown' });
      await settle(t, engine);
    } finally {
      engine.stop();
    }
  });

  it('cross-zone: the same principal writing to an IT and an OT target, no grant pairing them, journals alert.cross_zone', async () => {
    const { engine } = engineOn(t);
    try {
      const before = t.events().length;
      const it1 = openTestSession(t.core, 'vendor-a', 'erp-1');
      const ot1 = openTestSession(t.core, 'vendor-a', 'plc-1');
      assert.equal((await t.core.authorize(it1, write(1, 1, 'erp-1'))).effect, 'allow');
      clock.advance(1000);
      assert.equal((await t.core.authorize(ot1, write(1, 1))).effect, 'allow');
      await settle(t, engine);
      const fresh = t.events().slice(before);
      const cross = fresh.filter((e) => e.event === 'alert.cross_zone');
      assert.equal(cross.length, 1);
      assert.deepEqual([cross[0]!.detail?.from, cross[0]!.detail?.to], [{ target: 'erp-1', zone: 'it' }, { target: 'plc-1', zone: 'ot' }]);
      for (const seq of cross[0]!.detail?.triggers as number[]) assert.ok(fresh.some((e) => e.seq === seq && !e.event.startsWith('alert.')));
      // Alerts are not fed back to the detectors: the alert event, under any detector's eyes, raises nothing.
      assert.deepEqual(engine.observe({ ...cross[0]!, event: 'alert.cross_zone' }), []);
      assert.equal(engine.observe({ ...cross[0]!, event: 'action.denied', seq: 1e9, target: 'plc-9', decision: { effect: 'deny', reason: 'no_grant', explanation: 'x' } }).length, 1);
      it1.terminate({ reason: 'shutdown' });
      ot1.terminate({ reason: 'shutdown' });
      await settle(t, engine);
    } finally {
      engine.stop();
    }
  });
});

describe('alert engine: grants issued under a live session, and settings that change', () => {
  let tmp: { dir: string; cleanup: () => void };
  let t: TestCore;
  const by = { uid: 0, user: 'root', verified: true };
  const grant = (id: string) => ({ id, principal: 'vendor-a', targets: ['plc-1'], task: { ticket: 'T-9' }, rules: [{ modbus: { access: 'write', tables: ['holding_register'], addresses: ['30-39'] } }] });

  before(async () => {
    tmp = tempDir('penstock-alerts-grants-');
    t = await startTestCore(tmp.dir, yaml(tmp.dir), { clock, runtimeGrants: true });
  });
  after(async () => {
    await t.stop();
    tmp.cleanup();
  });

  it('a grant issued for a principal while its session runs journals alert.privilege_expansion for that session, triggered by grant.issued', async () => {
    const { engine, told } = engineOn(t);
    try {
      const s = openTestSession(t.core, 'vendor-a');
      t.core.grants.issue(grant('g-wider'), by);
      await settle(t, engine);
      const events = t.events();
      const expansion = events.filter((e) => e.event === 'alert.privilege_expansion');
      assert.equal(expansion.length, 1);
      assert.equal(expansion[0]!.session, s.id);
      assert.equal(expansion[0]!.detail?.grant, 'g-wider');
      const [trigger] = expansion[0]!.detail?.triggers as number[];
      assert.equal(events.find((e) => e.seq === trigger)?.event, 'grant.issued');
      assert.deepEqual(told.map((x) => x.alert.kind), ['privilege_expansion']);
      s.terminate({ reason: 'shutdown' });
      await settle(t, engine);
    } finally {
      engine.stop();
    }
  });

  it('a kind switched off (alerts.<kind>.enabled: false, as a reload would) raises nothing; switched on again, it does', async () => {
    const base = t.core.config().raw.alerts;
    let settings = { ...base, privilege_expansion: { ...base.privilege_expansion, enabled: false } };
    const engine = new AlertEngine({ journal: t.journal, clock, settings: () => settings, env: coreEnvironment(t.core) });
    engine.start();
    try {
      const s = openTestSession(t.core, 'vendor-a');
      t.core.grants.issue(grant('g-off'), by);
      await settle(t, engine);
      const count = () => t.events().filter((e) => e.event === 'alert.privilege_expansion' && e.session === s.id).length;
      assert.equal(count(), 0);
      settings = { ...base };
      // The session opened while the kind was off: its detector starts afresh and knows only sessions opened since.
      const s2 = openTestSession(t.core, 'vendor-a');
      await t.core.recorded();
      t.core.grants.issue(grant('g-on'), by);
      await settle(t, engine);
      assert.deepEqual(t.events().filter((e) => e.event === 'alert.privilege_expansion' && e.detail?.grant === 'g-on').map((e) => e.session), [s2.id]);
      s.terminate({ reason: 'shutdown' });
      s2.terminate({ reason: 'shutdown' });
      await settle(t, engine);
    } finally {
      engine.stop();
    }
  });
});
