// Grants in `mode: observe` (issue 15, a first visit to learn from): what their rules allow is allowed
// for reads only; writes, calls and execs wait for a person, whatever the rules say, so learning never
// opens a write path. Deny rules and misses are unchanged, and an enforcing grant still allows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide } from '../../src/policy/decide.ts';
import type { Action } from '../../src/policy/types.ts';
import { grantSchema } from '../../src/config/schema.ts';
import { ctx, grant } from './fixtures.ts';

const read = (address: number): Action => ({ target: 'plc-raw', verb: 'read', object: { kind: 'modbus', unit: 1, functionCode: 3, table: 'holding_register', address, quantity: 1 } });
const write = (address: number, v: number): Action => ({ target: 'plc-raw', verb: 'write', object: { kind: 'modbus', unit: 1, functionCode: 6, table: 'holding_register', address, quantity: 1, values: [v] } });
const exec = (commandLine: string): Action => ({ target: 'gw-1', verb: 'exec', object: { kind: 'ssh', channel: 'exec', commandLine } });
const call = (nodeId: string): Action => ({ target: 'hmi-1', verb: 'call', object: { kind: 'opcua', nodeId, objectId: 'ns=1;s=boiler' } });
const browse = (nodeId: string): Action => ({ target: 'hmi-1', verb: 'browse', object: { kind: 'opcua', nodeId } });

const broad = [
  { modbus: { preset: 'readwrite', addresses: ['0-99'] } },
  { modbus: { effect: 'deny', access: 'write', tables: ['holding_register'], addresses: ['50-59'] } },
  { ssh: { exec: ['systemctl', 'status', '*'] } },
  { opcua: { verbs: ['browse', 'call'], nodes: ['ns=1;s=boiler/*'] } },
];

test('observe mode: reads allowed, writes, calls and execs the rules allow need approval', () => {
  const c = ctx([grant('G-observe', broad, { mode: 'observe' })]);
  assert.equal(decide(read(10), c).effect, 'allow');
  assert.equal(decide(browse('ns=1;s=boiler/Drum'), c).effect, 'allow');
  for (const a of [write(10, 5), exec('systemctl status penstock'), call('ns=1;s=boiler/Reset')]) {
    const d = decide(a, c);
    assert.equal(d.effect, 'approve', a.verb);
    assert.equal(d.reason, 'rule_requires_approval');
    assert.equal(d.grant, 'G-observe');
    assert.match(d.rule!, /^G-observe#\d$/);
  }
  // What the rules do not allow stays denied, and a deny rule still wins.
  assert.equal(decide(read(100), c).reason, 'object_not_granted');
  assert.equal(decide(write(55, 1), c).reason, 'rule_denies');
  assert.equal(decide(exec('systemctl restart penstock'), c).effect, 'deny');
});

test('the same grant enforcing (the default, or mode: enforce) allows the writes; an enforcing grant beside an observing one still allows', () => {
  for (const extra of [{}, { mode: 'enforce' }]) {
    const c = ctx([grant('G', broad, extra)]);
    assert.equal(decide(write(10, 5), c).effect, 'allow');
    assert.equal(decide(exec('systemctl status penstock'), c).effect, 'allow');
  }
  const writer = grant('G-write', [{ modbus: { access: 'write', tables: ['holding_register'], addresses: [10] } }]);
  const both = ctx([grant('G-observe', broad, { mode: 'observe' }), writer]);
  const d = decide(write(10, 5), both);
  assert.equal(d.effect, 'allow', 'observing does not take away what another grant allows');
  assert.equal(d.grant, 'G-write');
  assert.equal(decide(write(11, 5), both).effect, 'approve', 'beyond the enforcing grant, the observing one asks a person');
  const withApprove = ctx([grant('G-observe', broad, { mode: 'observe' }), grant('G-ask', [{ modbus: { effect: 'approve', access: 'write', tables: ['holding_register'], addresses: [10] } }])]);
  assert.equal(decide(write(10, 5), withApprove).grant, 'G-ask', 'a real approve rule names the decision');
});

test('the config accepts mode observe or enforce, and nothing else', () => {
  const base = { id: 'g', principal: 'p', targets: ['t'], task: { ticket: 'WO-1' }, rules: [{ modbus: { preset: 'readonly' } }] };
  assert.equal(grantSchema.safeParse({ ...base, mode: 'observe' }).success, true);
  assert.equal(grantSchema.safeParse({ ...base, mode: 'enforce' }).success, true);
  assert.equal(grantSchema.safeParse({ ...base, mode: 'learn' }).success, false);
});
