// One Modbus function-code table (src/adapters/modbus/functions.ts): the codec, policy, the config
// check and `penstockctl policy check` all take their codes from it, and what policy derives from it
// is what it always granted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FUNCTION_CODES, FUNCTIONS_BY_CODE, MODBUS_FUNCTIONS, PUBLIC_FUNCTION_CODES } from '../../src/adapters/modbus/functions.ts';
import { MODBUS_TABLE_WRITES, ruleGrantsFunction } from '../../src/adapters/modbus/policy.ts';
import { parseModbusDryRun } from '../../src/adapters/modbus/dry-run.ts';
import type { ModbusRuleConfig } from '../../src/adapters/modbus/rules.ts';

test('the table is one entry per public code, and the codec decodes exactly those', () => {
  const codes = Object.values(MODBUS_FUNCTIONS).map((f) => f.code);
  assert.equal(new Set(codes).size, codes.length, 'a code listed twice');
  assert.deepEqual([...PUBLIC_FUNCTION_CODES].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43]);
  for (const [name, code] of Object.entries(FUNCTION_CODES)) assert.equal(FUNCTIONS_BY_CODE.get(code), MODBUS_FUNCTIONS[name as keyof typeof MODBUS_FUNCTIONS]);
});

test('what policy derives from the table: access grants per table and direction, the table writes', () => {
  const granted = (access: 'read' | 'write', tables: ModbusRuleConfig['tables']) => {
    const rule = { access, tables } as ModbusRuleConfig;
    return [...FUNCTIONS_BY_CODE.keys()].filter((fc) => ruleGrantsFunction(rule, fc, access));
  };
  assert.deepEqual(granted('read', ['coil']), [1]);
  assert.deepEqual(granted('write', ['coil']), [5, 15]);
  assert.deepEqual(granted('read', ['discrete_input']), [2]);
  assert.deepEqual(granted('write', ['discrete_input']), []);
  assert.deepEqual(granted('read', ['input_register']), [4]);
  assert.deepEqual(granted('read', ['holding_register']), [3, 23, 24]);
  assert.deepEqual(granted('write', ['holding_register']), [6, 16, 22, 23]);
  // Diagnostics, file records and status reads are never granted by `access`, only by name.
  assert.deepEqual(granted('write', undefined).filter((fc) => FUNCTIONS_BY_CODE.get(fc)!.tables === null), []);
  assert.deepEqual([...MODBUS_TABLE_WRITES].sort((a, b) => a - b), [5, 6, 15, 16, 22, 23]);
});

test('penstockctl policy check picks the table\'s read and write codes by table and quantity', () => {
  const fc = (args: string[], quantity?: string) => parseModbusDryRun(args, quantity ? { quantity } : {}).object.functionCode;
  assert.equal(fc(['read', 'coil', '0']), FUNCTION_CODES.READ_COILS);
  assert.equal(fc(['read', 'di', '0']), FUNCTION_CODES.READ_DISCRETE_INPUTS);
  assert.equal(fc(['read', 'hr', '0']), FUNCTION_CODES.READ_HOLDING_REGISTERS);
  assert.equal(fc(['read', 'ir', '0']), FUNCTION_CODES.READ_INPUT_REGISTERS);
  assert.equal(fc(['write', 'coil', '0']), FUNCTION_CODES.WRITE_SINGLE_COIL);
  assert.equal(fc(['write', 'coil', '0'], '8'), FUNCTION_CODES.WRITE_MULTIPLE_COILS);
  assert.equal(fc(['write', 'hr', '0']), FUNCTION_CODES.WRITE_SINGLE_REGISTER);
  assert.equal(fc(['write', 'hr', '0'], '2'), FUNCTION_CODES.WRITE_MULTIPLE_REGISTERS);
  for (const args of [['read', 'coil', '0'], ['write', 'hr', '0']]) {
    const o = parseModbusDryRun(args, {}).object;
    const f = FUNCTIONS_BY_CODE.get(o.functionCode as number)!;
    assert.ok(f.tables?.includes(o.table as never) && f.direction === args[0], `${args.join(' ')}: the table agrees`);
  }
});
