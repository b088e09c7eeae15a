// Property test: random and mutated Modbus/TCP streams through the MBAP decoder and the PDU decoders.
// Size knob: PENSTOCK_FUZZ_FRAMES (default 100000 frames). Each run builds a stream of FRAMES_PER_RUN
// frames — valid requests of every function (quantities biased to their limits), then maybe mutated
// (byte flipped, truncated, extended, function code replaced, quantity or byte count made to lie, or
// replaced by random bytes), wrapped in an MBAP header that may lie about its length or protocol id —
// and feeds it in random chunks. Asserted for every frame: nothing throws; each PDU is either a request
// that satisfies the spec limits and re-encodes to exactly its bytes, or a typed error with a registered
// code and an exception of 1, 2 or 3; framing of honest headers is exact; buffering stays under one frame.
// Each accepted request also gets a synthesised (and maybe mutated) answer through decodeResponse and
// through the RTU response decoder: nothing throws, and an accepted answer re-decodes to itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeRequest,
  decodeResponse,
  encodeMbap,
  encodeRequest,
  encodeResponse,
  encodeRtu,
  MbapDecoder,
  MBAP_MAX_FRAME,
  MODBUS_DECODE_ERRORS,
  requestToActions,
  RtuResponseDecoder,
  type ModbusRequest,
  type ModbusResponse,
} from '../../../src/adapters/modbus/codec.ts';
import { assertWithinSpec } from './helpers.ts';

const TOTAL_FRAMES = Number(process.env['PENSTOCK_FUZZ_FRAMES'] ?? 100_000);
const FRAMES_PER_RUN = 10;

/** Small deterministic PRNG (mulberry32): bulk values come from a seed fast-check chose. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % n);
  };
}

const KINDS = [
  'read_bits', 'read_registers', 'write_single_coil', 'write_single_register', 'no_data', 'diagnostics',
  'write_multiple_coils', 'write_multiple_registers', 'read_file_record', 'write_file_record',
  'mask_write_register', 'read_write_registers', 'read_fifo_queue', 'read_device_identification', 'opaque',
] as const;
const OPAQUE_CODES = Array.from({ length: 127 }, (_, i) => i + 1).filter((c) => ![1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43].includes(c));
const DIAG_SUBS = [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20];

/** A quantity in 1..max, a third of the time at an edge. */
function quantity(r: (n: number) => number, max: number): number {
  const p = r(6);
  return p === 0 ? max : p === 1 ? 1 : 1 + r(max);
}
function range(r: (n: number) => number, max: number): [number, number] {
  const q = quantity(r, max);
  const p = r(4);
  return [p === 0 ? 65536 - q : p === 1 ? 0 : r(65537 - q), q];
}
const words = (r: (n: number) => number, n: number) => Array.from({ length: n }, () => r(0x10000));

function makeRequest(kind: (typeof KINDS)[number], r: (n: number) => number): ModbusRequest {
  switch (kind) {
    case 'read_bits': { const [address, q] = range(r, 2000); return { kind, fc: r(2) ? 1 : 2, address, quantity: q }; }
    case 'read_registers': { const [address, q] = range(r, 125); return { kind, fc: r(2) ? 3 : 4, address, quantity: q }; }
    case 'write_single_coil': return { kind, fc: 5, address: r(0x10000), value: r(2) as 0 | 1 };
    case 'write_single_register': return { kind, fc: 6, address: r(0x10000), value: r(0x10000) };
    case 'no_data': return { kind, fc: ([7, 11, 12, 17] as const)[r(4)]! };
    case 'diagnostics': {
      const sub = DIAG_SUBS[r(DIAG_SUBS.length)]!;
      const data = sub === 0 ? Buffer.from(words(r, quantity(r, 125)).flatMap((w) => [w >> 8, w & 0xff]))
        : sub === 1 ? Buffer.from(r(2) ? [0xff, 0] : [0, 0]) : sub === 3 ? Buffer.from([r(256), 0]) : Buffer.alloc(2);
      return { kind, fc: 8, subFunction: sub, data };
    }
    case 'write_multiple_coils': { const [address, q] = range(r, 1968); return { kind, fc: 15, address, values: Array.from({ length: q }, () => r(2) as 0 | 1) }; }
    case 'write_multiple_registers': { const [address, q] = range(r, 123); return { kind, fc: 16, address, values: words(r, q) }; }
    case 'read_file_record': {
      const subRequests = [];
      let budget = 245;
      for (let n = 1 + r(5); n > 0 && budget >= 4; n--) {
        const recordLength = 1 + r(Math.min(20, (budget - 2) >> 1));
        budget -= 2 + 2 * recordLength;
        subRequests.push({ fileNumber: 1 + r(0xffff), recordNumber: r(10001 - recordLength), recordLength });
      }
      return { kind, fc: 20, subRequests };
    }
    case 'write_file_record': {
      const subRequests = [];
      let budget = 251;
      for (let n = 1 + r(4); n > 0 && budget >= 9; n--) {
        const len = 1 + r(Math.min(20, (budget - 7) >> 1));
        budget -= 7 + 2 * len;
        subRequests.push({ fileNumber: 1 + r(0xffff), recordNumber: r(10001 - len), values: words(r, len) });
      }
      return { kind, fc: 21, subRequests };
    }
    case 'mask_write_register': return { kind, fc: 22, address: r(0x10000), andMask: r(0x10000), orMask: r(0x10000) };
    case 'read_write_registers': {
      const [readAddress, readQuantity] = range(r, 125);
      const [writeAddress, wq] = range(r, 121);
      return { kind, fc: 23, readAddress, readQuantity, writeAddress, values: words(r, wq) };
    }
    case 'read_fifo_queue': return { kind, fc: 24, address: r(0x10000) };
    case 'read_device_identification': return { kind, fc: 43, meiType: 14, readDeviceIdCode: (1 + r(4)) as 1 | 2 | 3 | 4, objectId: r(256) };
    case 'opaque': return { kind, fc: OPAQUE_CODES[r(OPAQUE_CODES.length)]!, data: Buffer.from(Array.from({ length: r(253) }, () => r(256))) };
  }
}

/** A plausible answer to `req` (values random), from which mutations start. */
function makeResponse(req: ModbusRequest, r: (n: number) => number): ModbusResponse {
  if (r(10) === 0) return { kind: 'exception', fc: req.fc, exception: 1 + r(11) };
  switch (req.kind) {
    case 'read_bits': return { kind: 'read_bits', fc: req.fc, values: Array.from({ length: req.quantity }, () => r(2) as 0 | 1) };
    case 'read_registers': return { kind: 'read_registers', fc: req.fc, values: words(r, req.quantity) };
    case 'read_write_registers': return { kind: 'read_registers', fc: 23, values: words(r, req.readQuantity) };
    case 'write_single_coil': return { kind: 'write_single', fc: 5, address: req.address, value: req.value ? 0xff00 : 0 };
    case 'write_single_register': return { kind: 'write_single', fc: 6, address: req.address, value: req.value };
    case 'write_multiple_coils':
    case 'write_multiple_registers': return { kind: 'write_multiple', fc: req.fc, address: req.address, quantity: req.values.length };
    case 'no_data':
      if (req.fc === 7) return { kind: 'read_exception_status', fc: 7, status: r(256) };
      if (req.fc === 11) return { kind: 'comm_event_counter', fc: 11, status: r(2) ? 0xffff : 0, eventCount: r(0x10000) };
      if (req.fc === 12) return { kind: 'comm_event_log', fc: 12, status: 0, eventCount: r(0x10000), messageCount: r(0x10000), events: Buffer.alloc(r(65), 0x20) };
      return { kind: 'report_server_id', fc: 17, data: Buffer.alloc(1 + r(40), 0xff) };
    case 'diagnostics':
      return { kind: 'diagnostics', fc: 8, subFunction: req.subFunction, data: [0, 1, 3, 10, 20].includes(req.subFunction) ? req.data : Buffer.from([r(256), r(256)]) };
    case 'read_file_record': return { kind: 'read_file_record', fc: 20, records: req.subRequests.map((s) => words(r, s.recordLength)) };
    case 'write_file_record': return { kind: 'write_file_record', fc: 21, subRequests: req.subRequests };
    case 'mask_write_register': return { kind: 'mask_write_register', fc: 22, address: req.address, andMask: req.andMask, orMask: req.orMask };
    case 'read_fifo_queue': return { kind: 'read_fifo_queue', fc: 24, values: words(r, r(32)) };
    case 'read_device_identification': {
      const n = req.readDeviceIdCode === 4 ? 1 : r(4);
      return {
        kind: 'read_device_identification', fc: 43, readDeviceIdCode: req.readDeviceIdCode, conformityLevel: 0x81, moreFollows: false, nextObjectId: 0,
        objects: Array.from({ length: n }, (_, i) => ({ id: i, value: Buffer.alloc(r(30), 0x41) })),
      };
    }
    case 'opaque': return { kind: 'opaque', fc: req.fc, data: Buffer.alloc(r(100), 7) };
  }
}

const MUTATIONS = ['none', 'none', 'flip', 'truncate', 'extend', 'function', 'quantity', 'byte_count', 'random'] as const;
type Mutation = (typeof MUTATIONS)[number];

function mutate(pdu: Buffer, how: Mutation, r: (n: number) => number): Buffer {
  switch (how) {
    case 'none': return pdu;
    case 'flip': { const out = Buffer.from(pdu); const i = r(out.length); out[i] = out[i]! ^ (1 + r(255)); return out; }
    case 'truncate': return pdu.subarray(0, r(pdu.length));
    case 'extend': return Buffer.concat([pdu, Buffer.from(Array.from({ length: 1 + r(8) }, () => r(256)))]).subarray(0, 253);
    case 'function': { const out = Buffer.from(pdu); out[0] = r(256); return out; }
    case 'quantity': {
      // A quantity (or address) field made to lie: just past a limit, zero, or anything.
      const out = Buffer.from(pdu);
      if (out.length >= 5) out.writeUInt16BE([0, 0xffff, 126, 2001, 1969, 124, 122, r(0x10000)][r(8)]!, 1 + 2 * r(2));
      return out;
    }
    case 'byte_count': {
      const out = Buffer.from(pdu);
      const at = [1, 5, 9][r(3)]!;
      if (out.length > at) out[at] = r(256);
      return out;
    }
    case 'random': return Buffer.from(Array.from({ length: 1 + r(260) }, () => r(256))).subarray(0, 253);
  }
}

type FrameSpec = { kind: (typeof KINDS)[number]; seed: number; mutation: Mutation; header: 'honest' | 'length' | 'protocol'; tid: number; unit: number };

const frameSpec: fc.Arbitrary<FrameSpec> = fc.record({
  kind: fc.constantFrom(...KINDS),
  seed: fc.integer(),
  mutation: fc.constantFrom(...MUTATIONS),
  header: fc.constantFrom('honest', 'honest', 'honest', 'honest', 'honest', 'honest', 'honest', 'honest', 'length', 'protocol'),
  tid: fc.integer({ min: 0, max: 0xffff }),
  unit: fc.integer({ min: 0, max: 255 }),
});

let framesThrown = 0;
let framesSeen = 0;
let requestsAccepted = 0;
let responsesChecked = 0;

function checkRequestPdu(pdu: Buffer, r: (n: number) => number): void {
  framesSeen++;
  const decoded = decodeRequest(pdu);
  if (!decoded.ok) {
    assert.ok(Object.hasOwn(MODBUS_DECODE_ERRORS, decoded.error.code), decoded.error.code);
    assert.ok([1, 2, 3].includes(decoded.error.exception));
    return;
  }
  requestsAccepted++;
  const req = decoded.value;
  assertWithinSpec(req);
  assert.ok(encodeRequest(req).equals(pdu), 'a decoded request re-encodes to exactly its bytes');
  for (const a of requestToActions(req, 't', 1)) assert.ok(a.object.address >= 0 && a.object.address <= 0xffff);

  // The answer side: a synthesised answer, maybe mutated, through the PDU and RTU response decoders.
  const answer = mutate(encodeResponse(makeResponse(req, r)), MUTATIONS[r(MUTATIONS.length)]!, r);
  const res = decodeResponse(req, answer);
  if (res.ok) {
    responsesChecked++;
    const again = decodeResponse(req, encodeResponse(res.value));
    assert.ok(again.ok);
    assert.deepEqual(again.value, res.value);
  } else {
    assert.ok(Object.hasOwn(MODBUS_DECODE_ERRORS, res.error.code));
  }
  if (answer.length > 0) {
    const rtu = new RtuResponseDecoder(req, 1);
    const framed = encodeRtu(1, answer);
    const cut = r(framed.length + 1);
    const out = rtu.push(framed.subarray(0, cut)) ?? rtu.push(framed.subarray(cut)) ?? rtu.end();
    assert.ok(rtu.bufferedBytes <= 256);
    if (out.ok) assert.ok(decodeResponse(req, encodeResponse(out.response)).ok);
  }
}

test(`fuzz: ${TOTAL_FRAMES} random and mutated frames through MBAP and PDU decoders`, () => {
  const runs = Math.ceil(TOTAL_FRAMES / FRAMES_PER_RUN);
  fc.assert(
    fc.property(fc.array(frameSpec, { minLength: FRAMES_PER_RUN, maxLength: FRAMES_PER_RUN }), fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 40 }), (specs, chunkSizes) => {
      const honestPdus: Buffer[] = [];
      let honestPrefix = true;
      const parts: Buffer[] = [];
      for (const s of specs) {
        const r = prng(s.seed);
        const pdu = mutate(encodeRequest(makeRequest(s.kind, r)), s.mutation, r);
        // An empty PDU cannot be framed honestly (length 1): it becomes a length lie.
        let frame = pdu.length > 0 ? encodeMbap(s.tid, s.unit, pdu) : Buffer.from([s.tid >> 8, s.tid & 0xff, 0, 0, 0, 1, s.unit]);
        if (s.header === 'length') {
          frame = Buffer.from(frame);
          frame.writeUInt16BE([0, 1, 255, 0xffff, r(0x10000), Math.max(2, frame.readUInt16BE(4) - 1), frame.readUInt16BE(4) + 1][r(7)]!, 4);
        } else if (s.header === 'protocol') {
          frame = Buffer.from(frame);
          frame.writeUInt16BE(1 + r(0xffff), 2);
        }
        parts.push(frame);
        if (honestPrefix && s.header === 'honest' && pdu.length > 0) honestPdus.push(pdu);
        else honestPrefix = false;
      }
      framesThrown += specs.length;
      const stream = Buffer.concat(parts);
      const decoder = new MbapDecoder();
      const got: Buffer[] = [];
      let closed = false;
      let at = 0;
      let i = 0;
      const r = prng(specs[0]!.seed ^ 0x5bd1e995);
      while (at < stream.length) {
        const size = chunkSizes[i++ % chunkSizes.length]!;
        for (const result of decoder.push(stream.subarray(at, at + size))) {
          assert.ok(!closed, 'nothing is framed after a close error');
          if ('error' in result) {
            assert.ok(result.error.code === 'MBAP_LENGTH' || result.error.code === 'MBAP_PROTOCOL_ID');
            closed = result.error.close;
            continue;
          }
          assert.ok(result.frame.pdu.length >= 1 && result.frame.pdu.length <= 253);
          got.push(result.frame.pdu);
          checkRequestPdu(result.frame.pdu, r);
        }
        assert.ok(decoder.bufferedBytes < MBAP_MAX_FRAME, `buffered ${decoder.bufferedBytes}`);
        at += size;
      }
      // Honest headers before the first lie are framed exactly.
      for (let k = 0; k < honestPdus.length; k++) assert.ok(got[k]?.equals(honestPdus[k]!), `frame ${k} framed exactly`);
    }),
    { numRuns: runs },
  );
  // Raw PDUs straight into the PDU decoder too (random bytes, no framing), a tenth of the budget.
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 260 }), fc.integer(), (bytes, seed) => {
      checkRequestPdu(Buffer.from(bytes), prng(seed));
    }),
    { numRuns: Math.ceil(TOTAL_FRAMES / 10) },
  );
  assert.ok(framesThrown >= TOTAL_FRAMES, `${framesThrown} frames thrown`);
  // The generator must reach the accept paths too, or the round-trip half of the property is untested.
  assert.ok(requestsAccepted > framesSeen / 4, `${requestsAccepted} of ${framesSeen} accepted`);
  assert.ok(responsesChecked > requestsAccepted / 4, `${responsesChecked} answers accepted`);
  console.log(`# fuzz: ${framesThrown} frames in MBAP streams + ${Math.ceil(TOTAL_FRAMES / 10)} raw PDUs; ${framesSeen} PDUs decoded, ` +
    `${requestsAccepted} requests accepted and round-tripped, ${responsesChecked} answers accepted`);
});
