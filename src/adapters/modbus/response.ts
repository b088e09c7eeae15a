// Modbus response PDUs: typed responses, a decoder that checks a response against the request it answers
// (so a PLC, or anything pretending to be one, that answers with the wrong function, count or echo is
// caught), and an encoder for answering clients. A refusal of a response carries the exception the
// client should get instead: GATEWAY_TARGET_FAILED_TO_RESPOND (0x0B) — an answer that does not answer
// the question is treated as no answer.
import { EXCEPTION_CODES, decodeError, type Decoded, type ModbusDecodeError } from './exceptions.ts';
import {
  DEVICE_ID_CONFORMITY_LEVELS,
  DIAGNOSTIC_SUB_FUNCTIONS as D,
  FUNCTION_CODES as F,
  MEI_READ_DEVICE_ID,
  MODBUS_LIMITS as L,
  COIL_ON,
  COIL_OFF,
} from './functions.ts';
import {
  bitBytes,
  encodeFileRecordWrites,
  parseFileRecordWrites,
  readRegisters,
  u16,
  writeBits,
  writeRegisters,
  type FileRecordWrite,
  type ModbusRequest,
} from './pdu.ts';

export interface ReadBitsResponse { kind: 'read_bits'; fc: 1 | 2; values: Array<0 | 1> }
/** Registers read by FC 3, 4, 23, or FIFO values of FC 24. */
export interface ReadRegistersResponse { kind: 'read_registers'; fc: 3 | 4 | 23; values: number[] }
export interface WriteSingleResponse { kind: 'write_single'; fc: 5 | 6; address: number; /** raw 16-bit value (FC 5: 0x0000/0xFF00) */ value: number }
export interface ReadExceptionStatusResponse { kind: 'read_exception_status'; fc: 7; status: number }
export interface DiagnosticsResponse { kind: 'diagnostics'; fc: 8; subFunction: number; data: Buffer }
export interface CommEventCounterResponse { kind: 'comm_event_counter'; fc: 11; status: number; eventCount: number }
export interface CommEventLogResponse { kind: 'comm_event_log'; fc: 12; status: number; eventCount: number; messageCount: number; events: Buffer }
export interface WriteMultipleResponse { kind: 'write_multiple'; fc: 15 | 16; address: number; quantity: number }
/** Server id, run indicator and additional data: device specific, carried as bytes. */
export interface ReportServerIdResponse { kind: 'report_server_id'; fc: 17; data: Buffer }
export interface ReadFileRecordResponse { kind: 'read_file_record'; fc: 20; records: number[][] }
export interface WriteFileRecordResponse { kind: 'write_file_record'; fc: 21; subRequests: FileRecordWrite[] }
export interface MaskWriteRegisterResponse { kind: 'mask_write_register'; fc: 22; address: number; andMask: number; orMask: number }
export interface ReadFifoQueueResponse { kind: 'read_fifo_queue'; fc: 24; values: number[] }
export interface DeviceIdObject { id: number; value: Buffer }
export interface ReadDeviceIdentificationResponse {
  kind: 'read_device_identification'; fc: 43; readDeviceIdCode: number; conformityLevel: number;
  moreFollows: boolean; nextObjectId: number; objects: DeviceIdObject[];
}
export interface OpaqueResponse { kind: 'opaque'; fc: number; data: Buffer }
/** `fc` is the request's function code (the wire carries fc | 0x80). */
export interface ExceptionResponse { kind: 'exception'; fc: number; exception: number }

export type ModbusResponse =
  | ReadBitsResponse | ReadRegistersResponse | WriteSingleResponse | ReadExceptionStatusResponse | DiagnosticsResponse
  | CommEventCounterResponse | CommEventLogResponse | WriteMultipleResponse | ReportServerIdResponse
  | ReadFileRecordResponse | WriteFileRecordResponse | MaskWriteRegisterResponse | ReadFifoQueueResponse
  | ReadDeviceIdentificationResponse | OpaqueResponse | ExceptionResponse;

/** False for diagnostics sub-function 04 (force listen only mode): the server never answers it. */
export function expectsResponse(req: ModbusRequest): boolean {
  return !(req.kind === 'diagnostics' && req.subFunction === D.FORCE_LISTEN_ONLY_MODE);
}

// ---------------------------------------------------------------- decoding

type Fail = { ok: false; error: ModbusDecodeError };
const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
const NO_ANSWER = EXCEPTION_CODES.GATEWAY_TARGET_FAILED_TO_RESPOND;

function mismatch(fc: number, message: string): Fail {
  return decodeError('MODBUS_RESPONSE_MISMATCH', NO_ANSWER, fc, `function ${fc} response: ${message}`);
}
function lengthMismatch(fc: number, got: number, want: number | string): Fail {
  return decodeError('MODBUS_PDU_LENGTH', NO_ANSWER, fc, `function ${fc} response: PDU is ${got} bytes, expected ${want}`);
}

function bytesEqual(a: Uint8Array, aStart: number, b: Uint8Array): boolean {
  if (a.length - aStart !== b.length) return false;
  for (let i = 0; i < b.length; i++) if (a[aStart + i] !== b[i]) return false;
  return true;
}

/**
 * Decodes the response PDU `pdu` to `req` and checks that it answers it. Never throws. An exception
 * response (fc | 0x80, one code byte) is a valid answer to any request; its code is passed through as
 * is, named or not.
 */
export function decodeResponse(req: ModbusRequest, pdu: Uint8Array): Decoded<ModbusResponse> {
  const fc = req.fc;
  if (pdu.length === 0) return decodeError('MODBUS_PDU_EMPTY', NO_ANSWER, fc, 'empty response PDU');
  if (pdu.length > L.MAX_PDU) return decodeError('MODBUS_PDU_TOO_LONG', NO_ANSWER, fc, `response PDU is ${pdu.length} bytes`);
  if (!expectsResponse(req)) return decodeError('MODBUS_NO_RESPONSE_EXPECTED', NO_ANSWER, fc, 'force listen only mode is never answered');
  const got = pdu[0]!;
  if (got === (fc | 0x80)) {
    if (pdu.length !== 2) return lengthMismatch(fc, pdu.length, 2);
    return ok({ kind: 'exception', fc, exception: pdu[1]! });
  }
  if (got !== fc) return mismatch(fc, `function code ${got} answers function ${fc}`);

  switch (req.kind) {
    case 'read_bits': {
      const want = bitBytes(req.quantity);
      if (pdu.length < 2 || pdu[1] !== want || pdu.length !== 2 + want) return mismatch(fc, `byte count must be ${want} for ${req.quantity} bits`);
      // Padding bits of a response are ignored (not refused): they carry no value the client reads.
      const values = new Array<0 | 1>(req.quantity);
      for (let i = 0; i < req.quantity; i++) values[i] = ((pdu[2 + (i >> 3)]! >> (i & 7)) & 1) as 0 | 1;
      return ok({ kind: 'read_bits', fc: req.fc, values });
    }
    case 'read_registers':
      return decodeRegisterValues(pdu, req.fc, req.quantity);
    case 'read_write_registers':
      return decodeRegisterValues(pdu, req.fc, req.readQuantity);
    case 'write_single_coil':
    case 'write_single_register': {
      if (pdu.length !== 5) return lengthMismatch(fc, pdu.length, 5);
      const address = u16(pdu, 1);
      const value = u16(pdu, 3);
      const sent = req.kind === 'write_single_coil' ? (req.value ? COIL_ON : COIL_OFF) : req.value;
      if (address !== req.address || value !== sent) return mismatch(fc, 'echo differs from the request');
      return ok({ kind: 'write_single', fc: req.fc, address, value });
    }
    case 'no_data':
      return decodeNoDataResponse(req.fc, pdu);
    case 'diagnostics': {
      if (pdu.length < 3 || u16(pdu, 1) !== req.subFunction) return mismatch(fc, 'sub-function differs from the request');
      const echoes = req.subFunction === D.RETURN_QUERY_DATA || req.subFunction === D.RESTART_COMMUNICATIONS_OPTION ||
        req.subFunction === D.CHANGE_ASCII_INPUT_DELIMITER || req.subFunction === D.CLEAR_COUNTERS_AND_DIAGNOSTIC_REGISTER ||
        req.subFunction === D.CLEAR_OVERRUN_COUNTER_AND_FLAG;
      if (echoes ? !bytesEqual(pdu, 3, req.data) : pdu.length !== 5) return mismatch(fc, `sub-function ${req.subFunction} data is not what the spec answers`);
      return ok({ kind: 'diagnostics', fc: req.fc, subFunction: req.subFunction, data: Buffer.from(pdu.subarray(3)) });
    }
    case 'write_multiple_coils':
    case 'write_multiple_registers': {
      if (pdu.length !== 5) return lengthMismatch(fc, pdu.length, 5);
      const address = u16(pdu, 1);
      const quantity = u16(pdu, 3);
      if (address !== req.address || quantity !== req.values.length) return mismatch(fc, 'address or quantity differs from the request');
      return ok({ kind: 'write_multiple', fc: req.fc, address, quantity });
    }
    case 'read_file_record':
      return decodeReadFileRecordResponse(req.subRequests.map((s) => s.recordLength), pdu);
    case 'write_file_record': {
      const parsed = parseFileRecordWrites(pdu);
      if (!parsed.ok) return mismatch(fc, parsed.error.message);
      if (!bytesEqual(pdu, 0, encodeFileRecordWrites(req.subRequests))) return mismatch(fc, 'echo differs from the request');
      return ok({ kind: 'write_file_record', fc: req.fc, subRequests: parsed.value });
    }
    case 'mask_write_register': {
      if (pdu.length !== 7) return lengthMismatch(fc, pdu.length, 7);
      const address = u16(pdu, 1);
      const andMask = u16(pdu, 3);
      const orMask = u16(pdu, 5);
      if (address !== req.address || andMask !== req.andMask || orMask !== req.orMask) return mismatch(fc, 'echo differs from the request');
      return ok({ kind: 'mask_write_register', fc: req.fc, address, andMask, orMask });
    }
    case 'read_fifo_queue': {
      if (pdu.length < 5) return lengthMismatch(fc, pdu.length, 'at least 5');
      const byteCount = u16(pdu, 1);
      const fifoCount = u16(pdu, 3);
      if (fifoCount > L.FIFO_COUNT_MAX) return mismatch(fc, `FIFO count ${fifoCount} exceeds ${L.FIFO_COUNT_MAX}`);
      if (byteCount !== 2 + 2 * fifoCount || pdu.length !== 3 + byteCount) return mismatch(fc, `byte count ${byteCount} disagrees with FIFO count ${fifoCount}`);
      return ok({ kind: 'read_fifo_queue', fc: req.fc, values: readRegisters(pdu, 5, fifoCount) });
    }
    case 'read_device_identification':
      return decodeDeviceIdResponse(req.readDeviceIdCode, pdu);
    case 'opaque':
      // Nothing to check against: the function is unknown to us. Bounded by the PDU maximum above.
      return ok({ kind: 'opaque', fc, data: Buffer.from(pdu.subarray(1)) });
  }
}

function decodeRegisterValues(pdu: Uint8Array, fc: 3 | 4 | 23, quantity: number): Decoded<ReadRegistersResponse> {
  if (pdu.length < 2 || pdu[1] !== 2 * quantity || pdu.length !== 2 + 2 * quantity) return mismatch(fc, `byte count must be ${2 * quantity} for ${quantity} registers`);
  return ok({ kind: 'read_registers', fc, values: readRegisters(pdu, 2, quantity) });
}

function decodeNoDataResponse(fc: 7 | 11 | 12 | 17, pdu: Uint8Array): Decoded<ModbusResponse> {
  switch (fc) {
    case F.READ_EXCEPTION_STATUS:
      if (pdu.length !== 2) return lengthMismatch(fc, pdu.length, 2);
      return ok({ kind: 'read_exception_status', fc, status: pdu[1]! });
    case F.GET_COMM_EVENT_COUNTER: {
      if (pdu.length !== 5) return lengthMismatch(fc, pdu.length, 5);
      const status = u16(pdu, 1);
      if (status !== 0x0000 && status !== 0xffff) return mismatch(fc, `status 0x${status.toString(16)} is neither 0x0000 nor 0xFFFF`);
      return ok({ kind: 'comm_event_counter', fc, status, eventCount: u16(pdu, 3) });
    }
    case F.GET_COMM_EVENT_LOG: {
      if (pdu.length < 8) return lengthMismatch(fc, pdu.length, 'at least 8');
      const byteCount = pdu[1]!;
      if (byteCount < 6 || byteCount > 6 + L.EVENT_LOG_EVENTS_MAX || pdu.length !== 2 + byteCount) return mismatch(fc, `byte count ${byteCount} is wrong`);
      const status = u16(pdu, 2);
      if (status !== 0x0000 && status !== 0xffff) return mismatch(fc, `status 0x${status.toString(16)} is neither 0x0000 nor 0xFFFF`);
      return ok({ kind: 'comm_event_log', fc, status, eventCount: u16(pdu, 4), messageCount: u16(pdu, 6), events: Buffer.from(pdu.subarray(8)) });
    }
    case F.REPORT_SERVER_ID: {
      if (pdu.length < 3 || pdu[1] !== pdu.length - 2) return mismatch(fc, 'byte count disagrees with the data present (at least a run indicator)');
      return ok({ kind: 'report_server_id', fc, data: Buffer.from(pdu.subarray(2)) });
    }
  }
}

function decodeReadFileRecordResponse(lengths: number[], pdu: Uint8Array): Decoded<ReadFileRecordResponse> {
  const fc = F.READ_FILE_RECORD;
  if (pdu.length < 2 || pdu[1] !== pdu.length - 2) return mismatch(fc, 'response data length disagrees with the data present');
  const records: number[][] = [];
  let at = 2;
  for (const length of lengths) {
    // Each sub-response: length byte (1 + 2N), reference type 6, N registers — N is the one we asked for.
    if (pdu.length - at < 2 + 2 * length || pdu[at] !== 1 + 2 * length || pdu[at + 1] !== L.FILE_REFERENCE_TYPE) {
      return mismatch(fc, `sub-response ${records.length} does not hold the ${length} registers asked for`);
    }
    records.push(readRegisters(pdu, at + 2, length));
    at += 2 + 2 * length;
  }
  if (at !== pdu.length) return mismatch(fc, 'trailing bytes after the last sub-response');
  return ok({ kind: 'read_file_record', fc, records });
}

/** Walks a read device identification response; shared with the RTU framer, which needs its length. */
export function deviceIdResponseLength(pdu: Uint8Array): { complete: true; length: number } | { complete: false } | { invalid: true } {
  if (pdu.length < 7) return { complete: false };
  let at = 7;
  for (let n = pdu[6]!; n > 0; n--) {
    if (pdu.length < at + 2) return { complete: false };
    at += 2 + pdu[at + 1]!;
    if (at > L.MAX_PDU) return { invalid: true };
  }
  if (pdu.length < at) return { complete: false };
  return { complete: true, length: at };
}

function decodeDeviceIdResponse(readDeviceIdCode: number, pdu: Uint8Array): Decoded<ReadDeviceIdentificationResponse> {
  const fc = F.ENCAPSULATED_INTERFACE_TRANSPORT;
  if (pdu.length < 7) return lengthMismatch(fc, pdu.length, 'at least 7');
  if (pdu[1] !== MEI_READ_DEVICE_ID || pdu[2] !== readDeviceIdCode) return mismatch(fc, 'MEI type or read device id code differs from the request');
  const conformityLevel = pdu[3]!;
  const more = pdu[4]!;
  if (!DEVICE_ID_CONFORMITY_LEVELS.has(conformityLevel)) return mismatch(fc, `conformity level 0x${conformityLevel.toString(16)} is not defined`);
  if (more !== 0x00 && more !== 0xff) return mismatch(fc, `more follows 0x${more.toString(16)} is neither 0x00 nor 0xFF`);
  const walked = deviceIdResponseLength(pdu);
  if (!('complete' in walked) || !walked.complete || walked.length !== pdu.length) return mismatch(fc, 'object list disagrees with the data present');
  const count = pdu[6]!;
  if (readDeviceIdCode === 4 && (count !== 1 || more !== 0)) return mismatch(fc, 'individual access must return exactly one object');
  const objects: DeviceIdObject[] = [];
  for (let at = 7; at < pdu.length; at += 2 + pdu[at + 1]!) {
    objects.push({ id: pdu[at]!, value: Buffer.from(pdu.subarray(at + 2, at + 2 + pdu[at + 1]!)) });
  }
  return ok({ kind: 'read_device_identification', fc, readDeviceIdCode, conformityLevel, moreFollows: more === 0xff, nextObjectId: pdu[5]!, objects });
}

// ---------------------------------------------------------------- encoding

/**
 * Encodes a response PDU (for answering a client). Fields that do not fit their width throw RangeError
 * (a programming error, never peer input): the encoder trusts that the response came from decodeResponse
 * or from code that respects the spec limits.
 */
export function encodeResponse(res: ModbusResponse): Buffer {
  switch (res.kind) {
    case 'exception':
      return Buffer.from([(res.fc & 0x7f) | 0x80, res.exception]);
    case 'read_bits': {
      const n = bitBytes(res.values.length);
      const out = Buffer.alloc(2 + n);
      out[0] = res.fc;
      out.writeUInt8(n, 1);
      writeBits(out, 2, res.values);
      return out;
    }
    case 'read_registers':
      return withByteCount(res.fc, res.values);
    case 'read_fifo_queue': {
      const out = Buffer.alloc(5 + 2 * res.values.length);
      out[0] = res.fc;
      out.writeUInt16BE(2 + 2 * res.values.length, 1);
      out.writeUInt16BE(res.values.length, 3);
      writeRegisters(out, 5, res.values);
      return out;
    }
    case 'write_single':
    case 'write_multiple': {
      const out = Buffer.alloc(5);
      out[0] = res.fc;
      out.writeUInt16BE(res.address, 1);
      out.writeUInt16BE(res.kind === 'write_single' ? res.value : res.quantity, 3);
      return out;
    }
    case 'read_exception_status':
      return Buffer.from([res.fc, res.status]);
    case 'diagnostics': {
      const out = Buffer.alloc(3 + res.data.length);
      out[0] = res.fc;
      out.writeUInt16BE(res.subFunction, 1);
      res.data.copy(out, 3);
      return out;
    }
    case 'comm_event_counter': {
      const out = Buffer.alloc(5);
      out[0] = res.fc;
      out.writeUInt16BE(res.status, 1);
      out.writeUInt16BE(res.eventCount, 3);
      return out;
    }
    case 'comm_event_log': {
      const out = Buffer.alloc(8 + res.events.length);
      out[0] = res.fc;
      out.writeUInt8(6 + res.events.length, 1);
      out.writeUInt16BE(res.status, 2);
      out.writeUInt16BE(res.eventCount, 4);
      out.writeUInt16BE(res.messageCount, 6);
      res.events.copy(out, 8);
      return out;
    }
    case 'report_server_id': {
      const out = Buffer.alloc(2 + res.data.length);
      out[0] = res.fc;
      out.writeUInt8(res.data.length, 1);
      res.data.copy(out, 2);
      return out;
    }
    case 'read_file_record': {
      const dataLength = res.records.reduce((n, r) => n + 2 + 2 * r.length, 0);
      const out = Buffer.alloc(2 + dataLength);
      out[0] = res.fc;
      out.writeUInt8(dataLength, 1);
      let at = 2;
      for (const r of res.records) {
        out.writeUInt8(1 + 2 * r.length, at);
        out[at + 1] = L.FILE_REFERENCE_TYPE;
        writeRegisters(out, at + 2, r);
        at += 2 + 2 * r.length;
      }
      return out;
    }
    case 'write_file_record':
      return encodeFileRecordWrites(res.subRequests);
    case 'mask_write_register': {
      const out = Buffer.alloc(7);
      out[0] = res.fc;
      out.writeUInt16BE(res.address, 1);
      out.writeUInt16BE(res.andMask, 3);
      out.writeUInt16BE(res.orMask, 5);
      return out;
    }
    case 'read_device_identification': {
      const size = 7 + res.objects.reduce((n, o) => n + 2 + o.value.length, 0);
      const out = Buffer.alloc(size);
      out[0] = res.fc;
      out[1] = MEI_READ_DEVICE_ID;
      out.writeUInt8(res.readDeviceIdCode, 2);
      out.writeUInt8(res.conformityLevel, 3);
      out[4] = res.moreFollows ? 0xff : 0x00;
      out.writeUInt8(res.nextObjectId, 5);
      out.writeUInt8(res.objects.length, 6);
      let at = 7;
      for (const o of res.objects) {
        out.writeUInt8(o.id, at);
        out.writeUInt8(o.value.length, at + 1);
        o.value.copy(out, at + 2);
        at += 2 + o.value.length;
      }
      return out;
    }
    case 'opaque': {
      const out = Buffer.alloc(1 + res.data.length);
      out[0] = res.fc;
      res.data.copy(out, 1);
      return out;
    }
  }
}

function withByteCount(fc: number, values: ReadonlyArray<number>): Buffer {
  const out = Buffer.alloc(2 + 2 * values.length);
  out[0] = fc;
  out.writeUInt8(2 * values.length, 1);
  writeRegisters(out, 2, values);
  return out;
}
