// Modbus RTU framing for serial lines (RS-485): unit id + PDU + CRC-16/MODBUS (low byte first).
//
// An RTU frame has no length field; the spec delimits frames by 3.5 character times of silence. A
// gateway that owns the bus (one request at a time) knows what it asked, so the response decoder finds
// the end of the answer without timing:
//   - an exception (fc | 0x80) is always 5 bytes;
//   - responses whose size follows from the request (reads by quantity, write echoes, FC 8, 20, 21, 23)
//     use the request;
//   - FC 12, 17 (byte count), 24 (2-byte byte count) and 43/14 (walking the object list) use the length
//     information the response itself carries, checked against the 256-byte ADU maximum;
//   - an opaque (unknown) function's answer has no computable length: the decoder completes only when
//     the caller reports the end of the frame with `end()` (its t3.5 silence timer, or its time-out).
// The CRC is checked once the expected length is in; the PDU is then validated against the request by
// decodeResponse. Silence, time-outs and bus turn-around belong to the caller.
import { EXCEPTION_CODES, decodeError, type Decoded, type ModbusDecodeError } from './exceptions.ts';
import { MODBUS_LIMITS as L, DIAGNOSTIC_SUB_FUNCTIONS as D } from './functions.ts';
import { bitBytes, encodeFileRecordWrites, type ModbusRequest } from './pdu.ts';
import { decodeResponse, deviceIdResponseLength, expectsResponse, type ModbusResponse } from './response.ts';

export const RTU_MAX_FRAME = 1 + L.MAX_PDU + 2; // 256
export const RTU_MIN_FRAME = 4; // unit + fc + CRC (the shortest valid frame on a line is 4 bytes)

const CRC_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

/** CRC-16/MODBUS: reflected polynomial 0xA001, init 0xFFFF. Sent low byte first. */
export function crc16Modbus(data: Uint8Array, start = 0, end = data.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ data[i]!) & 0xff]!;
  return crc;
}

/** An RTU frame: unit id, PDU, CRC low byte, CRC high byte. Throws RangeError for a PDU outside 1..253 bytes. */
export function encodeRtu(unitId: number, pdu: Uint8Array): Buffer {
  if (pdu.length < 1 || pdu.length > L.MAX_PDU) throw new RangeError(`PDU of ${pdu.length} bytes cannot be framed`);
  const out = Buffer.allocUnsafe(pdu.length + 3);
  out.writeUInt8(unitId, 0);
  out.set(pdu, 1);
  out.writeUInt16LE(crc16Modbus(out, 0, pdu.length + 1), pdu.length + 1);
  return out;
}

const NO_ANSWER = EXCEPTION_CODES.GATEWAY_TARGET_FAILED_TO_RESPOND;

/** Checks a whole RTU frame (delimited by silence) and splits it. Never throws. */
export function decodeRtuFrame(frame: Uint8Array): Decoded<{ unitId: number; pdu: Buffer }> {
  if (frame.length < RTU_MIN_FRAME || frame.length > RTU_MAX_FRAME) {
    return decodeError('RTU_FRAME_LENGTH', NO_ANSWER, frame[1] ?? 0, `RTU frame of ${frame.length} bytes outside ${RTU_MIN_FRAME}..${RTU_MAX_FRAME}`);
  }
  const end = frame.length - 2;
  if (crc16Modbus(frame, 0, end) !== (frame[end]! | (frame[end + 1]! << 8))) {
    return decodeError('RTU_CRC', NO_ANSWER, frame[1]!, 'RTU frame CRC does not match');
  }
  return { ok: true, value: { unitId: frame[0]!, pdu: Buffer.from(frame.subarray(1, end)) } };
}

type Length = { length: number } | { incomplete: true } | { unknown: true } | { invalid: string };

/**
 * The PDU length of the response to `req`, from the request and, where needed, from the response bytes
 * seen so far (`pdu`, at least the function code). Exported for the tests and for an RTU server side.
 */
export function expectedResponsePduLength(req: ModbusRequest, pdu: Uint8Array): Length {
  const fc = pdu[0]!;
  if (fc === (req.fc | 0x80)) return { length: 2 };
  if (fc !== req.fc) return { invalid: `function code ${fc} answers function ${req.fc}` };
  switch (req.kind) {
    case 'read_bits': return { length: 2 + bitBytes(req.quantity) };
    case 'read_registers': return { length: 2 + 2 * req.quantity };
    case 'read_write_registers': return { length: 2 + 2 * req.readQuantity };
    case 'write_single_coil':
    case 'write_single_register':
    case 'write_multiple_coils':
    case 'write_multiple_registers': return { length: 5 };
    case 'mask_write_register': return { length: 7 };
    case 'diagnostics': {
      const echoes = req.subFunction === D.RETURN_QUERY_DATA || req.subFunction === D.RESTART_COMMUNICATIONS_OPTION ||
        req.subFunction === D.CHANGE_ASCII_INPUT_DELIMITER || req.subFunction === D.CLEAR_COUNTERS_AND_DIAGNOSTIC_REGISTER ||
        req.subFunction === D.CLEAR_OVERRUN_COUNTER_AND_FLAG;
      return { length: echoes ? 3 + req.data.length : 5 };
    }
    case 'read_file_record': return { length: 2 + req.subRequests.reduce((n, s) => n + 2 + 2 * s.recordLength, 0) };
    case 'write_file_record': return { length: encodeFileRecordWrites(req.subRequests).length };
    case 'no_data':
      if (req.fc === 7) return { length: 2 };
      if (req.fc === 11) return { length: 5 };
      if (pdu.length < 2) return { incomplete: true };
      return { length: 2 + pdu[1]! }; // FC 12, 17: byte count (≤ 255, so within the ADU bound)
    case 'read_fifo_queue': {
      if (pdu.length < 3) return { incomplete: true };
      const byteCount = (pdu[1]! << 8) | pdu[2]!;
      if (byteCount > 2 + 2 * L.FIFO_COUNT_MAX) return { invalid: `FIFO byte count ${byteCount} exceeds ${2 + 2 * L.FIFO_COUNT_MAX}` };
      return { length: 3 + byteCount };
    }
    case 'read_device_identification': {
      const walked = deviceIdResponseLength(pdu);
      if ('invalid' in walked) return { invalid: 'device identification objects exceed the PDU maximum' };
      return walked.complete ? { length: walked.length } : { incomplete: true };
    }
    case 'opaque': return { unknown: true };
  }
}

export type RtuResponseResult =
  | { ok: true; unitId: number; response: ModbusResponse; /** bytes after the frame (line noise); the caller discards them */ trailingBytes: number }
  | { ok: false; error: ModbusDecodeError };

/**
 * Collects the RTU answer to one request from a serial byte stream. `push` returns undefined until the
 * frame is complete (or provably bad), then the result; the decoder is single use (one per request).
 * Never holds more than RTU_MAX_FRAME bytes.
 */
export class RtuResponseDecoder {
  readonly #req: ModbusRequest;
  readonly #unitId: number;
  #buf = Buffer.alloc(RTU_MAX_FRAME);
  #have = 0;
  #result: RtuResponseResult | undefined;

  constructor(req: ModbusRequest, unitId: number) {
    this.#req = req;
    this.#unitId = unitId;
    if (!expectsResponse(req)) {
      this.#result = decodeError('MODBUS_NO_RESPONSE_EXPECTED', NO_ANSWER, req.fc, 'force listen only mode is never answered');
    }
  }

  get bufferedBytes(): number {
    return this.#have;
  }

  /** The result once known (also returned by the push that completed it). */
  get result(): RtuResponseResult | undefined {
    return this.#result;
  }

  push(chunk: Uint8Array): RtuResponseResult | undefined {
    // After the result, further bytes are line noise or a late answer: the caller discards them.
    if (this.#result) return undefined;
    const take = Math.min(chunk.length, RTU_MAX_FRAME - this.#have);
    this.#buf.set(chunk.subarray(0, take), this.#have);
    this.#have += take;
    const extra = chunk.length - take;
    const frame = this.#buf.subarray(0, this.#have);
    if (this.#have >= 1 && frame[0] !== this.#unitId) {
      return this.#finish(decodeError('RTU_UNIT_MISMATCH', NO_ANSWER, this.#req.fc, `answer from unit ${frame[0]}, expected ${this.#unitId}`), extra);
    }
    if (this.#have < 2) return undefined;
    const need = expectedResponsePduLength(this.#req, frame.subarray(1));
    if ('invalid' in need) return this.#finish(decodeError('MODBUS_RESPONSE_MISMATCH', NO_ANSWER, this.#req.fc, need.invalid), extra);
    if ('incomplete' in need || 'unknown' in need) {
      if (this.#have === RTU_MAX_FRAME && 'unknown' in need) return this.#finish(this.#complete(RTU_MAX_FRAME), extra);
      return undefined;
    }
    const total = 1 + need.length + 2;
    if (total > RTU_MAX_FRAME) return this.#finish(decodeError('RTU_FRAME_LENGTH', NO_ANSWER, this.#req.fc, `answer would be ${total} bytes`), extra);
    if (this.#have < total) return undefined;
    return this.#finish(this.#complete(total), this.#have - total + extra);
  }

  /**
   * The line went silent (t3.5) or the caller's time-out fired: take what arrived as the whole frame.
   * Completes an opaque answer; for any other request an incomplete answer is a length error.
   */
  end(): RtuResponseResult {
    if (this.#result) return this.#result;
    const need = this.#have >= 2 ? expectedResponsePduLength(this.#req, this.#buf.subarray(1, this.#have)) : { incomplete: true as const };
    if ('unknown' in need && this.#have >= RTU_MIN_FRAME) return this.#finish(this.#complete(this.#have), 0)!;
    return this.#finish(decodeError('RTU_FRAME_LENGTH', NO_ANSWER, this.#req.fc, `answer ended after ${this.#have} bytes`), 0)!;
  }

  #complete(total: number): RtuResponseResult {
    const framed = decodeRtuFrame(this.#buf.subarray(0, total));
    if (!framed.ok) return framed;
    const decoded = decodeResponse(this.#req, framed.value.pdu);
    if (!decoded.ok) return decoded;
    return { ok: true, unitId: framed.value.unitId, response: decoded.value, trailingBytes: 0 };
  }

  #finish(result: RtuResponseResult, trailing: number): RtuResponseResult | undefined {
    this.#result = result.ok ? { ...result, trailingBytes: trailing } : result;
    this.#buf = Buffer.alloc(0);
    this.#have = 0;
    return this.#result;
  }
}
