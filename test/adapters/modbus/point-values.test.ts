// A point's registers ↔ its engineering value: what the agent tools write and read, and what policy's
// bounds compare. Expected registers are worked out by hand from the type's layout (two's complement,
// IEEE 754 single, big-endian words unless the profile says little), not from the code under test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodePointValue, pointValue } from '../../../src/adapters/modbus/point-values.ts';
import type { ModbusPoint } from '../../../src/adapters/modbus/rules.ts';

const pt = (fields: Partial<ModbusPoint>): ModbusPoint => ({ name: 'p.X', type: 'uint16', words: 1, access: 'RW', table: 'holding_register', address: 10, ...fields }) as ModbusPoint;
const enc = (p: ModbusPoint, v: number, exp?: number, order: 'big' | 'little' = 'big') => encodePointValue(p, v, order, exp);
const code = (r: ReturnType<typeof encodePointValue>) => (r.ok ? 'ok' : r.code);

test('integers: signedness, width, word order and the fixed or run-time exponent', () => {
  assert.deepEqual(enc(pt({ type: 'int16' }), -2), { ok: true, registers: [0xfffe] });
  assert.deepEqual(enc(pt({ type: 'uint32', words: 2 }), 65538), { ok: true, registers: [1, 2] });
  assert.deepEqual(enc(pt({ type: 'uint32', words: 2 }), 65538, undefined, 'little'), { ok: true, registers: [2, 1] });
  assert.deepEqual(enc(pt({ type: 'int32', words: 2 }), -1), { ok: true, registers: [0xffff, 0xffff] });
  assert.deepEqual(enc(pt({ type: 'uint16' }), 45.5, -2), { ok: true, registers: [4550] });
  assert.deepEqual(enc(pt({ type: 'uint16' }), 1.1, -1), { ok: true, registers: [11] }, '1.1 × 10 is 11.000000000000002 in doubles: still 11');
  assert.deepEqual(enc(pt({ type: 'uint16' }), 2500, 2), { ok: true, registers: [25] });
  assert.deepEqual(enc(pt({ type: 'float32', words: 2 }), 1.5), { ok: true, registers: [0x3fc0, 0x0000] });
  // And back: the same registers read as the same engineering value.
  assert.equal(pointValue(pt({ type: 'int16', scale_exponent: -1 }), [0xfffe], 'big', undefined), -0.2);
  assert.equal(pointValue(pt({ type: 'uint32', words: 2 }), [2, 1], 'little', undefined), 65538);
  assert.equal(pointValue(pt({ type: 'float32', words: 2 }), [0x3fc0, 0], 'big', undefined), 1.5);
  assert.equal(pointValue(pt({ type: 'uint16', scale_factor: 'p.SF' }), [4550], 'big', -2), 45.5);
  assert.equal(pointValue(pt({ type: 'uint16', scale_factor: 'p.SF' }), [4550], 'big', undefined), null, 'factor unknown: no value');
  assert.equal(pointValue(pt({ type: 'string', words: 3 }), [0x4142, 0x4300, 0], 'big', undefined), 'ABC');
});

test('values a point cannot take are refused with their code', () => {
  assert.equal(code(enc(pt({ min: 0, max: 100 }), 100.5)), 'value_out_of_range');
  assert.equal(code(enc(pt({ min: 0, max: 100 }), Number.NaN)), 'value_out_of_range');
  assert.equal(code(enc(pt({}), 65536)), 'value_exceeds_type');
  assert.equal(code(enc(pt({}), -1)), 'value_exceeds_type');
  assert.equal(code(enc(pt({ type: 'int16' }), 32768)), 'value_exceeds_type');
  assert.equal(code(enc(pt({ type: 'uint16' }), 700, -2)), 'value_exceeds_type', '70000 raw does not fit');
  assert.equal(code(enc(pt({ type: 'uint32', words: 2 }), 2 ** 32)), 'value_exceeds_type');
  assert.equal(code(enc(pt({ type: 'float32', words: 2 }), 1e39)), 'value_exceeds_type');
  assert.equal(code(enc(pt({}), 0.5)), 'value_too_precise');
  assert.equal(code(enc(pt({}), 45.123, -2)), 'value_too_precise');
  assert.equal(code(enc(pt({}), 2550, 2)), 'value_too_precise', 'hundreds only');
  assert.equal(code(enc(pt({ type: 'string', words: 4 }), 1)), 'point_type_unsupported');
  assert.equal(code(enc(pt({ table: 'coil' }), 2)), 'value_exceeds_type');
  assert.deepEqual(enc(pt({ table: 'coil' }), 1), { ok: true, registers: [1] });
});
