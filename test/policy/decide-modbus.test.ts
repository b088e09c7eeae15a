import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide } from '../../src/policy/decide.ts';
import type { Action, Verb } from '../../src/policy/types.ts';
import type { ModbusObject, ModbusTable } from '../../src/adapters/modbus/rules.ts';
import { ctx, grant, words32 } from './fixtures.ts';

function mb(fc: number, table: ModbusTable | null, address: number, quantity: number, opts: { unit?: number; values?: number[]; verb?: Verb; target?: string; scaleFactors?: Record<string, number> } = {}): Action {
  const object: ModbusObject = { kind: 'modbus', unit: opts.unit ?? 1, functionCode: fc, table, address, quantity, ...(opts.values ? { values: opts.values } : {}), ...(opts.scaleFactors ? { scaleFactors: opts.scaleFactors } : {}) };
  const verb: Verb = opts.verb ?? ([5, 6, 15, 16, 22].includes(fc) ? 'write' : table === null ? 'other' : 'read');
  return { target: opts.target ?? 'plc-raw', verb, object };
}

const read3 = (a: number, q: number, o = {}) => mb(3, 'holding_register', a, q, o);
const write16 = (a: number, values: number[], o = {}) => mb(16, 'holding_register', a, values.length, { values, ...o });

test('preset readonly allows reads and refuses writes as function_not_granted', () => {
  const c = ctx([grant('G', [{ modbus: { preset: 'readonly' } }])]);
  const ok = decide(read3(0, 10), c);
  assert.equal(ok.effect, 'allow');
  assert.equal(ok.reason, 'rule_allows');
  assert.equal(ok.grant, 'G');
  assert.equal(ok.rule, 'G#0');
  assert.match(ok.explanation, /G#0/);
  for (const fc of [1, 2, 4]) {
    const table = ({ 1: 'coil', 2: 'discrete_input', 4: 'input_register' } as const)[fc as 1 | 2 | 4];
    assert.equal(decide(mb(fc, table, 0, 1), c).effect, 'allow', `FC ${fc}`);
  }
  for (const fc of [7, 11, 12, 20, 43]) assert.equal(decide(mb(fc, null, 0, 0), c).effect, 'allow', `FC ${fc}`);
  const w = decide(mb(6, 'holding_register', 0, 1, { values: [1] }), c);
  assert.equal(w.effect, 'deny');
  assert.equal(w.reason, 'function_not_granted');
  assert.equal(w.rule, undefined);
});

test('diagnostics, file records and vendor codes need a rule that names them', () => {
  const rw = ctx([grant('G', [{ modbus: { preset: 'readwrite' } }])]);
  for (const fc of [8, 17, 21, 90, 125, 126]) {
    const d = decide(mb(fc, null, 0, 0), rw);
    assert.equal(d.reason, 'function_not_granted', `FC ${fc} under readwrite`);
  }
  const byAccess = ctx([grant('G', [{ modbus: { access: 'readwrite' } }])]);
  for (const fc of [20, 21, 43, 8]) assert.equal(decide(mb(fc, null, 0, 0), byAccess).reason, 'function_not_granted', `FC ${fc} under access`);
  const prog = ctx([grant('G', [{ modbus: { preset: 'programming' } }])]);
  for (const fc of [8, 21, 90, 125, 126]) assert.equal(decide(mb(fc, null, 0, 0, { verb: 'program' }), prog).effect, 'allow', `FC ${fc} under programming`);
  assert.equal(decide(read3(0, 1), prog).reason, 'function_not_granted');
  const named = ctx([grant('G', [{ modbus: { function_codes: [8] } }])]);
  assert.equal(decide(mb(8, null, 0, 0, { verb: 'diagnostic' }), named).effect, 'allow');
  assert.equal(decide(mb(90, null, 0, 0), named).reason, 'function_not_granted');
});

test('access grants the read or write functions of its tables only', () => {
  const c = ctx([grant('G', [{ modbus: { access: 'read', tables: ['holding_register'] } }])]);
  assert.equal(decide(read3(5, 2), c).effect, 'allow');
  assert.equal(decide(mb(4, 'input_register', 5, 2), c).reason, 'function_not_granted');
  assert.equal(decide(write16(5, [1]), c).reason, 'function_not_granted');
  const w = ctx([grant('G', [{ modbus: { access: 'write', tables: ['coil'] } }])]);
  assert.equal(decide(mb(5, 'coil', 3, 1, { values: [1] }), w).effect, 'allow');
  assert.equal(decide(mb(15, 'coil', 3, 2, { values: [1, 0] }), w).effect, 'allow');
  assert.equal(decide(mb(1, 'coil', 3, 1), w).reason, 'function_not_granted');
});

test('FC 23 arrives as a read and a write, and each half is checked on its own', () => {
  const halves = (rAddr: number, wAddr: number): [Action, Action] => [
    mb(23, 'holding_register', rAddr, 2, { verb: 'read' }),
    mb(23, 'holding_register', wAddr, 2, { verb: 'write', values: [7, 8] }),
  ];
  const rw = ctx([grant('G', [{ modbus: { preset: 'readwrite', addresses: ['100-199'] } }])]);
  for (const a of halves(100, 150)) assert.equal(decide(a, rw).effect, 'allow');
  const [r, w] = halves(100, 199);
  assert.equal(decide(r, rw).effect, 'allow');
  assert.equal(decide(w, rw).reason, 'object_not_granted', 'write half runs past 199');
  const readOnly = ctx([grant('G', [{ modbus: { access: 'read' } }])]);
  assert.equal(decide(halves(0, 0)[0], readOnly).effect, 'allow');
  assert.equal(decide(halves(0, 0)[1], readOnly).reason, 'function_not_granted');
  const both = ctx([grant('G', [{ modbus: { access: 'readwrite', tables: ['holding_register'] } }])]);
  for (const a of halves(0, 10)) assert.equal(decide(a, both).effect, 'allow');
});

test('units, tables and whole address ranges restrict the objects', () => {
  const c = ctx([grant('G', [{ modbus: { preset: 'readwrite', units: [1], tables: ['holding_register'], addresses: ['100-109', '110-119', 200] } }])]);
  assert.equal(decide(read3(100, 10), c).effect, 'allow');
  assert.equal(decide(read3(105, 10), c).effect, 'allow', 'adjacent ranges cover the request together');
  assert.equal(decide(read3(200, 1), c).effect, 'allow');
  const edge = decide(read3(115, 6), c);
  assert.equal(edge.reason, 'object_not_granted', 'a request straddling the end of a range');
  assert.match(edge.explanation, /115-120/);
  assert.equal(decide(read3(100, 1, { unit: 2 }), c).reason, 'object_not_granted');
  assert.equal(decide(mb(1, 'coil', 100, 1), c).reason, 'object_not_granted');
  assert.equal(decide(mb(43, null, 0, 0), c).reason, 'object_not_granted', 'a table-less function is outside a rule narrowed to tables');
});

test('raw bounds check every written value', () => {
  const c = ctx([grant('G', [{ modbus: { access: 'write', addresses: ['0-99'], min: 10, max: 100 } }])]);
  assert.equal(decide(write16(0, [10, 55, 100]), c).effect, 'allow');
  const bad = decide(write16(0, [10, 101]), c);
  assert.equal(bad.reason, 'value_out_of_bounds');
  assert.match(bad.explanation, /101/);
  assert.equal(decide(write16(0, [9]), c).reason, 'value_out_of_bounds');
  assert.equal(decide(mb(22, 'holding_register', 0, 1, { values: [0xff00, 0x0001] }), c).reason, 'value_out_of_bounds', 'a mask write cannot be bounded');
  assert.equal(decide(mb(6, 'holding_register', 0, 1), c).reason, 'value_out_of_bounds', 'a write whose values are unknown');
});

test('points expand to their registers and bound writes in engineering units', () => {
  const at = { target: 'plc-1' };
  const c = ctx([grant('G', [{ modbus: { preset: 'readwrite', points: ['setpoints.*'] } }])]);
  assert.equal(decide(read3(40100, 1, at), c).effect, 'allow');
  assert.equal(decide(read3(40102, 4, at), c).effect, 'allow', 'VRef and Offset together');
  assert.equal(decide(read3(40100, 6, at), c).reason, 'object_not_granted', '40101 belongs to no point');
  assert.equal(decide(read3(40106, 1, at), c).reason, 'object_not_granted', '* does not cross a dot: setpoints.deep.X');
  assert.equal(decide(read3(40110, 1, at), c).reason, 'object_not_granted', 'status.* is not named');

  // WMaxLimPct: uint16, scale -1, safe 0..100 %
  assert.equal(decide(write16(40100, [1000], at), c).effect, 'allow', '100.0 % is on the bound');
  assert.equal(decide(write16(40100, [1001], at), c).reason, 'value_out_of_bounds');
  // VRef: float32 200..260 V
  assert.equal(decide(write16(40102, words32('float32', 230.5), at), c).effect, 'allow');
  assert.equal(decide(write16(40102, words32('float32', 300), at), c).reason, 'value_out_of_bounds');
  assert.equal(decide(write16(40102, [0x7fc0, 0], at), c).reason, 'value_out_of_bounds', 'NaN is never in bounds');
  // Offset: int32 -10..10
  assert.equal(decide(write16(40104, words32('int32', -5), at), c).effect, 'allow');
  assert.equal(decide(write16(40104, words32('int32', -11), at), c).reason, 'value_out_of_bounds');
  // partial writes of a 32-bit point
  assert.equal(decide(write16(40103, [0], at), c).reason, 'object_not_granted');
  assert.equal(decide(write16(40104, [0, 0, 5], at), c).reason, 'object_not_granted', '40106 is not matched by setpoints.*');
  const partial = decide(write16(40105, [0], at), c);
  assert.equal(partial.reason, 'object_not_granted');
  assert.match(partial.explanation, /part of point setpoints\.Offset/);

  const tighter = ctx([grant('G', [{ modbus: { access: 'write', points: ['setpoints.WMaxLimPct'], max: 80 } }])]);
  assert.equal(decide(write16(40100, [800], at), tighter).effect, 'allow');
  assert.equal(decide(write16(40100, [801], at), tighter).reason, 'value_out_of_bounds', "the rule's own bound is tighter than the profile's");
});

test('a point scaled by a register of the device is bounded in engineering units once the factor is known', () => {
  const at = { target: 'plc-1' };
  const c = ctx([grant('G', [{ modbus: { access: 'write', points: ['limits.VArPct'], max: 80 } }])]);
  const sf = (e: number) => ({ ...at, scaleFactors: { 'limits.VArPct_SF': e } });
  assert.equal(decide(write16(40120, [5000], sf(-2)), c).effect, 'allow', '5000 x 10^-2 = 50 %');
  assert.equal(decide(write16(40120, [9000], sf(-2)), c).reason, 'value_out_of_bounds', '90 % is over the rule');
  assert.equal(decide(write16(40120, [50], sf(0)), c).effect, 'allow', 'the same rule, a device with factor 0');
  assert.equal(decide(write16(40120, [90], sf(0)), c).reason, 'value_out_of_bounds');
  // Not read (yet, or the device did not answer): the value is unknown, so a bounded write is refused.
  const unknown = decide(write16(40120, [50], at), c);
  assert.equal(unknown.reason, 'value_out_of_bounds');
  assert.match(unknown.explanation, /scale factor limits\.VArPct_SF could not be read/);
  // A device answering 0x8000 ("not implemented") is no exponent: raw / 10^32768 would pass any bound.
  assert.equal(decide(write16(40120, [65535], sf(-32768)), c).reason, 'malformed');
});

test('word order of the profile decides how 32-bit points decode', () => {
  const c = ctx([grant('G', [{ modbus: { access: 'write', points: ['setpoints.VRef'] } }])]);
  const [hi, lo] = words32('float32', 230);
  assert.equal(decide(write16(40102, [lo, hi], { target: 'plc-le' }), c).effect, 'allow');
  assert.equal(decide(write16(40102, [hi, lo], { target: 'plc-le' }), c).reason, 'value_out_of_bounds');
  assert.equal(decide(write16(40102, [hi, lo], { target: 'plc-1' }), c).effect, 'allow');
});

test('a read-only point is never written, whatever the rule says', () => {
  const at = { target: 'plc-1' };
  const byPoint = ctx([grant('G', [{ modbus: { preset: 'readwrite', points: ['status.*'] } }])]);
  assert.equal(decide(read3(40110, 2, at), byPoint).effect, 'allow');
  assert.equal(decide(write16(40110, [1], at), byPoint).reason, 'object_not_granted');
  const byAddress = ctx([grant('G', [{ modbus: { preset: 'readwrite', addresses: ['40000-40199'] } }])]);
  assert.equal(decide(write16(40109, [1, 2], at), byAddress).reason, 'object_not_granted');
  assert.equal(decide(write16(40109, [1, 2], { target: 'plc-raw' }), byAddress).effect, 'allow', 'a target without a profile has no read-only points');
  const noProfile = ctx([grant('G', [{ modbus: { preset: 'readwrite', points: ['status.*'] } }])]);
  assert.equal(decide(read3(40110, 1), noProfile).reason, 'object_not_granted', 'points on a target without profile name nothing');
});

test('deny beats approve beats allow, and a deny rule refuses anything it touches', () => {
  const g = grant('G', [
    { modbus: { preset: 'readwrite', addresses: ['0-999'] } },
    { modbus: { effect: 'deny', access: 'write', addresses: ['100-110'] } },
    { modbus: { effect: 'approve', access: 'write', addresses: ['500-599'] } },
  ]);
  const c = ctx([g]);
  assert.equal(decide(write16(50, [1]), c).effect, 'allow');
  const straddle = decide(write16(95, [1, 2, 3, 4, 5, 6, 7, 8]), c);
  assert.equal(straddle.effect, 'deny');
  assert.equal(straddle.reason, 'rule_denies');
  assert.equal(straddle.rule, 'G#1');
  assert.equal(decide(read3(100, 5), c).effect, 'allow', 'the deny rule is about writes');
  const appr = decide(write16(550, [1]), c);
  assert.equal(appr.effect, 'approve');
  assert.equal(appr.reason, 'rule_requires_approval');
  assert.equal(appr.rule, 'G#2');
  // Deny in one grant wins over allow in another.
  const other = grant('H', [{ modbus: { effect: 'deny', function_codes: [16] } }]);
  assert.equal(decide(write16(50, [1]), ctx([g, other])).rule, 'H#0');
});

test('a deny rule with bounds refuses writes that may land inside them', () => {
  const c = ctx([grant('G', [
    { modbus: { access: 'write', addresses: ['0-9'] } },
    { modbus: { effect: 'deny', access: 'write', addresses: ['0-9'], min: 900 } },
  ])]);
  assert.equal(decide(write16(0, [10, 899]), c).effect, 'allow');
  assert.equal(decide(write16(0, [10, 900]), c).reason, 'rule_denies');
  assert.equal(decide(mb(22, 'holding_register', 0, 1, { values: [0, 0] }), c).reason, 'rule_denies', 'a mask write might reach the bounds');
});

test('malformed Modbus objects are denied as malformed', () => {
  const c = ctx([grant('G', [{ modbus: { preset: 'readwrite' } }])]);
  assert.equal(decide(mb(3, 'coil', 0, 1), c).reason, 'malformed');
  assert.equal(decide(mb(3, 'holding_register', 65535, 2), c).reason, 'malformed');
  assert.equal(decide(mb(3, 'holding_register', 0, 0), c).reason, 'malformed');
  assert.equal(decide(mb(16, 'holding_register', 0, 2, { values: [1] }), c).reason, 'malformed');
  assert.equal(decide(mb(6, 'holding_register', 0, 1, { values: [70000] }), c).reason, 'malformed');
  assert.equal(decide(mb(3, 'holding_register', 0, 1, { verb: 'write' }), c).reason, 'malformed');
  assert.equal(decide(mb(43, 'holding_register', 0, 1), c).reason, 'malformed');
});
