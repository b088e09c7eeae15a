// Bounds on OPC UA 64-bit integer writes: node-opcua carries Int64/UInt64 as [high, low] 32-bit words
// (or a bigint); policy compares them exactly, also beyond what a double holds (2^53).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide } from '../../src/policy/decide.ts';
import { exactInt64, withinBounds } from '../../src/adapters/opcua/policy.ts';
import type { Action } from '../../src/policy/types.ts';
import { ctx, grant } from './fixtures.ts';

const words = (v: bigint): [number, number] => [Number(BigInt.asIntN(32, v >> 32n)), Number(BigInt.asUintN(32, v))];
const uwords = (v: bigint): [number, number] => [Number(BigInt.asUintN(32, v >> 32n)), Number(BigInt.asUintN(32, v))];
const write = (value: number | string | undefined): Action => ({ target: 'hmi-1', verb: 'write', object: { kind: 'opcua', nodeId: 'ns=1;s=cell/Counter', ...(value !== undefined ? { value } : {}) } });

test('Int64 and UInt64 in node-opcua form convert exactly', () => {
  assert.equal(exactInt64([0, 42], false), 42);
  assert.equal(exactInt64(42n, false), 42);
  assert.equal(exactInt64(words(-5n), false), -5, 'negative Int64 (high word signed)');
  assert.equal(exactInt64(words(-(2n ** 63n)), false), '-9223372036854775808', 'Int64 min');
  assert.equal(exactInt64(words(2n ** 63n - 1n), false), '9223372036854775807', 'Int64 max');
  assert.equal(exactInt64(words(2n ** 53n + 1n), false), '9007199254740993', '2^53+1 is not rounded to 2^53');
  assert.equal(exactInt64(words(2n ** 53n - 1n), false), Number.MAX_SAFE_INTEGER);
  assert.equal(exactInt64(words(2n ** 53n), false), '9007199254740992', 'beyond the safe integers: text');
  assert.equal(exactInt64(uwords(2n ** 64n - 1n), true), '18446744073709551615', 'UInt64 max');
  assert.equal(exactInt64([0xffffffff, 0xffffffff], false), -1, 'the same words as Int64 are -1');
  assert.equal(exactInt64(-1n, true), undefined, 'a negative bigint is no UInt64');
  assert.equal(exactInt64(2n ** 64n, true), undefined);
  assert.equal(exactInt64([1, 2, 3], false), undefined);
  assert.equal(exactInt64('42', false), undefined);
});

test('exact bounds for integers beyond 2^53', () => {
  const max = 2 ** 53; // 9007199254740992
  assert.equal(withinBounds('9007199254740993', 0, max), false, '2^53+1 is above 2^53 (a double would say equal)');
  assert.equal(withinBounds('9007199254740992', 0, max), true);
  assert.equal(withinBounds('-9223372036854775808', -(2 ** 63), 0), true, 'Int64 min on its bound');
  assert.equal(withinBounds('-9223372036854775808', -1e15, 0), false);
  assert.equal(withinBounds('18446744073709551615', 0, 2 ** 64), true);
  assert.equal(withinBounds('18446744073709551615', 0, 1e15), false);
  assert.equal(withinBounds('9007199254740993', 0.5, undefined), true);
  assert.equal(withinBounds('9007199254740993', undefined, Number.POSITIVE_INFINITY), true);
  assert.equal(withinBounds('1e3', 0, 1e15), false, 'only integer text');
});

test('a bounded Int64 write: 42 under 0..1e15 allowed, edges refused, unknown value refused', () => {
  const c = ctx([grant('G', [{ opcua: { verbs: ['write'], nodes: ['ns=1;s=cell/*'], min: 0, max: 1e15 } }])]);
  assert.equal(decide(write(exactInt64([0, 42], false)), c).effect, 'allow');
  assert.equal(decide(write(exactInt64(words(-1n), false)), c).reason, 'value_out_of_bounds', 'negative Int64');
  assert.equal(decide(write(exactInt64(words(2n ** 53n + 1n), false)), c).reason, 'value_out_of_bounds', '2^53+1 over 1e15');
  assert.equal(decide(write(exactInt64(uwords(2n ** 64n - 1n), true)), c).reason, 'value_out_of_bounds', 'UInt64 max');
  assert.equal(decide(write(1e15), c).effect, 'allow');
  assert.equal(decide(write(undefined), c).reason, 'value_out_of_bounds');
  assert.equal(decide(write('12abc'), c).reason, 'malformed');
  const wide = ctx([grant('G', [{ opcua: { verbs: ['write'], nodes: ['ns=1;s=cell/*'], min: 0, max: 2 ** 53 } }])]);
  assert.equal(decide(write(exactInt64(words(2n ** 53n + 1n), false)), wide).reason, 'value_out_of_bounds', 'exact at the 2^53 edge');
  assert.equal(decide(write(exactInt64(words(2n ** 53n), false)), wide).effect, 'allow');
  // A deny rule with bounds catches a 64-bit value inside them.
  const deny = ctx([grant('G', [
    { opcua: { verbs: ['write'], nodes: ['ns=1;s=cell/*'] } },
    { opcua: { effect: 'deny', verbs: ['write'], nodes: ['ns=1;s=cell/*'], min: 2 ** 60 } },
  ])]);
  assert.equal(decide(write(exactInt64(words(2n ** 62n), false)), deny).effect, 'deny');
  assert.equal(decide(write(exactInt64([0, 42], false)), deny).effect, 'allow');
});
