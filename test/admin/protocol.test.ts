// The admin wire format without sockets: the bounded line splitter fed awkward chunks, and decoding of
// whatever a server might answer.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LineSplitter, decodeResponse } from '../../src/admin/protocol.ts';

describe('LineSplitter', () => {
  it('yields the same lines however the stream is chunked', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replaceAll('\n', ' ').replaceAll('\r', ' ')), { maxLength: 8 }), fc.array(fc.nat(60), { maxLength: 10 }), (lines, cuts) => {
        const bytes = Buffer.from(lines.map((l) => `${l}\n`).join(''));
        const splitter = new LineSplitter(1024);
        const got: string[] = [];
        let at = 0;
        for (const cut of [...cuts, bytes.length]) {
          const end = Math.min(bytes.length, at + cut);
          const r = splitter.push(bytes.subarray(at, end));
          assert.equal(r.tooLarge, false);
          got.push(...r.lines);
          at = end;
        }
        assert.deepEqual(got, lines);
        assert.equal(splitter.pendingBytes, 0);
      }),
    );
  });

  it('splits a multi-byte character across chunks without damage, and drops a trailing CR', () => {
    const bytes = Buffer.from('{"note":"Größe ✓"}\r\n');
    const s = new LineSplitter(100);
    const parts = [bytes.subarray(0, 13), bytes.subarray(13, 14), bytes.subarray(14)];
    const lines = parts.flatMap((p) => s.push(p).lines);
    assert.deepEqual(lines, ['{"note":"Größe ✓"}']);
  });

  it('accepts a line of exactly the bound and refuses one byte more, never holding more than the bound', () => {
    const s = new LineSplitter(10);
    assert.deepEqual(s.push(Buffer.from('0123456789\n')), { lines: ['0123456789'], tooLarge: false });
    assert.deepEqual(s.push(Buffer.from('01234')), { lines: [], tooLarge: false });
    assert.equal(s.pendingBytes, 5);
    assert.deepEqual(s.push(Buffer.from('56789')), { lines: [], tooLarge: false });
    assert.equal(s.pendingBytes, 10);
    // The 11th byte of an unfinished line: refused now, not when its newline comes.
    assert.deepEqual(s.push(Buffer.from('A')), { lines: [], tooLarge: true });
    assert.equal(s.pendingBytes, 0);
    assert.deepEqual(s.push(Buffer.from('\nok\n')), { lines: [], tooLarge: true }, 'nothing after an overflow is ever a line');
  });

  it('returns the complete lines that came before an overflow in the same chunk', () => {
    const s = new LineSplitter(4);
    assert.deepEqual(s.push(Buffer.from('ab\ncd\nefghij')), { lines: ['ab', 'cd'], tooLarge: true });
  });
});

describe('decodeResponse', () => {
  it('reads success and failure responses', () => {
    assert.deepEqual(decodeResponse('{"id":3,"ok":true,"result":{"a":1}}'), { id: 3, ok: true, result: { a: 1 } });
    assert.deepEqual(decodeResponse('{"id":3,"ok":false,"error":{"code":"PS_GRANT_UNKNOWN","message":"no grant g1"}}'), { id: 3, ok: false, error: { code: 'PS_GRANT_UNKNOWN', message: 'no grant g1' } });
  });

  it('maps an unknown error code to PS_INTERNAL and refuses what is not a response', () => {
    const r = decodeResponse('{"id":1,"ok":false,"error":{"code":"PS_MADE_UP","message":"x"}}');
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.code, 'PS_INTERNAL');
    assert.throws(() => decodeResponse('not json'), { code: 'PS_INTERNAL' });
    assert.throws(() => decodeResponse('{"id":1}'), { code: 'PS_INTERNAL' });
  });
});
