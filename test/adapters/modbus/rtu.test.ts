// RTU framing: CRC-16/MODBUS vectors, and finding the end of a response in a serial byte stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  crc16Modbus,
  decodeRequest,
  decodeRtuFrame,
  encodeResponse,
  encodeRtu,
  RtuResponseDecoder,
  type ModbusRequest,
  type RtuResponseResult,
} from '../../../src/adapters/modbus/codec.ts';
import { hex, toHex } from './helpers.ts';

function req(h: string): ModbusRequest {
  const r = decodeRequest(hex(h));
  assert.ok(r.ok);
  return r.value;
}

test('CRC-16/MODBUS vectors', () => {
  assert.equal(toHex(encodeRtu(1, hex('03 00 00 00 0A'))), '01 03 00 00 00 0a c5 cd');
  assert.equal(toHex(encodeRtu(0x11, hex('03 00 6B 00 03'))), '11 03 00 6b 00 03 76 87');
  assert.equal(crc16Modbus(Buffer.from('123456789')), 0x4b37); // the catalogue check value
  assert.equal(crc16Modbus(Buffer.alloc(0)), 0xffff);
});

test('decodeRtuFrame checks the CRC and the frame size', () => {
  const ok = decodeRtuFrame(hex('01 03 00 00 00 0A C5 CD'));
  assert.ok(ok.ok);
  assert.equal(ok.value.unitId, 1);
  assert.equal(toHex(ok.value.pdu), '03 00 00 00 0a');
  const bad = decodeRtuFrame(hex('01 03 00 00 00 0A C5 CE'));
  assert.ok(!bad.ok && bad.error.code === 'RTU_CRC');
  const short = decodeRtuFrame(hex('01 03 C5'));
  assert.ok(!short.ok && short.error.code === 'RTU_FRAME_LENGTH');
  const long = decodeRtuFrame(Buffer.alloc(257));
  assert.ok(!long.ok && long.error.code === 'RTU_FRAME_LENGTH');
});

/** Feeds `frame` split at every position; every split must give the same result. */
function everySplit(request: ModbusRequest, unit: number, frame: Buffer): RtuResponseResult {
  let first: RtuResponseResult | undefined;
  for (let i = 0; i <= frame.length; i++) {
    const d = new RtuResponseDecoder(request, unit);
    const a = d.push(frame.subarray(0, i));
    const b = a ?? d.push(frame.subarray(i));
    assert.ok(b, `no result with the split at ${i}`);
    assert.ok(d.bufferedBytes <= 256);
    if (first === undefined) first = b;
    else assert.deepEqual(b, first, `split at ${i}`);
  }
  return first!;
}

const RESPONSES: Array<[string, string]> = [
  ['03 00 6B 00 03', '03 06 02 2B 00 00 00 64'], // length from the request
  ['01 00 13 00 13', '01 03 CD 6B 05'],
  ['0F 00 13 00 0A 02 CD 01', '0F 00 13 00 0A'],
  ['17 00 03 00 06 00 0E 00 03 06 00 FF 00 FF 00 FF', '17 0C 00 FE 0A CD 00 01 00 03 00 0D 00 FF'],
  ['0C', '0C 08 00 00 01 08 01 21 20 00'], // length from the byte count
  ['11', '11 03 01 02 FF'],
  ['18 04 DE', '18 00 06 00 02 01 B8 12 84'], // 2-byte byte count
  ['2B 0E 01 00', '2B 0E 01 01 00 00 02 00 03 41 42 43 01 01 5A'], // object list walked
  ['14 0E 06 00 04 00 01 00 02 06 00 03 00 09 00 02', '14 0C 05 06 0D FE 00 20 05 06 33 CD 00 40'],
  ['08 00 00 A5 37', '08 00 00 A5 37'],
];

test('RTU responses are framed from the request, at any split, and validated', () => {
  for (const [reqHex, resHex] of RESPONSES) {
    const request = req(reqHex);
    const frame = encodeRtu(7, hex(resHex));
    const r = everySplit(request, 7, frame);
    assert.ok(r.ok, `${reqHex}: ${r.ok ? '' : r.error.code}`);
    assert.equal(r.unitId, 7);
    assert.equal(toHex(encodeResponse(r.response)), toHex(hex(resHex)));
    assert.equal(r.trailingBytes, 0);
  }
});

test('an exception answer is 5 bytes whatever the request', () => {
  const r = everySplit(req('03 00 6B 00 7D'), 1, encodeRtu(1, hex('83 02')));
  assert.ok(r.ok);
  assert.deepEqual(r.response, { kind: 'exception', fc: 3, exception: 2 });
});

test('bad answers: CRC, another unit, another function, a byte count that lies', () => {
  const request = req('03 00 6B 00 03');
  const frame = encodeRtu(1, hex('03 06 02 2B 00 00 00 64'));
  frame[frame.length - 1]! ^= 1;
  const crc = new RtuResponseDecoder(request, 1).push(frame);
  assert.ok(crc && !crc.ok && crc.error.code === 'RTU_CRC' && crc.error.exception === 0x0b);
  const unit = new RtuResponseDecoder(request, 1).push(encodeRtu(2, hex('03 06 02 2B 00 00 00 64')));
  assert.ok(unit && !unit.ok && unit.error.code === 'RTU_UNIT_MISMATCH');
  const fc = new RtuResponseDecoder(request, 1).push(encodeRtu(1, hex('04 06 02 2B 00 00 00 64')));
  assert.ok(fc && !fc.ok && fc.error.code === 'MODBUS_RESPONSE_MISMATCH');
  // The request says 6 data bytes; a lying byte count is caught by the response check after the CRC.
  const lie = new RtuResponseDecoder(request, 1).push(encodeRtu(1, hex('03 08 02 2B 00 00 00 64')));
  assert.ok(lie && !lie.ok && lie.error.code === 'MODBUS_RESPONSE_MISMATCH');
  const fifo = new RtuResponseDecoder(req('18 04 DE'), 1).push(hex('01 18 01 00'));
  assert.ok(fifo && !fifo.ok && fifo.error.code === 'MODBUS_RESPONSE_MISMATCH', 'FIFO byte count over 64 is refused before waiting for it');
});

test('trailing bytes are counted, incomplete answers end with a length error, opaque answers end on silence', () => {
  const d = new RtuResponseDecoder(req('06 00 01 00 03'), 1);
  const r = d.push(Buffer.concat([encodeRtu(1, hex('06 00 01 00 03')), hex('00 00')]));
  assert.ok(r && r.ok && r.trailingBytes === 2);
  assert.equal(d.push(hex('01')), undefined);

  const partial = new RtuResponseDecoder(req('03 00 6B 00 03'), 1);
  assert.equal(partial.push(hex('01 03 06 02')), undefined);
  const ended = partial.end();
  assert.ok(!ended.ok && ended.error.code === 'RTU_FRAME_LENGTH');

  const opaque = new RtuResponseDecoder(req('5A 00 01'), 1);
  assert.equal(opaque.push(encodeRtu(1, hex('5A 00 FE 01'))), undefined, 'an unknown function has no computable length');
  const done = opaque.end();
  assert.ok(done.ok && done.response.kind === 'opaque');
  assert.equal(toHex(encodeResponse(done.response)), '5a 00 fe 01');

  const listenOnly = new RtuResponseDecoder(req('08 00 04 00 00'), 1);
  assert.ok(listenOnly.result && !listenOnly.result.ok && listenOnly.result.error.code === 'MODBUS_NO_RESPONSE_EXPECTED');
});

test('a flood of bytes never grows the buffer past one ADU', () => {
  const d = new RtuResponseDecoder(req('5A 00'), 1);
  assert.equal(d.push(Buffer.concat([hex('01 5A'), Buffer.alloc(200)])), undefined);
  const r = d.push(Buffer.alloc(10_000));
  assert.ok(r, 'a full 256-byte ADU ends an opaque answer');
  assert.equal(d.bufferedBytes, 0);
});
