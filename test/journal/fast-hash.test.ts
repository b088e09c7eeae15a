import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeAndLeafHash, fastLeafHash, fastNodeHash } from '../../src/journal/fast-hash.ts';
import { TreeBuilder, leafHash, nodeHash } from '../../src/journal/merkle.ts';
import { canonicalJson } from '../../src/journal/canonical.ts';
import { encodeEvent, prepareEvent } from '../../src/journal/event.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { Secret } from '../../src/common/secret.ts';

const hex = (h: Uint8Array) => Buffer.from(h).toString('hex');

test('node:crypto leaf and node hashes are byte-identical to the @noble/hashes ones in merkle.ts', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2048 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (data, l, r) => {
      assert.equal(hex(fastLeafHash(data)), hex(leafHash(data)));
      assert.equal(hex(fastNodeHash(l, r)), hex(nodeHash(l, r)));
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (text) => {
      const { bytes, leaf } = encodeAndLeafHash(text);
      assert.deepEqual(bytes, Buffer.from(text, 'utf8'));
      assert.equal(hex(leaf), hex(leafHash(Buffer.from(text, 'utf8'))));
    }),
    { numRuns: 300 },
  );
  // The shared scratch buffer of fastNodeHash must not leak between calls: whole trees agree.
  const leaves = Array.from({ length: 300 }, (_, i) => leafHash(Buffer.from(`event ${i}`)));
  const slow = new TreeBuilder();
  const fast = new TreeBuilder(0, [], fastNodeHash);
  for (const leaf of leaves) {
    const completedSlow: string[] = [];
    const completedFast: string[] = [];
    slow.push(leaf, (level, index, h) => completedSlow.push(`${level}/${index}/${hex(h)}`));
    fast.push(leaf, (level, index, h) => completedFast.push(`${level}/${index}/${hex(h)}`));
    assert.deepEqual(completedFast, completedSlow);
    assert.equal(hex(fast.root()), hex(slow.root()));
  }
});

test('the one-walk event encoder gives exactly canonicalJson of the event without its secrets', () => {
  const clock = new ManualClock(Date.parse('2026-11-22T08:00:00Z'));
  fc.assert(
    fc.property(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 4 })), fc.nat(), (detail, seq) => {
      const prepared = prepareEvent({ event: 'action.allowed', session: 's', detail: detail as Record<string, unknown> }, 'penstock/gw-1', clock);
      const expected = canonicalJson({ seq, time: '2026-11-22T08:00:00.000Z', mono: '0', code: 'PS3001I', event: 'action.allowed', appliance: 'penstock/gw-1', session: 's', detail: JSON.parse(JSON.stringify(detail)) });
      assert.equal(encodeEvent(prepared, seq), expected);
    }),
    { numRuns: 400 },
  );
  // Secrets are left out wherever they are, their paths listed in the caller's order.
  const prepared = prepareEvent({ event: 'action.allowed', detail: { z: new Secret('a'), a: [1, new Secret('b'), { k: new Secret('c') }], when: new Date(0) } }, 'penstock/gw-1', clock);
  assert.equal(
    encodeEvent(prepared, 7),
    '{"appliance":"penstock/gw-1","code":"PS3001I","detail":{"a":[1,{}],"when":"1970-01-01T00:00:00.000Z"},"event":"action.allowed","mono":"0","redacted":["$.detail.z","$.detail.a[1]","$.detail.a[2].k"],"seq":7,"time":"2026-11-22T08:00:00.000Z"}',
  );
});
