// Each detector on hand-made journal events (as StoredEvent, the shape onCommitted gives), with an
// injected clock: what raises an alert, that one incident raises one alert (de-duplication), that the
// quiet period ends, and that each alert names the events that triggered it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { StoredEvent } from '../../src/journal/event.ts';
import type { AlertEnvironment, Detector, GrantView } from '../../src/alerts/types.ts';
import { alertsSchema } from '../../src/config/alerts.ts';
import { DETECTORS } from '../../src/alerts/detectors/index.ts';
import { near } from '../../src/alerts/detectors/probing.ts';
import { ExpiringMap } from '../../src/alerts/detectors/common.ts';
import { protocols } from '../../src/adapters/registry.ts';

const T0 = Date.parse('2026-12-05T09:00:00Z');
const defaults = alertsSchema.parse(undefined);

/** A journal event as stored (seq given; the rest as the core writes it). */
function ev(seq: number, event: string, fields: Partial<StoredEvent> = {}): StoredEvent {
  return { seq, time: new Date(T0).toISOString(), mono: '0', code: 'PS0000I', event: event as StoredEvent['event'], appliance: 'gw', ...fields };
}
const who = (principal: string, session = `s-${principal}`, target = 'plc-1') => ({ principal, session, chain: [principal], target });
const modbus = (verb: string, o: Record<string, unknown>, target = 'plc-1') => ({ verb, target, modbus: { unit: 1, func: 'x', table: 'holding_register', quantity: 1, ...o } });
const read = (address: number) => modbus('read', { func_code: 3, address });
const write = (address: number, value: number) => modbus('write', { func_code: 6, address, values: [value] });
const denied = (reason: string, grant?: string) => ({ effect: 'deny', reason, explanation: `because ${reason}`, ...(grant ? { grant } : {}) });
const allowed = (grant = 'g-1') => ({ effect: 'allow', reason: 'rule_allows', grant, explanation: 'ok' });

function env(grants: Record<string, GrantView[]> = {}, zones: Record<string, string> = {}, chains: Record<string, string[]> = {}): AlertEnvironment {
  return { grantsOf: (p) => grants[p] ?? [], zoneOf: (t) => zones[t], chainOf: (p) => chains[p] };
}

/** Feed events at the given times (ms after T0); returns every alert in order. */
function feed(d: Detector, steps: [number, StoredEvent][], e?: AlertEnvironment) {
  return steps.flatMap(([at, event]) => d.observe(event, { now: T0 + at, ...(e ? { env: e } : {}) }));
}

describe('new target', () => {
  const d = () => DETECTORS.new_target(defaults.new_target);
  it('alerts on a no_grant denial once per principal and target, again after the quiet period', () => {
    const det = d();
    const a = feed(det, [
      [0, ev(1, 'action.denied', { ...who('ana', 's1', 'plc-9'), action: read(1), decision: denied('no_grant') })],
      [1000, ev(2, 'action.denied', { ...who('ana', 's1', 'plc-9'), action: read(2), decision: denied('no_grant') })],
      [2000, ev(3, 'action.denied', { ...who('ana', 's1', 'plc-1'), action: read(2), decision: denied('object_not_granted') })],
      [600_000, ev(4, 'action.denied', { ...who('ana', 's1', 'plc-9'), action: read(3), decision: denied('no_grant') })],
    ]);
    assert.deepEqual(a.map((x) => [x.kind, x.target, x.triggers]), [['new_target', 'plc-9', [1]], ['new_target', 'plc-9', [4]]]);
    assert.equal(a[0]!.session, 's1');
    assert.deepEqual(a[0]!.chain, ['ana']);
  });
  it('alerts on a session opened to a target no grant names, not on one a grant names', () => {
    const e = env({ ana: [{ id: 'g-1', targets: ['plc-1'] }] });
    const a = feed(d(), [[0, ev(1, 'session.opened', who('ana', 's1', 'plc-1'))], [0, ev(2, 'session.opened', who('ana', 's2', 'rtu-7'))]], e);
    assert.deepEqual(a.map((x) => [x.target, x.triggers]), [['rtu-7', [2]]]);
  });
});

describe('privilege expansion', () => {
  it('alerts per live session of the principal when a grant is issued, once per quiet period, not after the session closed', () => {
    const det = DETECTORS.privilege_expansion(defaults.privilege_expansion);
    const issued = (seq: number, targets: string[]) => ev(seq, 'grant.issued', { principal: 'ana', detail: { grant: `g-${seq}`, targets } });
    const a = feed(det, [
      [0, ev(1, 'session.opened', who('ana', 's1', 'plc-1'))],
      [0, ev(2, 'session.opened', who('bob', 's2', 'plc-1'))],
      [10, issued(3, ['rtu-9'])], // another target: the session gains nothing
      [20, issued(4, ['plc-1'])],
      [30, issued(5, ['plc-1'])], // the same incident: quiet
      [40, ev(6, 'session.closed', who('ana', 's1', 'plc-1'))],
      [700_000, issued(7, ['plc-1'])], // quiet is over, but no live session
    ]);
    assert.deepEqual(a.map((x) => [x.kind, x.session, x.grant, x.triggers]), [['privilege_expansion', 's1', 'g-4', [4]]]);
  });
  it('alerts when a person approves an action in a live session', () => {
    const det = DETECTORS.privilege_expansion(defaults.privilege_expansion);
    const a = feed(det, [[0, ev(1, 'session.opened', who('ana', 's1'))], [5, ev(2, 'approval.granted', { ...who('ana', 's1'), detail: { approval: 'ap-1' } })]]);
    assert.deepEqual(a.map((x) => [x.severity, x.triggers]), [['info', [2]]]);
  });
});

describe('out of window', () => {
  it('alerts on grant_not_active with the grant and explanation; once per principal and target per quiet period', () => {
    const det = DETECTORS.out_of_window({ ...defaults.out_of_window, quiet_seconds: 60 });
    const late = (seq: number) => ev(seq, 'action.denied', { ...who('ana'), action: read(1), decision: denied('grant_not_active', 'g-1') });
    const a = feed(det, [[0, late(1)], [59_999, late(2)], [60_000, late(3)]]);
    assert.deepEqual(a.map((x) => [x.grant, x.triggers]), [['g-1', [1]], ['g-1', [3]]]);
    assert.equal(a[0]!.detail?.explanation, 'because grant_not_active');
  });
});

describe('unexpected delegation', () => {
  const e = env({}, {}, { ana: ['ana', 'work-order:WO-1'] });
  it('alerts when a session opens with a chain other than the configured one (one that goes on beyond it agrees)', () => {
    const det = DETECTORS.unexpected_delegation(defaults.unexpected_delegation);
    const a = feed(det, [
      [0, ev(1, 'session.opened', { ...who('ana', 's1'), chain: ['ana', 'work-order:WO-1'] })],
      [0, ev(2, 'session.opened', { ...who('ana', 's2'), chain: ['ana', 'work-order:WO-9'] })],
      [0, ev(3, 'session.opened', { ...who('ana', 's3'), chain: ['ana', 'work-order:WO-1', 'plant-manager'] })],
      [0, ev(4, 'session.opened', { ...who('ana', 's4'), chain: ['ana'] })],
    ], e);
    assert.deepEqual(a.map((x) => [x.session, x.triggers, x.detail?.expected]), [['s2', [2], ['ana', 'work-order:WO-1']], ['s4', [4], ['ana', 'work-order:WO-1']]]);
  });
  it('alerts when the chain changes within a session, once per session', () => {
    const det = DETECTORS.unexpected_delegation(defaults.unexpected_delegation);
    const a = feed(det, [
      [0, ev(1, 'session.opened', { ...who('ana', 's1'), chain: ['ana', 'work-order:WO-1'] })],
      [5, ev(2, 'action.allowed', { ...who('ana', 's1'), chain: ['ana', 'work-order:WO-1'], action: read(1), decision: allowed() })],
      [6, ev(3, 'action.allowed', { ...who('ana', 's1'), chain: ['ana', 'bob'], action: read(1), decision: allowed() })],
      [7, ev(4, 'action.allowed', { ...who('ana', 's1'), chain: ['ana', 'bob'], action: read(1), decision: allowed() })],
    ], e);
    assert.deepEqual(a.map((x) => [x.session, x.triggers]), [['s1', [3]]]);
  });
});

describe('probing', () => {
  const settings = { ...defaults.probing, denials: 5, window_seconds: 10, retries: 3, retry_window_seconds: 60, quiet_seconds: 60 };
  it('a burst of denials within the window raises one alert naming them; the quiet period holds, then ends', () => {
    const det = DETECTORS.probing(settings);
    const no = (seq: number) => ev(seq, 'action.denied', { ...who('ana'), action: modbus('read', { func_code: 4 + (seq % 2) * 10, address: 0 }), decision: denied('function_not_granted') });
    // Four denials, then a pause longer than the window: no burst.
    const slow = feed(det, [[0, no(1)], [1, no(2)], [2, no(3)], [3, no(4)], [20_000, no(5)]]);
    assert.equal(slow.length, 0);
    const a = feed(det, [[20_001, no(6)], [20_002, no(7)], [20_003, no(8)], [20_004, no(9)], [20_005, no(10)], [30_000, no(11)]]);
    assert.deepEqual(a.map((x) => [x.detail?.sign, x.triggers]), [['burst', [5, 6, 7, 8, 9]]]);
    const later = feed(det, [[81_000, no(20)], [81_001, no(21)], [81_002, no(22)], [81_003, no(23)], [81_004, no(24)]]);
    assert.deepEqual(later.map((x) => x.triggers), [[20, 21, 22, 23, 24]]);
  });
  it('denied, then retried with slightly different objects: the next addresses raise one alert naming the denial and the retries', () => {
    const det = DETECTORS.probing(settings);
    const a = feed(det, [
      [0, ev(1, 'action.denied', { ...who('ana'), action: write(100, 5), decision: denied('object_not_granted') })],
      [1000, ev(2, 'action.denied', { ...who('ana'), action: write(101, 5), decision: denied('object_not_granted') })],
      [1500, ev(3, 'action.denied', { ...who('ana'), action: write(101, 5), decision: denied('object_not_granted') })], // the same object again: not a new retry
      [2000, ev(4, 'action.allowed', { ...who('ana'), action: write(102, 5), decision: allowed() })],
      [3000, ev(5, 'action.denied', { ...who('ana'), action: write(103, 5), decision: denied('object_not_granted') })],
      [4000, ev(6, 'action.denied', { ...who('ana'), action: write(104, 5), decision: denied('object_not_granted') })],
    ]);
    assert.equal(a.length, 1);
    assert.equal(a[0]!.detail?.sign, 'retries');
    assert.deepEqual(a[0]!.triggers, [1, 2, 3, 4, 5]); // 3: the same object denied again is a denial the retries were near
  });
  it('retries of another principal, target or too late do not count', () => {
    const det = DETECTORS.probing(settings);
    const a = feed(det, [
      [0, ev(1, 'action.denied', { ...who('ana'), action: write(100, 5), decision: denied('object_not_granted') })],
      [1, ev(2, 'action.allowed', { ...who('bob'), action: write(101, 5), decision: allowed() })],
      [2, ev(3, 'action.allowed', { ...who('ana', 's-ana', 'plc-2'), action: modbus('write', { func_code: 6, address: 101, values: [5] }, 'plc-2'), decision: allowed() })],
      [60_000, ev(4, 'action.allowed', { ...who('ana'), action: write(101, 5), decision: allowed() })],
      [60_001, ev(5, 'action.allowed', { ...who('ana'), action: write(102, 5), decision: allowed() })],
      [60_002, ev(6, 'action.allowed', { ...who('ana'), action: write(103, 5), decision: allowed() })],
    ]);
    assert.deepEqual(a, []);
  });
  it('near(): one number, one list item or one word of a name differs; two unrelated changes do not', () => {
    assert.ok(near({ address: 100, quantity: 2 }, { address: 102, quantity: 2 }));
    assert.ok(near({ command: 'cat /etc/passwd', argv: ['cat', '/etc/passwd'] }, { command: 'cat /etc/shadow', argv: ['cat', '/etc/shadow'] }));
    assert.ok(near({ node_id: 'ns=1;s=boiler/Setpoint1' }, { node_id: 'ns=1;s=boiler/Setpoint2' }));
    assert.ok(!near({ node_id: 'ns=1;s=boiler/Setpoint1' }, { node_id: 'ns=2;s=pump/Speed' }));
    assert.ok(!near({ argv: ['ls'] }, { argv: ['ls', '-la'] }));
    assert.ok(!near({ a: 1, b: 2, c: 3 }, { a: 2, b: 3, c: 4 }));
    assert.ok(!near({ a: 1 }, { a: 1 }));
  });
});

describe('cross-zone movement', () => {
  const zones = { 'erp-1': 'it', 'plc-1': 'ot', 'plc-2': 'ot' };
  const settings = { ...defaults.cross_zone, window_seconds: 600, quiet_seconds: 600 };
  const touch = (seq: number, target: string, session = 's1') => ev(seq, 'action.allowed', { ...who('ana', session, target), action: modbus('read', { func_code: 3, address: 0 }, target), decision: allowed() });
  it('alerts when one principal touches targets in two zones within the window, naming both events; once per pair of zones', () => {
    const det = DETECTORS.cross_zone(settings);
    const e = env({ ana: [{ id: 'g-it', targets: ['erp-1'] }, { id: 'g-ot', targets: ['plc-1', 'plc-2'] }] }, zones);
    const a = feed(det, [[0, touch(1, 'erp-1')], [1000, touch(2, 'plc-2')], [2000, touch(3, 'plc-1', 's2')], [3000, touch(4, 'erp-1', 's3')], [4000, touch(5, 'plc-1')]], e);
    assert.deepEqual(a.map((x) => [x.kind, x.severity, x.triggers, x.session]), [['cross_zone', 'critical', [1, 2], 's1']]);
    assert.deepEqual(a[0]!.detail?.from, { target: 'erp-1', zone: 'it' });
  });
  it('does not alert when a grant pairs the two targets, or when the window has passed', () => {
    const paired = env({ ana: [{ id: 'g-both', targets: ['erp-1', 'plc-1'] }] }, zones);
    assert.deepEqual(feed(DETECTORS.cross_zone(settings), [[0, touch(1, 'erp-1')], [5, touch(2, 'plc-1')]], paired), []);
    const apart = env({}, zones);
    assert.deepEqual(feed(DETECTORS.cross_zone(settings), [[0, touch(1, 'erp-1')], [600_000, touch(2, 'plc-1')]], apart), []);
  });
});

describe('programming activity', () => {
  it('alerts on a Modbus programming function code even when allowed, once per session per quiet period', () => {
    const det = DETECTORS.programming(defaults.programming);
    const prog = (seq: number, session: string) => ev(seq, 'action.allowed', { ...who('ana', session), action: { verb: 'program', target: 'plc-1', modbus: { unit: 1, func_code: 90, table: null, address: 0, quantity: 0 } }, decision: allowed() });
    const a = feed(det, [
      [0, ev(1, 'action.allowed', { ...who('ana', 's1'), action: write(1, 1), decision: allowed() })],
      [1, prog(2, 's1')],
      [2, prog(3, 's1')],
      [3, prog(4, 's2')],
      [600_001, prog(5, 's1')],
    ]);
    assert.deepEqual(a.map((x) => [x.severity, x.session, x.triggers]), [['critical', 's1', [2]], ['critical', 's2', [4]], ['critical', 's1', [5]]]);
  });
  it('the Modbus module names its programming codes (diagnostics 8 is one, a register write is not)', () => {
    const det = DETECTORS.programming(defaults.programming);
    const fc = (seq: number, code: number) => ev(seq, 'action.denied', { ...who('ana', `s${seq}`), action: modbus('diagnostic', { func_code: code, address: 0 }), decision: denied('function_not_granted') });
    assert.deepEqual(feed(det, [[0, fc(1, 8)], [0, fc(2, 16)], [0, fc(3, 125)]]).map((x) => [x.severity, x.triggers]), [['warning', [1]], ['warning', [3]]]);
  });
});

describe('write outside the usual band', () => {
  const settings = { ...defaults.unusual_write, min_samples: 5, band_factor: 1, quiet_seconds: 600 };
  const w = (seq: number, address: number, value: number) => ev(seq, 'action.allowed', { ...who('ana'), action: write(address, value), decision: allowed() });
  it('learns a point\'s band from allowed writes, alerts on a value far outside once per quiet period, and does not learn it', () => {
    const det = DETECTORS.unusual_write(settings);
    const learnt = [100, 110, 120, 105, 115].map((v, i): [number, StoredEvent] => [i, w(i + 1, 40, v)]);
    assert.deepEqual(feed(det, learnt), []);
    // Band 100..120, width 20: 140 passes (and widens it to 100..140, so 60..180 passes); 500 does not; another point is its own.
    const a = feed(det, [[10, w(10, 40, 140)], [11, w(11, 40, 500)], [12, w(12, 40, 600)], [13, w(13, 41, 9999)], [600_011, w(14, 40, 181)]]);
    assert.deepEqual(a.map((x) => [x.triggers, x.detail?.value, x.detail?.usual_min, x.detail?.usual_max]), [[[11], 500, 100, 140], [[14], 181, 100, 140]]);
  });
  it('learns from history without alerting (Detector.learn), then judges live writes by it', () => {
    const det = DETECTORS.unusual_write(settings);
    for (let i = 0; i < 5; i++) det.learn!(w(i, 40, 10 + i));
    assert.deepEqual(feed(det, [[0, w(10, 40, 100)]]).map((x) => x.triggers), [[10]]);
  });
  it('judges an OPC UA node\'s numeric writes by the node (the module says which values a write puts where)', () => {
    const det = DETECTORS.unusual_write(settings);
    const node = (seq: number, nodeId: string, value: unknown) => ev(seq, 'action.allowed', { ...who('ana', 's1', 'opc-1'), action: { verb: 'write', target: 'opc-1', opcua: { node_id: nodeId, value } }, decision: allowed() });
    const steps: [number, StoredEvent][] = [20, 21, 22, 21, 20].map((v, i) => [i, node(i + 1, 'ns=1;s=Boiler/Setpoint', v)]);
    steps.push([10, node(10, 'ns=1;s=Boiler/Other', 900)], [11, node(11, 'ns=1;s=Boiler/Setpoint', '18446744073709551615')], [12, node(12, 'ns=1;s=Boiler/Setpoint', 95)]);
    assert.deepEqual(feed(det, steps).map((x) => [x.triggers, x.detail?.point]), [[[12], 'ns=1;s=Boiler/Setpoint']]);
  });
  it('the Modbus module says where each value of a multiple write lands; a mask write (FC 22) puts no values', () => {
    const m = protocols.get('modbus')!;
    assert.deepEqual(m.writtenValues!({ unit: 1, func_code: 16, table: 'holding_register', address: 40, quantity: 2, values: [7, 8] }, 'write'), [{ point: '1/holding_register/40', value: 7 }, { point: '1/holding_register/41', value: 8 }]);
    assert.deepEqual(m.writtenValues!({ unit: 1, func_code: 22, table: 'holding_register', address: 40, quantity: 1 }, 'write'), []);
    assert.deepEqual(m.writtenValues!({ unit: 1, func_code: 3, table: 'holding_register', address: 40, quantity: 1 }, 'read'), []);
  });
  it('needs min_samples writes before a band is trusted', () => {
    const det = DETECTORS.unusual_write(settings);
    assert.deepEqual(feed(det, [[0, w(1, 40, 1)], [1, w(2, 40, 1)], [2, w(3, 40, 50_000)]]), []);
  });
});

describe('bounded state', () => {
  it('an ExpiringMap holds at most its cap, dropping the least recently set first, and forgets after its time to live', () => {
    const m = new ExpiringMap<string, number>(1000, 3);
    for (const [i, k] of ['a', 'b', 'c', 'd'].entries()) m.set(k, i, 0);
    assert.ok(m.size <= 3);
    assert.equal(m.get('a', 0), undefined);
    assert.equal(m.get('d', 999), 3);
    assert.equal(m.get('d', 1000), undefined);
    m.set('e', 5, 2000);
    assert.equal(m.size, 1);
  });
  it('a probing detector fed twenty thousand principals (twice its cap) stays quick and still works', () => {
    const det = DETECTORS.probing({ ...defaults.probing, denials: 2 });
    const started = performance.now();
    for (let i = 0; i < 20_000; i++) det.observe(ev(i, 'action.denied', { ...who(`p${i}`), action: read(1), decision: denied('no_grant') }), { now: T0 });
    const a = feed(det, [[0, ev(1e6, 'action.denied', { ...who('z'), action: read(1), decision: denied('no_grant') })], [1, ev(1e6 + 1, 'action.denied', { ...who('z'), action: read(2), decision: denied('no_grant') })]]);
    assert.equal(a.length, 1);
    assert.ok(performance.now() - started < 5000, 'linear in the events, not in events × cap');
  });
});

describe('the alerts: config section', () => {
  it('defaults every kind to enabled, action log; rejects an unknown key and an unknown action', () => {
    for (const kind of Object.keys(DETECTORS) as (keyof typeof DETECTORS)[]) {
      assert.equal(defaults[kind].enabled, true);
      assert.equal(defaults[kind].action, 'log');
    }
    assert.equal(defaults.probing.denials, 10);
    assert.deepEqual(alertsSchema.safeParse({ probing: { denial: 3 } }).error?.issues.map((i) => [i.code, i.path]), [['unrecognized_keys', ['probing']]]);
    assert.deepEqual(alertsSchema.safeParse({ cross_zone: { action: 'shoot' } }).error?.issues.map((i) => i.path), [['cross_zone', 'action']]);
    assert.deepEqual(alertsSchema.safeParse({ unknown_kind: {} }).error?.issues.map((i) => i.code), ['unrecognized_keys']);
    assert.equal(alertsSchema.parse({ cross_zone: { action: 'kill', window_seconds: 60 } }).cross_zone.window_seconds, 60);
  });
});
