// Requests to policy Actions, and policy reasons to Modbus exceptions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRequest, exceptionForDecision, requestToActions, type ModbusAction } from '../../../src/adapters/modbus/codec.ts';
import { DECISION_REASONS, type DecisionReason } from '../../../src/policy/types.ts';
import { hex } from './helpers.ts';

function actions(h: string): ModbusAction[] {
  const r = decodeRequest(hex(h));
  assert.ok(r.ok, h);
  return requestToActions(r.value, 'plc-1', 17);
}

function summary(a: ModbusAction): string {
  const o = a.object;
  return `${a.verb} ${o.table ?? '-'} ${o.address}+${o.quantity}${o.values ? ' [' + o.values.join(',') + ']' : ''}`;
}

test('table functions map to table, 0-based range and values', () => {
  const cases: Array<[string, string[]]> = [
    ['01 00 13 00 13', ['read coil 19+19']],
    ['02 00 C4 00 16', ['read discrete_input 196+22']],
    ['03 00 6B 00 03', ['read holding_register 107+3']],
    ['04 00 08 00 01', ['read input_register 8+1']],
    ['05 00 AC FF 00', ['write coil 172+1 [1]']],
    ['05 00 AC 00 00', ['write coil 172+1 [0]']],
    ['0F 00 13 00 0A 02 CD 01', ['write coil 19+10 [1,0,1,1,0,0,1,1,1,0]']],
    ['06 00 01 00 03', ['write holding_register 1+1 [3]']],
    ['10 00 01 00 02 04 00 0A 01 02', ['write holding_register 1+2 [10,258]']],
    // FC23: the write first (the server performs it first), then the read.
    ['17 00 03 00 06 00 0E 00 03 06 00 FF 00 FF 00 FF', ['write holding_register 14+3 [255,255,255]', 'read holding_register 3+6']],
    ['18 04 DE', ['read holding_register 1246+32']],
    ['18 FF F0', ['read holding_register 65520+16']],
  ];
  for (const [h, want] of cases) {
    const got = actions(h);
    assert.deepEqual(got.map(summary), want, h);
    for (const a of got) {
      assert.equal(a.target, 'plc-1');
      assert.equal(a.object.kind, 'modbus');
      assert.equal(a.object.unit, 17);
      assert.equal(a.object.functionCode, hex(h)[0]);
    }
  }
});

test('mask write is a one-register write without values, carrying the masks', () => {
  const [a, ...rest] = actions('16 00 04 00 F2 00 25');
  assert.equal(rest.length, 0);
  assert.equal(summary(a!), 'write holding_register 4+1');
  assert.equal(a!.object.values, undefined);
  assert.deepEqual(a!.object.masks, { and: 0xf2, or: 0x25 });
});

test('functions without a table: status reads, diagnostics, device id, file records, opaque codes', () => {
  for (const h of ['07', '0B', '0C', '11']) assert.deepEqual(actions(h).map(summary), ['read - 0+0'], h);
  assert.deepEqual(actions('08 00 0B 00 00').map(summary), ['diagnostic - 11+0']);
  assert.deepEqual(actions('2B 0E 04 05').map(summary), ['read - 5+0']);
  const fc20 = actions('14 0E 06 00 04 00 01 00 02 06 00 03 00 09 00 02');
  assert.deepEqual(fc20.map(summary), ['read - 1+2', 'read - 9+2']);
  assert.deepEqual(fc20.map((a) => a.object.fileNumber), [4, 3]);
  const fc21 = actions('15 0D 06 00 04 00 07 00 03 06 AF 04 BE 10 0D');
  assert.deepEqual(fc21.map(summary), ['program - 7+3 [1711,1214,4109]']);
  for (const fc of [90, 125, 126, 9, 13, 14]) assert.equal(actions(Buffer.from([fc, 0]).toString('hex'))[0]!.verb, 'program', `fc ${fc}`);
  for (const fc of [65, 72, 100, 110, 30]) assert.equal(actions(Buffer.from([fc, 0]).toString('hex'))[0]!.verb, 'other', `fc ${fc}`);
});

test('decision reasons map to the exceptions issue 4 names', () => {
  assert.equal(exceptionForDecision('function_not_granted'), 1);
  assert.equal(exceptionForDecision('object_not_granted'), 2);
  assert.equal(exceptionForDecision('value_out_of_bounds'), 3);
  assert.equal(exceptionForDecision('malformed'), 3);
  for (const r of ['no_grant', 'grant_not_active', 'principal_expired', 'rule_denies'] as const) assert.equal(exceptionForDecision(r), 1, r);
  assert.equal(exceptionForDecision('journal_unavailable'), 4);
  assert.equal(exceptionForDecision('approval_refused'), 4);
  assert.equal(exceptionForDecision('session_limit'), 6);
  // Every registered reason has an answer, and it is a refusal code.
  for (const reason of Object.keys(DECISION_REASONS) as DecisionReason[]) assert.ok([1, 2, 3, 4, 6].includes(exceptionForDecision(reason)), reason);
  // A reason a newer policy sends that this build does not know: a safe refusal.
  assert.equal(exceptionForDecision('something_new' as DecisionReason), 4);
  assert.equal(exceptionForDecision('toString' as DecisionReason), 4);
});
