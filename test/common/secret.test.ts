import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { Secret } from '../../src/common/secret.ts';
import { PenstockError, isPenstockError } from '../../src/common/errors.ts';

test('a Secret never prints, serialises or inspects its value', () => {
  const s = new Secret('hunter2-plc-password');
  assert.equal(String(s), '<secret>');
  assert.equal(JSON.stringify({ s }), '{"s":"<secret>"}');
  assert.ok(!inspect({ s }, { depth: 5 }).includes('hunter2'));
  assert.ok(!`${s}`.includes('hunter2'));
  assert.equal(s.reveal(), 'hunter2-plc-password');
});

test('errors are told apart by code', () => {
  const e = new PenstockError('PS_JOURNAL_UNAVAILABLE');
  assert.equal(e.code, 'PS_JOURNAL_UNAVAILABLE');
  assert.ok(!isPenstockError(e, 'PS_INTERNAL'));
  assert.ok(isPenstockError(e, 'PS_JOURNAL_UNAVAILABLE'));
});
