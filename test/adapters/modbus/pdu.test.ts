// Request and response PDUs against hex fixtures: the spec's own examples (V1.1b3 §6) where it gives
// one, every quantity limit at its edge, byte counts that lie, truncated and extended PDUs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeRequest,
  decodeResponse,
  encodeException,
  encodeRequest,
  encodeResponse,
  exceptionName,
  expectsResponse,
  MODBUS_DECODE_ERRORS,
  type ModbusRequest,
} from '../../../src/adapters/modbus/codec.ts';
import { isPenstockError } from '../../../src/common/errors.ts';
import { assertWithinSpec, hex, toHex } from './helpers.ts';

function request(h: string): ModbusRequest {
  const r = decodeRequest(hex(h));
  assert.ok(r.ok, `request ${h} refused: ${r.ok ? '' : r.error.code} ${r.ok ? '' : r.error.message}`);
  assertWithinSpec(r.value);
  assert.equal(toHex(encodeRequest(r.value)), toHex(hex(h)), 'request re-encodes to the same bytes');
  return r.value;
}

function refused(h: string | Buffer, code: keyof typeof MODBUS_DECODE_ERRORS, exception: number): void {
  const bytes = typeof h === 'string' ? hex(h) : h;
  const r = decodeRequest(bytes);
  assert.ok(!r.ok, `request ${toHex(bytes)} should be refused`);
  assert.equal(r.error.code, code, r.error.message);
  assert.equal(r.error.exception, exception);
  assert.ok(Object.hasOwn(MODBUS_DECODE_ERRORS, r.error.code));
}

// [what, request, response]: spec examples unless noted.
const FIXTURES: Array<[string, string, string]> = [
  ['FC1 read coils 20-38', '01 00 13 00 13', '01 03 CD 6B 05'],
  ['FC2 read discrete inputs 197-218', '02 00 C4 00 16', '02 03 AC DB 35'],
  ['FC3 read holding registers 108-110', '03 00 6B 00 03', '03 06 02 2B 00 00 00 64'],
  ['FC4 read input register 9', '04 00 08 00 01', '04 02 00 0A'],
  ['FC5 write coil 173 ON', '05 00 AC FF 00', '05 00 AC FF 00'],
  ['FC6 write register 2 = 3', '06 00 01 00 03', '06 00 01 00 03'],
  ['FC7 read exception status', '07', '07 6D'],
  ['FC8/00 return query data', '08 00 00 A5 37', '08 00 00 A5 37'],
  ['FC8/02 return diagnostic register (not in spec)', '08 00 02 00 00', '08 00 02 12 34'],
  ['FC8/0B return bus message count (not in spec)', '08 00 0B 00 00', '08 00 0B 01 02'],
  ['FC11 get comm event counter', '0B', '0B FF FF 01 08'],
  ['FC12 get comm event log', '0C', '0C 08 00 00 01 08 01 21 20 00'],
  ['FC15 write 10 coils from 20', '0F 00 13 00 0A 02 CD 01', '0F 00 13 00 0A'],
  ['FC16 write registers 2-3', '10 00 01 00 02 04 00 0A 01 02', '10 00 01 00 02'],
  ['FC17 report server id (device specific)', '11', '11 03 01 02 FF'],
  ['FC20 read file record', '14 0E 06 00 04 00 01 00 02 06 00 03 00 09 00 02', '14 0C 05 06 0D FE 00 20 05 06 33 CD 00 40'],
  ['FC21 write file record', '15 0D 06 00 04 00 07 00 03 06 AF 04 BE 10 0D', '15 0D 06 00 04 00 07 00 03 06 AF 04 BE 10 0D'],
  ['FC22 mask write register', '16 00 04 00 F2 00 25', '16 00 04 00 F2 00 25'],
  ['FC23 read/write registers', '17 00 03 00 06 00 0E 00 03 06 00 FF 00 FF 00 FF', '17 0C 00 FE 0A CD 00 01 00 03 00 0D 00 FF'],
  ['FC24 read FIFO queue', '18 04 DE', '18 00 06 00 02 01 B8 12 84'],
  [
    'FC43/14 read device identification, basic',
    '2B 0E 01 00',
    '2B 0E 01 01 00 00 03 00 16' + Buffer.from('Company identification').toString('hex') +
      '01 0F' + Buffer.from('Product code XX').toString('hex') + '02 05' + Buffer.from('V2.11').toString('hex'),
  ],
  ['FC90 opaque (Unity programming), answered opaquely', '5A 00 01 02', '5A 00 FE'],
];

for (const [what, req, res] of FIXTURES) {
  test(`fixture: ${what}`, () => {
    const decoded = request(req);
    const answer = decodeResponse(decoded, hex(res));
    assert.ok(answer.ok, answer.ok ? '' : `${answer.error.code}: ${answer.error.message}`);
    assert.equal(toHex(encodeResponse(answer.value)), toHex(hex(res)), 'response re-encodes to the same bytes');
  });
}

test('spec examples decode to the values the spec states', () => {
  const fc1 = request('01 00 13 00 13');
  assert.deepEqual(fc1, { kind: 'read_bits', fc: 1, address: 19, quantity: 19 });
  const bits = decodeResponse(fc1, hex('01 03 CD 6B 05'));
  assert.ok(bits.ok && bits.value.kind === 'read_bits');
  // Coils 27-20 = CD, 35-28 = 6B, 38-36 = 05 (LSB first).
  assert.deepEqual(bits.value.values, [1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1]);

  const fc3 = decodeResponse(request('03 00 6B 00 03'), hex('03 06 02 2B 00 00 00 64'));
  assert.ok(fc3.ok && fc3.value.kind === 'read_registers');
  assert.deepEqual(fc3.value.values, [555, 0, 100]);

  assert.deepEqual(request('05 00 AC FF 00'), { kind: 'write_single_coil', fc: 5, address: 172, value: 1 });
  assert.deepEqual(request('0F 00 13 00 0A 02 CD 01'), { kind: 'write_multiple_coils', fc: 15, address: 19, values: [1, 0, 1, 1, 0, 0, 1, 1, 1, 0] });
  assert.deepEqual(request('10 00 01 00 02 04 00 0A 01 02'), { kind: 'write_multiple_registers', fc: 16, address: 1, values: [10, 258] });
  assert.deepEqual(request('17 00 03 00 06 00 0E 00 03 06 00 FF 00 FF 00 FF'),
    { kind: 'read_write_registers', fc: 23, readAddress: 3, readQuantity: 6, writeAddress: 14, values: [255, 255, 255] });
  assert.deepEqual(request('14 0E 06 00 04 00 01 00 02 06 00 03 00 09 00 02'), {
    kind: 'read_file_record', fc: 20,
    subRequests: [{ fileNumber: 4, recordNumber: 1, recordLength: 2 }, { fileNumber: 3, recordNumber: 9, recordLength: 2 }],
  });
  const fifo = decodeResponse(request('18 04 DE'), hex('18 00 06 00 02 01 B8 12 84'));
  assert.ok(fifo.ok && fifo.value.kind === 'read_fifo_queue');
  assert.deepEqual(fifo.value.values, [0x01b8, 0x1284]);
  const id = decodeResponse(request('2B 0E 01 00'), hex(FIXTURES.find((f) => f[0].startsWith('FC43'))![2]));
  assert.ok(id.ok && id.value.kind === 'read_device_identification');
  assert.deepEqual(id.value.objects.map((o) => [o.id, o.value.toString()]), [[0, 'Company identification'], [1, 'Product code XX'], [2, 'V2.11']]);
  assert.equal(id.value.moreFollows, false);
});

test('quantity limits: each accepted at its maximum and refused one above', () => {
  const edges: Array<[string, string, string]> = [
    // [what, at the limit, one over]
    ['FC1 2000 coils', '01 00 00 07 D0', '01 00 00 07 D1'],
    ['FC2 2000 inputs', '02 00 00 07 D0', '02 00 00 07 D1'],
    ['FC3 125 registers', '03 00 00 00 7D', '03 00 00 00 7E'],
    ['FC4 125 registers', '04 00 00 00 7D', '04 00 00 00 7E'],
  ];
  for (const [, okHex, overHex] of edges) {
    request(okHex);
    refused(overHex, 'MODBUS_QUANTITY_OUT_OF_RANGE', 3);
    refused(okHex.slice(0, -5) + '00 00', 'MODBUS_QUANTITY_OUT_OF_RANGE', 3); // quantity 0
  }
  const coils = (n: number) => Buffer.concat([hex('0F 00 00'), Buffer.from([n >> 8, n & 0xff, Math.ceil(n / 8) & 0xff]), Buffer.alloc(Math.ceil(n / 8))]);
  request(toHex(coils(1968)));
  refused(coils(1969), 'MODBUS_QUANTITY_OUT_OF_RANGE', 3);
  const regs = (n: number) => Buffer.concat([hex('10 00 00'), Buffer.from([n >> 8, n & 0xff, (2 * n) & 0xff]), Buffer.alloc(2 * n)]);
  request(toHex(regs(123)));
  // 124 registers cannot fit in a PDU at all; the quantity is refused from the header alone.
  refused(regs(124).subarray(0, 253), 'MODBUS_QUANTITY_OUT_OF_RANGE', 3);
  refused(regs(124), 'MODBUS_PDU_TOO_LONG', 3);
  refused(hex('10 00 00 00 00 00'), 'MODBUS_QUANTITY_OUT_OF_RANGE', 3);
  const rw = (read: number, write: number) =>
    Buffer.concat([hex('17 00 00'), Buffer.from([read >> 8, read & 0xff, 0, 0, write >> 8, write & 0xff, (2 * write) & 0xff]), Buffer.alloc(2 * write)]);
  request(toHex(rw(125, 121)));
  refused(rw(126, 1), 'MODBUS_QUANTITY_OUT_OF_RANGE', 3);
  refused(rw(1, 122).subarray(0, 253), 'MODBUS_QUANTITY_OUT_OF_RANGE', 3);
  refused(rw(0, 1), 'MODBUS_QUANTITY_OUT_OF_RANGE', 3);
});

test('address + quantity past 65536 is illegal data address; exactly 65536 is fine', () => {
  request('03 FF 83 00 7D'); // 65411 + 125 = 65536
  refused('03 FF 84 00 7D', 'MODBUS_ADDRESS_OUT_OF_RANGE', 2);
  request('01 F8 30 07 D0'); // 63536 + 2000
  refused('01 F8 31 07 D0', 'MODBUS_ADDRESS_OUT_OF_RANGE', 2);
  refused('10 FF FF 00 02 04 00 01 00 02', 'MODBUS_ADDRESS_OUT_OF_RANGE', 2);
  refused('0F FF FF 00 02 01 03', 'MODBUS_ADDRESS_OUT_OF_RANGE', 2);
  refused('17 FF FF 00 02 00 00 00 01 02 00 01', 'MODBUS_ADDRESS_OUT_OF_RANGE', 2);
  refused('17 00 00 00 01 FF FF 00 02 04 00 01 00 02', 'MODBUS_ADDRESS_OUT_OF_RANGE', 2);
});

test('FC5 accepts only 0x0000 and 0xFF00', () => {
  assert.deepEqual(request('05 00 01 00 00'), { kind: 'write_single_coil', fc: 5, address: 1, value: 0 });
  refused('05 00 01 12 34', 'MODBUS_VALUE_INVALID', 3);
  refused('05 00 01 00 01', 'MODBUS_VALUE_INVALID', 3);
  refused('05 00 01 FF 01', 'MODBUS_VALUE_INVALID', 3);
});

test('byte counts that lie are refused before anything is read from them', () => {
  refused('0F 00 13 00 0A 03 CD 01 00', 'MODBUS_BYTE_COUNT_MISMATCH', 3); // 10 coils need 2 bytes, not 3
  refused('0F 00 13 00 0A 01 CD', 'MODBUS_BYTE_COUNT_MISMATCH', 3);
  refused('0F 00 13 00 0A 02 CD', 'MODBUS_PDU_LENGTH', 3); // count right, data missing
  refused('10 00 01 00 02 FF 00 0A 01 02', 'MODBUS_BYTE_COUNT_MISMATCH', 3);
  refused('10 00 01 00 02 04 00 0A 01', 'MODBUS_PDU_LENGTH', 3);
  refused('10 00 01 00 02 04 00 0A 01 02 00', 'MODBUS_PDU_LENGTH', 3); // trailing byte
  refused('17 00 03 00 06 00 0E 00 03 04 00 FF 00 FF', 'MODBUS_BYTE_COUNT_MISMATCH', 3);
  refused('14 0D 06 00 04 00 01 00 02 06 00 03 00 09 00', 'MODBUS_BYTE_COUNT_MISMATCH', 3); // not a multiple of 7
  refused('14 FC' + ' 06 00 01 00 00 00 01'.repeat(35), 'MODBUS_BYTE_COUNT_MISMATCH', 3); // over 0xF5
  refused('14 0E 06 00 04 00 01 00 02', 'MODBUS_PDU_LENGTH', 3);
  refused('15 0D 06 00 04 00 07 00 04 06 AF 04 BE 10 0D', 'MODBUS_BYTE_COUNT_MISMATCH', 3); // record length says 4, 3 present
  refused('15 08 06 00 04 00 07 00 00 00', 'MODBUS_BYTE_COUNT_MISMATCH', 3); // below 9
});

test('padding bits of a coil write must be zero, so a request always re-encodes to its bytes', () => {
  refused('0F 00 13 00 0A 02 CD 05', 'MODBUS_VALUE_INVALID', 3);
  request('0F 00 00 00 08 01 FF');
});

test('truncated and extended PDUs of every fixed-size function are refused', () => {
  for (const [, req] of FIXTURES) {
    const bytes = hex(req);
    if (bytes[0] === 0x5a) continue; // opaque: any length is its data
    for (let cut = 1; cut < bytes.length; cut++) {
      const r = decodeRequest(bytes.subarray(0, cut));
      assert.ok(!r.ok, `${req} cut to ${cut} bytes`);
      assert.equal(r.error.exception, 3);
    }
    const longer = decodeRequest(Buffer.concat([bytes, hex('00')]));
    assert.ok(!longer.ok, `${req} + 1 byte`);
  }
  refused('', 'MODBUS_PDU_EMPTY', 3);
  refused(Buffer.alloc(254, 0x41), 'MODBUS_PDU_TOO_LONG', 3);
});

test('function codes: 0 and the exception range are illegal function; unknown 1..127 are opaque', () => {
  refused('00', 'MODBUS_FUNCTION_UNSUPPORTED', 1);
  refused('80 00', 'MODBUS_FUNCTION_UNSUPPORTED', 1);
  refused('FF', 'MODBUS_FUNCTION_UNSUPPORTED', 1);
  for (const fc of [9, 10, 13, 14, 65, 72, 90, 100, 110, 125, 126, 127]) {
    const r = decodeRequest(Buffer.from([fc, 1, 2, 3]));
    assert.ok(r.ok && r.value.kind === 'opaque', `fc ${fc}`);
    assert.deepEqual(r.value, { kind: 'opaque', fc, data: Buffer.from([1, 2, 3]) });
  }
  assert.throws(() => encodeRequest({ kind: 'opaque', fc: 3, data: hex('00 00 00 01') }), (e) => isPenstockError(e, 'PS_INTERNAL'));
});

test('FC43: MEI 14 read codes 1-4; MEI 13 (CANopen) and others are illegal function', () => {
  for (const code of [1, 2, 3, 4]) request(`2B 0E 0${code} 00`);
  refused('2B 0E 00 00', 'MODBUS_VALUE_INVALID', 3);
  refused('2B 0E 05 00', 'MODBUS_VALUE_INVALID', 3);
  refused('2B 0D 00 00 00 00', 'MODBUS_FUNCTION_UNSUPPORTED', 1);
  refused('2B 0F 01 00', 'MODBUS_FUNCTION_UNSUPPORTED', 1);
  refused('2B', 'MODBUS_PDU_LENGTH', 3);
  refused('2B 0E 01', 'MODBUS_PDU_LENGTH', 3);
});

test('FC8 diagnostics: defined sub-functions only, with the data the spec allows', () => {
  request('08 00 01 FF 00');
  request('08 00 01 00 00');
  refused('08 00 01 12 34', 'MODBUS_VALUE_INVALID', 3);
  request('08 00 03 3A 00');
  refused('08 00 03 3A 01', 'MODBUS_VALUE_INVALID', 3);
  refused('08 00 0A 00 01', 'MODBUS_VALUE_INVALID', 3);
  for (const sub of [5, 9, 0x13, 0x15, 0xffff]) refused(Buffer.from([8, sub >> 8, sub & 0xff, 0, 0]), 'MODBUS_FUNCTION_UNSUPPORTED', 1);
  refused('08 00 00 A5', 'MODBUS_PDU_LENGTH', 3); // query data must be N x 2 bytes
  refused('08 00 00', 'MODBUS_PDU_LENGTH', 3);
  refused('08 00 02 00 00 00 00', 'MODBUS_PDU_LENGTH', 3);
  request(toHex(Buffer.concat([hex('08 00 00'), Buffer.alloc(250, 7)]))); // 253-byte PDU
  const listenOnly = request('08 00 04 00 00');
  assert.equal(expectsResponse(listenOnly), false);
  const r = decodeResponse(listenOnly, hex('08 00 04 00 00'));
  assert.ok(!r.ok && r.error.code === 'MODBUS_NO_RESPONSE_EXPECTED');
});

test('file record limits: reference type 6, file 1..65535, records 0..9999, answer fits one PDU', () => {
  request('14 07 06 FF FF 27 0F 00 01'); // last record of the last file
  refused('14 07 06 00 01 27 0F 00 02', 'MODBUS_ADDRESS_OUT_OF_RANGE', 2); // runs past record 9999
  refused('14 07 06 00 01 27 10 00 01', 'MODBUS_ADDRESS_OUT_OF_RANGE', 2);
  refused('14 07 07 00 01 00 00 00 01', 'MODBUS_ADDRESS_OUT_OF_RANGE', 2); // reference type
  refused('14 07 06 00 00 00 00 00 01', 'MODBUS_ADDRESS_OUT_OF_RANGE', 2); // file 0
  refused('14 07 06 00 01 00 00 00 00', 'MODBUS_QUANTITY_OUT_OF_RANGE', 3);
  request('14 07 06 00 01 00 00 00 79'); // 121 registers: 2 + 242 = 244 response bytes
  refused('14 07 06 00 01 00 00 00 7A', 'MODBUS_QUANTITY_OUT_OF_RANGE', 3); // 246 > 245
  request('15 09 06 00 01 27 0F 00 01 00 01');
  refused('15 09 06 00 01 27 10 00 01 00 01', 'MODBUS_ADDRESS_OUT_OF_RANGE', 2);
});

test('responses are checked against the request they answer', () => {
  const fc3 = request('03 00 6B 00 03');
  const bad = (res: string, code: string) => {
    const r = decodeResponse(fc3, hex(res));
    assert.ok(!r.ok, res);
    assert.equal(r.error.code, code);
    assert.equal(r.error.exception, 0x0b, 'a bad answer reaches the client as "target failed to respond"');
  };
  bad('03 04 02 2B 00 00', 'MODBUS_RESPONSE_MISMATCH'); // fewer registers than asked
  bad('03 08 02 2B 00 00 00 64 00 00', 'MODBUS_RESPONSE_MISMATCH'); // more
  bad('03 06 02 2B 00 00 00', 'MODBUS_RESPONSE_MISMATCH'); // byte count lies
  bad('04 06 02 2B 00 00 00 64', 'MODBUS_RESPONSE_MISMATCH'); // another function
  bad('83 02 00', 'MODBUS_PDU_LENGTH');
  bad('', 'MODBUS_PDU_EMPTY');
  const ex = decodeResponse(fc3, hex('83 02'));
  assert.ok(ex.ok);
  assert.deepEqual(ex.value, { kind: 'exception', fc: 3, exception: 2 });
  assert.equal(toHex(encodeResponse(ex.value)), '83 02');

  const write = request('06 00 01 00 03');
  assert.ok(!decodeResponse(write, hex('06 00 01 00 04')).ok, 'echo with another value');
  assert.ok(!decodeResponse(write, hex('06 00 02 00 03')).ok, 'echo with another address');
  const fc16 = request('10 00 01 00 02 04 00 0A 01 02');
  assert.ok(!decodeResponse(fc16, hex('10 00 01 00 03')).ok);
  const fc23 = request('17 00 03 00 06 00 0E 00 03 06 00 FF 00 FF 00 FF');
  assert.ok(!decodeResponse(fc23, hex('17 06 00 FE 0A CD 00 01')).ok, 'FC23 answer must hold the read quantity');
  const fc1 = request('01 00 13 00 13');
  assert.ok(!decodeResponse(fc1, hex('01 02 CD 6B')).ok);
  const fifo = request('18 04 DE');
  assert.ok(!decodeResponse(fifo, Buffer.concat([hex('18 00 42 00 20'), Buffer.alloc(64)])).ok, 'FIFO count 32 > 31');
  assert.ok(!decodeResponse(fifo, hex('18 00 08 00 02 01 B8 12 84')).ok, 'FIFO byte count lies');
  const id4 = request('2B 0E 04 01');
  assert.ok(decodeResponse(id4, hex('2B 0E 04 81 00 00 01 01 02 41 42')).ok);
  assert.ok(!decodeResponse(id4, hex('2B 0E 04 81 00 00 02 01 01 41 02 01 42')).ok, 'individual access returns one object');
  assert.ok(!decodeResponse(id4, hex('2B 0E 04 81 00 00 01 01 05 41 42')).ok, 'object length lies');
  assert.ok(!decodeResponse(id4, hex('2B 0E 03 81 00 00 01 01 02 41 42')).ok, 'read code differs');
  const fc20 = request('14 0E 06 00 04 00 01 00 02 06 00 03 00 09 00 02');
  assert.ok(!decodeResponse(fc20, hex('14 0A 05 06 0D FE 00 20 03 06 33 CD')).ok, 'second record shorter than asked');
  const fc12 = request('0C');
  assert.ok(!decodeResponse(fc12, hex('0C 09 00 00 01 08 01 21 20 00')).ok, 'event log byte count lies');
});

test('exception responses and their names', () => {
  assert.equal(toHex(encodeException(3, 2)), '83 02');
  assert.equal(toHex(encodeException(0x5a, 1)), 'da 01');
  assert.equal(exceptionName(0x0b), 'GATEWAY_TARGET_FAILED_TO_RESPOND');
  assert.equal(exceptionName(0x0a), 'GATEWAY_PATH_UNAVAILABLE');
  assert.equal(exceptionName(8), 'MEMORY_PARITY_ERROR');
  assert.equal(exceptionName(7), undefined);
});

test('every decode error code is documented and named in upper snake case', () => {
  for (const [code, text] of Object.entries(MODBUS_DECODE_ERRORS)) {
    assert.match(code, /^(MODBUS|MBAP|RTU)_[A-Z_]+$/);
    assert.ok(text.length > 10);
  }
});

test('decoded requests do not share memory with the input buffer', () => {
  const bytes = hex('5A 01 02 03');
  const r = decodeRequest(bytes);
  bytes.fill(0);
  assert.ok(r.ok && r.value.kind === 'opaque');
  assert.equal(toHex(r.value.data), '01 02 03');
});
