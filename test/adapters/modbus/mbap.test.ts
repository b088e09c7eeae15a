// MBAP stream framing: split at every byte, many frames per chunk, bad protocol ids, lying lengths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MbapDecoder, encodeMbap, MBAP_MAX_FRAME, type MbapResult } from '../../../src/adapters/modbus/codec.ts';
import { hex, toHex } from './helpers.ts';

// The spec's FC3 example in an MBAP frame: transaction 1, unit 0x11.
const FRAME_A = hex('00 01 00 00 00 06 11 03 00 6B 00 03');

function frames(results: MbapResult[]): string[] {
  return results.map((r) => ('frame' in r ? `${r.frame.transactionId}/${r.frame.unitId}/${toHex(r.frame.pdu)}` : `error:${r.error.code}:${r.error.close}`));
}

test('a frame decodes to transaction id, unit and PDU', () => {
  const d = new MbapDecoder();
  assert.deepEqual(frames(d.push(FRAME_A)), ['1/17/03 00 6b 00 03']);
  assert.equal(d.bufferedBytes, 0);
  assert.equal(toHex(encodeMbap(1, 17, hex('03 00 6B 00 03'))), toHex(FRAME_A));
});

test('two frames split at every pair of byte positions give the same frames', () => {
  const stream = Buffer.concat([FRAME_A, hex('12 34 00 00 00 0B FF 10 00 01 00 02 04 00 0A 01 02')]);
  const want = ['1/17/03 00 6b 00 03', '4660/255/10 00 01 00 02 04 00 0a 01 02'];
  for (let i = 0; i <= stream.length; i++) {
    for (let j = i; j <= stream.length; j++) {
      const d = new MbapDecoder();
      const got = [...d.push(stream.subarray(0, i)), ...d.push(stream.subarray(i, j)), ...d.push(stream.subarray(j))];
      assert.deepEqual(frames(got), want, `split at ${i}, ${j}`);
      assert.equal(d.bufferedBytes, 0);
    }
  }
  // One byte at a time.
  const d = new MbapDecoder();
  const got: MbapResult[] = [];
  for (const byte of stream) got.push(...d.push(Buffer.from([byte])));
  assert.deepEqual(frames(got), want);
});

test('many frames in one chunk, and a partial one held over', () => {
  const many = Buffer.concat(Array.from({ length: 50 }, (_, i) => encodeMbap(i, 1, hex('03 00 00 00 01'))));
  const d = new MbapDecoder();
  const out = d.push(Buffer.concat([many, FRAME_A.subarray(0, 9)]));
  assert.equal(out.length, 50);
  assert.deepEqual(out.map((r) => ('frame' in r ? r.frame.transactionId : -1)), Array.from({ length: 50 }, (_, i) => i));
  assert.equal(d.bufferedBytes, 9);
  assert.deepEqual(frames(d.push(FRAME_A.subarray(9))), ['1/17/03 00 6b 00 03']);
});

test('length 0, 1 and 255+ close the connection; nothing after is framed', () => {
  for (const length of [0, 1, 255, 256, 0xffff]) {
    const d = new MbapDecoder();
    const bad = Buffer.from([0, 7, 0, 0, length >> 8, length & 0xff, 1, 3]);
    const out = d.push(Buffer.concat([FRAME_A, bad, FRAME_A]));
    assert.deepEqual(frames(out), ['1/17/03 00 6b 00 03', 'error:MBAP_LENGTH:true'], `length ${length}`);
    assert.ok(d.closed);
    assert.equal(d.bufferedBytes, 0);
    assert.deepEqual(d.push(FRAME_A), []);
  }
  // The error comes as soon as the length field is complete, not after waiting for a body.
  const d = new MbapDecoder();
  assert.deepEqual(d.push(hex('00 01 00 00 01')), []);
  assert.deepEqual(frames(d.push(hex('00'))), ['error:MBAP_LENGTH:true']);
});

test('length 2 and 254 are the bounds of a valid frame', () => {
  const d = new MbapDecoder();
  const max = encodeMbap(9, 1, Buffer.alloc(253, 0x41));
  assert.equal(max.length, MBAP_MAX_FRAME);
  const out = d.push(Buffer.concat([hex('00 02 00 00 00 02 01 07'), max]));
  assert.deepEqual(out.map((r) => ('frame' in r ? r.frame.pdu.length : -1)), [1, 253]);
  assert.throws(() => encodeMbap(1, 1, Buffer.alloc(254)), RangeError);
  assert.throws(() => encodeMbap(1, 1, Buffer.alloc(0)), RangeError);
});

test('a protocol id other than 0 skips that frame whole and keeps the stream', () => {
  const d = new MbapDecoder();
  const foreign = hex('00 05 00 01 00 06 11 03 00 6B 00 03');
  const out = d.push(Buffer.concat([foreign, FRAME_A]));
  assert.deepEqual(frames(out), ['error:MBAP_PROTOCOL_ID:false', '1/17/03 00 6b 00 03']);
  const e = out[0]!;
  assert.ok('error' in e && e.error.transactionId === 5);
  assert.ok(!d.closed);
});

test('buffering never exceeds one frame, whatever the chunking', () => {
  const d = new MbapDecoder();
  const big = encodeMbap(1, 1, Buffer.alloc(253, 1));
  for (let i = 0; i < big.length - 1; i++) {
    assert.deepEqual(d.push(big.subarray(i, i + 1)), []);
    assert.ok(d.bufferedBytes <= MBAP_MAX_FRAME - 1);
  }
  assert.equal(frames(d.push(big.subarray(big.length - 1))).length, 1);
  assert.equal(d.bufferedBytes, 0);
});

test('the returned PDU is a copy: later chunks do not change it', () => {
  const d = new MbapDecoder();
  const chunk = Buffer.from(FRAME_A);
  const [r] = d.push(chunk);
  chunk.fill(0);
  assert.ok(r && 'frame' in r);
  assert.equal(toHex(r.frame.pdu), '03 00 6b 00 03');
});
