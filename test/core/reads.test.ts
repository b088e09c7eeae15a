import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadAggregator, readKey } from '../../src/core/reads.ts';
import type { Action } from '../../src/policy/types.ts';

const read = (object: Record<string, unknown>, target = 'plc-1'): Action => ({ target, verb: 'read', object: { kind: 'modbus', ...object } as Action['object'] });

test('read keys tell objects apart by every field but the values', () => {
  const base = { unit: 1, functionCode: 3, table: 'holding_register', address: 10, quantity: 2 };
  assert.equal(readKey(read({ ...base, values: [1, 2] })), readKey(read({ ...base, values: [9, 9] })));
  assert.notEqual(readKey(read(base)), readKey(read({ ...base, address: 11 })));
  assert.notEqual(readKey(read(base)), readKey(read(base, 'plc-2')));
  // A string and a number of the same spelling are different objects.
  assert.notEqual(readKey(read({ ...base, unit: '1' })), readKey(read(base)));
  // Separators inside strings cannot make two different objects collide.
  const a = read({ kind: 'opcua', nodeId: 'a\u0000b', attribute: 'c' });
  const b = read({ kind: 'opcua', nodeId: 'a', attribute: 'b\u0000c' });
  assert.notEqual(readKey(a), readKey(b));
});

test('the aggregator counts per session and object and forgets what it hands over', () => {
  const agg = new ReadAggregator();
  const base = { unit: 1, functionCode: 3, table: 'holding_register', address: 10, quantity: 2 };
  agg.add('s1', read(base), 1000);
  agg.add('s1', read(base), 2000);
  agg.add('s1', read({ ...base, address: 20 }), 3000);
  agg.add('s2', read(base), 1500);
  const s1 = agg.take('s1');
  assert.equal(s1.length, 2);
  const first = s1.find((r) => (r.object as { address: number }).address === 10)!;
  assert.equal(first.count, 2);
  assert.equal(first.first, new Date(1000).toISOString());
  assert.equal(first.last, new Date(2000).toISOString());
  assert.deepEqual(agg.take('s1'), []);
  assert.equal(agg.take('s2')[0]?.count, 1);
});

test('a read of the same object as the last one counts where its key says, whatever the shortcut: values, field order, nested fields and notifications', () => {
  const agg = new ReadAggregator();
  const base = { unit: 1, functionCode: 3, table: 'holding_register', address: 10, quantity: 2 };
  const reordered = { quantity: 2, address: 10, table: 'holding_register', functionCode: 3, unit: 1 };
  const nested = { kind: 'opcua', nodeId: { ns: 2, id: 'Flow' }, attribute: 13 };
  const steps: [Action, 'request' | 'notification'][] = [
    [read({ ...base, values: [1, 2] }), 'request'],
    [read({ ...base, values: [3, 4] }), 'request'], // only the values differ: the same object
    [read(reordered), 'request'], // the same fields in another order: another key, as readKey says
    [read(base), 'request'],
    [read(base), 'notification'], // the same object pushed, not asked for: counted apart
    [read({ ...base, address: 11 }), 'request'],
    [read({ ...base, extra: 'x' }), 'request'], // one field more
    [read(base, 'plc-2'), 'request'],
    [read(nested), 'request'],
    [read({ ...nested, nodeId: { ns: 2, id: 'Flow' } }), 'request'], // an equal nested field, in a new object
    [read({ ...nested, nodeId: { ns: 2, id: 'Level' } }), 'request'],
  ];
  const expected = new Map<string, number>();
  steps.forEach(([action, kind], i) => {
    agg.add('s1', action, 1000 + i, kind);
    const k = `${kind} ${readKey(action)}`;
    expected.set(k, (expected.get(k) ?? 0) + 1);
  });
  const got = new Map(agg.take('s1').map((r) => [`${r.kind ?? 'request'} ${readKey({ target: r.target, verb: r.verb as Action['verb'], object: r.object as Action['object'] })}`, r.count]));
  assert.deepEqual(got, expected);
  assert.equal(got.size, 8);
});
