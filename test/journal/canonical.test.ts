// The journal's one canonical-JSON encoder (src/journal/canonical.ts), whose bytes are hashed into the
// Merkle tree, checked against an independent reference written here from RFC 8785 (JCS) as the journal
// documents it, plus the RFC's own vectors and the fixed rule for values that are not JSON data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalJson, CanonicalJsonError, isCanonicalJson } from '../../src/journal/canonical.ts';
import { encodeEvent, prepareEvent } from '../../src/journal/event.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { Secret } from '../../src/common/secret.ts';
import { isPenstockError } from '../../src/common/errors.ts';
import { verifyBundle, verifyExport } from '../../src/journal/verify.ts';
import { appendMany, openJournal, tempDir } from './helpers.ts';

// ---- Reference: RFC 8785 written out by hand, character by character, sharing nothing with the encoder.

/** JCS 3.2.2.2: escape `"`, `\` and U+0000..U+001F (short forms where JSON has them), the rest as is. */
function refString(s: string): string {
  const short: Record<number, string> = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r', 0x22: '\\"', 0x5c: '\\\\' };
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const next = i + 1 < s.length ? s.charCodeAt(i + 1) : -1;
    if (short[c] !== undefined) out += short[c];
    else if (c < 0x20) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else if (c >= 0xd800 && c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) out += s[i]! + s[++i]!;
    // A lone surrogate is not I-JSON; the journal writes it escaped (as ES2019 JSON.stringify does).
    else if (c >= 0xd800 && c <= 0xdfff) out += `\\u${c.toString(16)}`;
    else out += s[i];
  }
  return `${out}"`;
}

/** JCS 3.2.3: property names sorted by their UTF-16 code units, compared one by one. */
function byCodeUnits(a: string, b: string): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

function ref(v: unknown): string {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number') return Object.is(v, -0) ? '0' : String(v); // JCS 3.2.2.3: ES Number::toString
  if (typeof v === 'string') return refString(v);
  if (Array.isArray(v)) return `[${v.map(ref).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort(byCodeUnits);
  return `{${keys.map((k) => `${refString(k)}:${ref(o[k])}`).join(',')}}`;
}

/** The value without its Secrets (members and array items dropped), and their paths in the caller's order. */
function withoutSecrets(v: unknown, path: string, paths: string[]): unknown {
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    v.forEach((x, i) => (x instanceof Secret ? paths.push(`${path}[${i}]`) : out.push(withoutSecrets(x, `${path}[${i}]`, paths))));
    return out;
  }
  if (v === null || typeof v !== 'object') return v;
  const out = Object.create(null) as Record<string, unknown>; // a key "__proto__" stays a member
  for (const [k, x] of Object.entries(v)) {
    if (x instanceof Secret) paths.push(`${path}.${k}`);
    else if (x !== undefined) out[k] = withoutSecrets(x, `${path}.${k}`, paths);
  }
  return out;
}

// ---- Generators: the awkward corners of JCS are in strings, keys and numbers.

const char = fc.oneof(
  fc.constantFrom('"', '\\', '/', '\b', '\f', '\n', '\r', '\t', '\u0000', '\u001f', '\u007f', '\u0080', '\u2028', '\u20ac', '\ufb33', '😀', '\ud800', '\udfff', 'a', 'Z', '1'),
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  fc.integer({ min: 0x10000, max: 0x10ffff }).map((c) => String.fromCodePoint(c)),
);
const text = fc.string({ unit: char, maxLength: 12 });
const number = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.constantFrom(0, -0, 1e21, 1e-7, 2 ** 53, -(2 ** 53), Number.MIN_VALUE, Number.MAX_VALUE, 0.1, 333333333.33333329),
);

function values(leaf: fc.Arbitrary<unknown>) {
  return fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('value'), { maxLength: 5 }),
      fc.dictionary(text, fc.oneof(tie('value'), fc.constant(undefined)), { maxKeys: 5 }),
    ),
  })).value;
}
const json = values(fc.oneof(fc.constant(null), fc.boolean(), number, text));

test('canonicalJson is the RFC 8785 reference on any JSON value: strings, keys, numbers, nesting', () => {
  fc.assert(
    fc.property(json, (v) => {
      const bytes = canonicalJson(v);
      assert.equal(bytes, ref(v));
      assert.ok(isCanonicalJson(bytes), 'what it writes reads back as canonical');
    }),
    { numRuns: 2000 },
  );
});

test('the journal event encoder is the reference on the event without its secrets, redacted paths listed', () => {
  const clock = new ManualClock(Date.parse('2026-11-22T08:00:00Z'));
  const withSecrets = values(fc.oneof(fc.constant(null), fc.boolean(), number, text, fc.constant(new Secret('hunter2'))));
  const dict = fc.dictionary(text, withSecrets, { maxKeys: 5 });
  fc.assert(
    fc.property(dict, dict, fc.nat(), (detail, outcome, seq) => {
      const prepared = prepareEvent({ event: 'action.outcome', session: 's', detail, outcome }, 'penstock/gw-1', clock);
      const paths: string[] = [];
      const event: Record<string, unknown> = {
        seq, time: '2026-11-22T08:00:00.000Z', mono: '0', code: 'PS3003I', event: 'action.outcome', appliance: 'penstock/gw-1', session: 's',
        outcome: withoutSecrets(outcome, '$.outcome', paths),
        detail: withoutSecrets(detail, '$.detail', paths),
      };
      if (paths.length) event.redacted = paths; // outcome before detail: the order the event lists them
      const bytes = encodeEvent(prepared, seq);
      assert.equal(bytes, ref(event));
      assert.ok(!bytes.includes('hunter2'));
    }),
    { numRuns: 500 },
  );
});

test('RFC 8785 vectors: the 3.2.3 example, the 3.2.3 sort order, and Appendix B numbers', () => {
  const input = JSON.parse('{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}');
  assert.equal(canonicalJson(input), '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  const sorted = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' };
  assert.equal(
    canonicalJson(sorted),
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
  );
  const numbers: [string, string][] = [
    ['0000000000000000', '0'], ['8000000000000000', '0'], ['0000000000000001', '5e-324'], ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'], ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'], ['c340000000000000', '-9007199254740992'], ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'], ['44b52d02c7e14af6', '1e+23'], ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'], ['444b1ae4d6e2ef4f', '999999999999999900000'], ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'], ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'], ['41b3de4355555554', '333333333.33333325'], ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'], ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'], ['43143ff3c1cb0959', '1424953923781206.2'],
  ];
  for (const [bits, expected] of numbers) assert.equal(canonicalJson(Buffer.from(bits, 'hex').readDoubleBE(0)), expected, bits);
});

test('values that are not JSON data: a Date is its ISO string, everything else not plain is refused with its path', () => {
  assert.equal(canonicalJson({ when: new Date(0) }), '{"when":"1970-01-01T00:00:00.000Z"}');
  assert.equal(canonicalJson(Object.assign(Object.create(null) as object, { b: 1, a: 2 })), '{"a":2,"b":1}', 'a null-prototype object is plain');
  class Reading {
    value = 1;
    toJSON() {
      return { value: 2 };
    }
  }
  const refused: [unknown, string][] = [
    [new Map([['a', 1]]), 'Map'], [new Set([1]), 'Set'], [Buffer.from('ab'), 'Buffer'], [new Uint16Array([1]), 'Uint16Array'],
    [new Reading(), 'Reading'], [Object(1), 'Number'], [new Error('x'), 'Error'], [new Secret('hunter2'), 'Secret'],
    [{ toJSON: () => 1 }, 'function'], [new Date(Number.NaN), 'invalid date'], [1n, 'bigint'], [Number.NaN, 'NaN'], [[undefined], 'undefined'],
  ];
  for (const [value, what] of refused) {
    assert.throws(() => canonicalJson({ a: [0, { value }] }), (err: unknown) => {
      assert.ok(err instanceof CanonicalJsonError, what);
      assert.ok(err.path.startsWith('$.a[1].value'), `${what}: ${err.path}`);
      return true;
    });
    // In a journal event the same value is refused before anything is written (secrets aside: dropped).
    const clock = new ManualClock(0);
    if (value instanceof Secret) continue;
    assert.throws(() => prepareEvent({ event: 'action.outcome', outcome: { value } }, 'gw', clock), (err) => isPenstockError(err, 'PS_INTERNAL'), what);
  }
  let deep: unknown = 1;
  for (let i = 0; i < 40; i++) deep = [deep];
  assert.throws(() => canonicalJson(deep), (err) => err instanceof CanonicalJsonError && err.path === `$${'[0]'.repeat(33)}`);
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  assert.throws(() => canonicalJson(cycle), CanonicalJsonError);
});

test('a bundle or export line nested deeper than the journal writes is reported as altered, not thrown', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(dir, { checkpointEvery: 4 });
  t.after(() => j.close());
  await appendMany(j, 8);
  const vkey = j.publicKeyVkey();
  const deep = `${'['.repeat(40)}1${']'.repeat(40)}`;
  const bundle = JSON.parse(JSON.stringify(j.proveBundle(2))) as { event: string };
  const forged = { ...bundle, event: bundle.event.replace('{', `{"a":${deep},`) };
  assert.equal(verifyBundle(forged as never, vkey).ok, false);
  const lines: string[] = [];
  const exp = j.exportJsonLines(0, 100, (l) => lines.push(l));
  lines[3] = lines[3]!.replace('{', `{"a":${deep},`);
  const r = verifyExport({ lines, checkpointNote: exp.checkpoint, vkey });
  assert.ok(!r.ok && r.seq === 3, JSON.stringify(r));
});
