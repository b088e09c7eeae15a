// Modbus request PDUs: typed requests, a decoder that refuses anything outside the spec (returning the
// exception to answer, never throwing), and an encoder. Knows nothing of MBAP, RTU or sockets.
//
// Decoding rules that hold for every function:
// - Every length is checked against the bytes present and against the spec maximum before anything is
//   allocated from it; the PDU itself is refused above 253 bytes.
// - A PDU must be exactly as long as its fields say: truncated or trailing bytes → illegal data value.
// - Check order follows the spec's state diagrams: function (01) → quantity, byte count, value (03)
//   → address range (02).
// - A decoded request re-encodes to exactly the bytes it came from (the fuzz test asserts it). That is
//   why padding bits of a coil write must be zero (the spec says they are) and why diagnostics keep
//   their data as bytes.
// - Function codes 1..127 outside the public set decode to an `opaque` request (fc + raw data, at most
//   252 bytes) so that policy decides on them: default deny, allowed only by a rule that names the code.
//   Function 0 and 128..255 (the exception range) are refused as illegal function: no server could
//   answer them in a well-formed way. Function 43 with an MEI type other than 14 (13 is CANopen) and
//   diagnostics sub-functions the spec does not define are illegal function too.
import { EXCEPTION_CODES, decodeError, type Decoded, type ModbusDecodeError } from './exceptions.ts';
import {
  COIL_OFF,
  COIL_ON,
  DIAGNOSTIC_SUB_FUNCTIONS,
  FUNCTION_CODES as F,
  MEI_READ_DEVICE_ID,
  MODBUS_LIMITS as L,
  PUBLIC_FUNCTION_CODES,
  SUPPORTED_DIAGNOSTIC_SUB_FUNCTIONS,
} from './functions.ts';
import { PenstockError } from '../../common/errors.ts';

export interface ReadBitsRequest { kind: 'read_bits'; fc: 1 | 2; address: number; quantity: number }
export interface ReadRegistersRequest { kind: 'read_registers'; fc: 3 | 4; address: number; quantity: number }
export interface WriteSingleCoilRequest { kind: 'write_single_coil'; fc: 5; address: number; value: 0 | 1 }
export interface WriteSingleRegisterRequest { kind: 'write_single_register'; fc: 6; address: number; value: number }
/** Functions whose request is the function code alone: 7 read exception status, 11/12 comm event counter/log, 17 report server id. */
export interface NoDataRequest { kind: 'no_data'; fc: 7 | 11 | 12 | 17 }
/** Function 8. `data` is the raw data field (2 bytes, or N x 2 bytes for sub-function 00). */
export interface DiagnosticsRequest { kind: 'diagnostics'; fc: 8; subFunction: number; data: Buffer }
export interface WriteMultipleCoilsRequest { kind: 'write_multiple_coils'; fc: 15; address: number; values: Array<0 | 1> }
export interface WriteMultipleRegistersRequest { kind: 'write_multiple_registers'; fc: 16; address: number; values: number[] }
export interface FileRecordReference { fileNumber: number; recordNumber: number; recordLength: number }
export interface ReadFileRecordRequest { kind: 'read_file_record'; fc: 20; subRequests: FileRecordReference[] }
export interface FileRecordWrite { fileNumber: number; recordNumber: number; values: number[] }
export interface WriteFileRecordRequest { kind: 'write_file_record'; fc: 21; subRequests: FileRecordWrite[] }
export interface MaskWriteRegisterRequest { kind: 'mask_write_register'; fc: 22; address: number; andMask: number; orMask: number }
/** Function 23: the server writes first, then reads. */
export interface ReadWriteRegistersRequest {
  kind: 'read_write_registers'; fc: 23; readAddress: number; readQuantity: number; writeAddress: number; values: number[];
}
export interface ReadFifoQueueRequest { kind: 'read_fifo_queue'; fc: 24; address: number }
export interface ReadDeviceIdentificationRequest {
  kind: 'read_device_identification'; fc: 43; meiType: 14; readDeviceIdCode: 1 | 2 | 3 | 4; objectId: number;
}
/** Any function code in 1..127 outside the public set: carried raw, for policy to deny or a rule to name. */
export interface OpaqueRequest { kind: 'opaque'; fc: number; data: Buffer }

export type ModbusRequest =
  | ReadBitsRequest | ReadRegistersRequest | WriteSingleCoilRequest | WriteSingleRegisterRequest | NoDataRequest
  | DiagnosticsRequest | WriteMultipleCoilsRequest | WriteMultipleRegistersRequest | ReadFileRecordRequest
  | WriteFileRecordRequest | MaskWriteRegisterRequest | ReadWriteRegistersRequest | ReadFifoQueueRequest
  | ReadDeviceIdentificationRequest | OpaqueRequest;

// ---------------------------------------------------------------- byte helpers (callers check bounds first)

export function u16(b: Uint8Array, i: number): number {
  return (b[i]! << 8) | b[i + 1]!;
}

export function readRegisters(b: Uint8Array, start: number, count: number): number[] {
  const out = new Array<number>(count);
  for (let i = 0; i < count; i++) out[i] = u16(b, start + 2 * i);
  return out;
}

/** Unpacks `count` bits, LSB first. Returns null when an unused (padding) bit of the last byte is set. */
export function readBits(b: Uint8Array, start: number, count: number): Array<0 | 1> | null {
  const out = new Array<0 | 1>(count);
  for (let i = 0; i < count; i++) out[i] = ((b[start + (i >> 3)]! >> (i & 7)) & 1) as 0 | 1;
  const used = count & 7;
  if (used !== 0 && (b[start + (count >> 3)]! >> used) !== 0) return null;
  return out;
}

export function bitBytes(count: number): number {
  return (count + 7) >> 3;
}

export function writeBits(out: Buffer, start: number, values: ReadonlyArray<number>): void {
  out.fill(0, start, start + bitBytes(values.length));
  for (let i = 0; i < values.length; i++) if (values[i]) out[start + (i >> 3)]! |= 1 << (i & 7);
}

export function writeRegisters(out: Buffer, start: number, values: ReadonlyArray<number>): void {
  for (let i = 0; i < values.length; i++) out.writeUInt16BE(values[i]!, start + 2 * i);
}

// ---------------------------------------------------------------- decoding

type Fail = { ok: false; error: ModbusDecodeError };
const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
const { ILLEGAL_FUNCTION, ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE } = EXCEPTION_CODES;

function lengthError(fc: number, got: number, want: number | string): Fail {
  return decodeError('MODBUS_PDU_LENGTH', ILLEGAL_DATA_VALUE, fc, `function ${fc}: PDU is ${got} bytes, expected ${want}`);
}
function quantityError(fc: number, what: string, q: number, max: number): Fail {
  return decodeError('MODBUS_QUANTITY_OUT_OF_RANGE', ILLEGAL_DATA_VALUE, fc, `function ${fc}: ${what} ${q} outside 1..${max}`);
}
function rangeError(fc: number, address: number, quantity: number): Fail | null {
  return address + quantity > L.ADDRESS_SPACE
    ? decodeError('MODBUS_ADDRESS_OUT_OF_RANGE', ILLEGAL_DATA_ADDRESS, fc, `function ${fc}: address ${address} + quantity ${quantity} exceeds 65536`)
    : null;
}
function byteCountError(fc: number, byteCount: number, want: number): Fail {
  return decodeError('MODBUS_BYTE_COUNT_MISMATCH', ILLEGAL_DATA_VALUE, fc, `function ${fc}: byte count ${byteCount}, quantity requires ${want}`);
}

/**
 * Decodes a request PDU (function code + data). Never throws; a refusal names the exception to answer.
 * The returned request holds no reference to `pdu` (buffers are copied), so the caller may reuse it.
 */
export function decodeRequest(pdu: Uint8Array): Decoded<ModbusRequest> {
  if (pdu.length === 0) return decodeError('MODBUS_PDU_EMPTY', ILLEGAL_DATA_VALUE, 0, 'empty PDU');
  const fc = pdu[0]!;
  if (pdu.length > L.MAX_PDU) return decodeError('MODBUS_PDU_TOO_LONG', ILLEGAL_DATA_VALUE, fc, `PDU is ${pdu.length} bytes, at most ${L.MAX_PDU}`);
  if (fc === 0 || fc >= 0x80) return decodeError('MODBUS_FUNCTION_UNSUPPORTED', ILLEGAL_FUNCTION, fc, `function code ${fc} is not a request function code`);
  if (!PUBLIC_FUNCTION_CODES.has(fc)) return ok({ kind: 'opaque', fc, data: Buffer.from(pdu.subarray(1)) });

  switch (fc) {
    case F.READ_COILS:
    case F.READ_DISCRETE_INPUTS:
    case F.READ_HOLDING_REGISTERS:
    case F.READ_INPUT_REGISTERS: {
      if (pdu.length !== 5) return lengthError(fc, pdu.length, 5);
      const address = u16(pdu, 1);
      const quantity = u16(pdu, 3);
      const bits = fc === F.READ_COILS || fc === F.READ_DISCRETE_INPUTS;
      const max = bits ? L.READ_BITS_MAX : L.READ_REGISTERS_MAX;
      if (quantity < 1 || quantity > max) return quantityError(fc, 'quantity', quantity, max);
      const range = rangeError(fc, address, quantity);
      if (range) return range;
      return bits ? ok({ kind: 'read_bits', fc, address, quantity }) : ok({ kind: 'read_registers', fc, address, quantity });
    }
    case F.WRITE_SINGLE_COIL: {
      if (pdu.length !== 5) return lengthError(fc, pdu.length, 5);
      const value = u16(pdu, 3);
      if (value !== COIL_ON && value !== COIL_OFF) {
        return decodeError('MODBUS_VALUE_INVALID', ILLEGAL_DATA_VALUE, fc, `coil value 0x${value.toString(16)} is neither 0x0000 nor 0xFF00`);
      }
      return ok({ kind: 'write_single_coil', fc, address: u16(pdu, 1), value: value === COIL_ON ? 1 : 0 });
    }
    case F.WRITE_SINGLE_REGISTER:
      if (pdu.length !== 5) return lengthError(fc, pdu.length, 5);
      return ok({ kind: 'write_single_register', fc, address: u16(pdu, 1), value: u16(pdu, 3) });
    case F.READ_EXCEPTION_STATUS:
    case F.GET_COMM_EVENT_COUNTER:
    case F.GET_COMM_EVENT_LOG:
    case F.REPORT_SERVER_ID:
      if (pdu.length !== 1) return lengthError(fc, pdu.length, 1);
      return ok({ kind: 'no_data', fc });
    case F.DIAGNOSTICS:
      return decodeDiagnosticsRequest(pdu);
    case F.WRITE_MULTIPLE_COILS:
    case F.WRITE_MULTIPLE_REGISTERS:
      return decodeWriteMultiple(pdu, fc);
    case F.READ_FILE_RECORD:
      return decodeReadFileRecord(pdu);
    case F.WRITE_FILE_RECORD:
      return decodeWriteFileRecord(pdu);
    case F.MASK_WRITE_REGISTER:
      if (pdu.length !== 7) return lengthError(fc, pdu.length, 7);
      return ok({ kind: 'mask_write_register', fc, address: u16(pdu, 1), andMask: u16(pdu, 3), orMask: u16(pdu, 5) });
    case F.READ_WRITE_MULTIPLE_REGISTERS:
      return decodeReadWriteRegisters(pdu);
    case F.READ_FIFO_QUEUE:
      if (pdu.length !== 3) return lengthError(fc, pdu.length, 3);
      return ok({ kind: 'read_fifo_queue', fc, address: u16(pdu, 1) });
    case F.ENCAPSULATED_INTERFACE_TRANSPORT:
      return decodeReadDeviceIdentification(pdu);
  }
  // Unreachable while PUBLIC_FUNCTION_CODES and the switch agree; refusing is the safe direction.
  return decodeError('MODBUS_FUNCTION_UNSUPPORTED', ILLEGAL_FUNCTION, fc, `function code ${fc} has no decoder`);
}

function decodeDiagnosticsRequest(pdu: Uint8Array): Decoded<DiagnosticsRequest> {
  const fc = F.DIAGNOSTICS;
  if (pdu.length < 3) return lengthError(fc, pdu.length, 'at least 3');
  const subFunction = u16(pdu, 1);
  if (!SUPPORTED_DIAGNOSTIC_SUB_FUNCTIONS.has(subFunction)) {
    return decodeError('MODBUS_FUNCTION_UNSUPPORTED', ILLEGAL_FUNCTION, fc, `diagnostics sub-function ${subFunction} is not defined by the spec`);
  }
  const dataLength = pdu.length - 3;
  if (subFunction === DIAGNOSTIC_SUB_FUNCTIONS.RETURN_QUERY_DATA) {
    // N x 2 bytes, echoed back; the PDU bound already caps N.
    if (dataLength < 2 || dataLength % 2 !== 0) return lengthError(fc, pdu.length, 'an even data length of at least 2 (sub-function 00)');
  } else {
    if (dataLength !== 2) return lengthError(fc, pdu.length, 5);
    const data = u16(pdu, 3);
    const valid =
      subFunction === DIAGNOSTIC_SUB_FUNCTIONS.RESTART_COMMUNICATIONS_OPTION ? data === 0x0000 || data === 0xff00
        : subFunction === DIAGNOSTIC_SUB_FUNCTIONS.CHANGE_ASCII_INPUT_DELIMITER ? (data & 0xff) === 0
          : data === 0x0000;
    if (!valid) return decodeError('MODBUS_VALUE_INVALID', ILLEGAL_DATA_VALUE, fc, `diagnostics sub-function ${subFunction}: data 0x${data.toString(16)} not allowed`);
  }
  return ok({ kind: 'diagnostics', fc, subFunction, data: Buffer.from(pdu.subarray(3)) });
}

function decodeWriteMultiple(pdu: Uint8Array, fc: 15 | 16): Decoded<WriteMultipleCoilsRequest | WriteMultipleRegistersRequest> {
  if (pdu.length < 6) return lengthError(fc, pdu.length, 'at least 6');
  const address = u16(pdu, 1);
  const quantity = u16(pdu, 3);
  const byteCount = pdu[5]!;
  const coils = fc === F.WRITE_MULTIPLE_COILS;
  const max = coils ? L.WRITE_COILS_MAX : L.WRITE_REGISTERS_MAX;
  if (quantity < 1 || quantity > max) return quantityError(fc, 'quantity', quantity, max);
  const want = coils ? bitBytes(quantity) : 2 * quantity;
  if (byteCount !== want) return byteCountError(fc, byteCount, want);
  if (pdu.length !== 6 + byteCount) return lengthError(fc, pdu.length, 6 + byteCount);
  const range = rangeError(fc, address, quantity);
  if (range) return range;
  if (!coils) return ok({ kind: 'write_multiple_registers', fc, address, values: readRegisters(pdu, 6, quantity) });
  const values = readBits(pdu, 6, quantity);
  if (!values) return decodeError('MODBUS_VALUE_INVALID', ILLEGAL_DATA_VALUE, fc, 'unused bits of the last coil byte are not zero');
  return ok({ kind: 'write_multiple_coils', fc, address, values });
}

/** A file record reference (type 6, file 1..65535, record 0..9999, record + length within the file). */
function fileReferenceError(fc: number, refType: number, fileNumber: number, recordNumber: number, recordLength: number): Fail | null {
  if (refType !== L.FILE_REFERENCE_TYPE || fileNumber === 0 || recordNumber > L.FILE_RECORD_NUMBER_MAX || recordNumber + recordLength > L.FILE_RECORDS_PER_FILE) {
    return decodeError('MODBUS_ADDRESS_OUT_OF_RANGE', ILLEGAL_DATA_ADDRESS, fc,
      `file record reference type ${refType} file ${fileNumber} record ${recordNumber} length ${recordLength} is not valid`);
  }
  return null;
}

function decodeReadFileRecord(pdu: Uint8Array): Decoded<ReadFileRecordRequest> {
  const fc = F.READ_FILE_RECORD;
  if (pdu.length < 2) return lengthError(fc, pdu.length, 'at least 2');
  const byteCount = pdu[1]!;
  if (byteCount < L.FILE_READ_BYTE_COUNT_MIN || byteCount > L.FILE_READ_BYTE_COUNT_MAX || byteCount % L.FILE_READ_SUB_REQUEST_LENGTH !== 0) {
    return decodeError('MODBUS_BYTE_COUNT_MISMATCH', ILLEGAL_DATA_VALUE, fc, `byte count ${byteCount} is not a multiple of 7 in 7..245`);
  }
  if (pdu.length !== 2 + byteCount) return lengthError(fc, pdu.length, 2 + byteCount);
  const subRequests: FileRecordReference[] = [];
  let responseBytes = 0;
  for (let at = 2; at < pdu.length; at += L.FILE_READ_SUB_REQUEST_LENGTH) {
    const refType = pdu[at]!;
    const fileNumber = u16(pdu, at + 1);
    const recordNumber = u16(pdu, at + 3);
    const recordLength = u16(pdu, at + 5);
    if (recordLength === 0) return quantityError(fc, 'record length', 0, L.FILE_RECORDS_PER_FILE);
    responseBytes += 2 + 2 * recordLength;
    if (responseBytes > L.FILE_READ_RESPONSE_MAX) {
      return decodeError('MODBUS_QUANTITY_OUT_OF_RANGE', ILLEGAL_DATA_VALUE, fc, `the records asked for need more than ${L.FILE_READ_RESPONSE_MAX} response bytes`);
    }
    const bad = fileReferenceError(fc, refType, fileNumber, recordNumber, recordLength);
    if (bad) return bad;
    subRequests.push({ fileNumber, recordNumber, recordLength });
  }
  return ok({ kind: 'read_file_record', fc, subRequests });
}

/** Parses the sub-requests of a write file record PDU (request, or its echo in a response). */
export function parseFileRecordWrites(pdu: Uint8Array): Decoded<FileRecordWrite[]> {
  const fc = F.WRITE_FILE_RECORD;
  if (pdu.length < 2) return lengthError(fc, pdu.length, 'at least 2');
  const byteCount = pdu[1]!;
  if (byteCount < L.FILE_WRITE_BYTE_COUNT_MIN || byteCount > L.FILE_WRITE_BYTE_COUNT_MAX) {
    return decodeError('MODBUS_BYTE_COUNT_MISMATCH', ILLEGAL_DATA_VALUE, fc, `byte count ${byteCount} outside 9..251`);
  }
  if (pdu.length !== 2 + byteCount) return lengthError(fc, pdu.length, 2 + byteCount);
  const subRequests: FileRecordWrite[] = [];
  let at = 2;
  while (at < pdu.length) {
    if (pdu.length - at < 9) return byteCountError(fc, byteCount, at - 2 + 9);
    const refType = pdu[at]!;
    const fileNumber = u16(pdu, at + 1);
    const recordNumber = u16(pdu, at + 3);
    const recordLength = u16(pdu, at + 5);
    // Checked against the bytes present before any array is sized from it.
    if (recordLength === 0 || 7 + 2 * recordLength > pdu.length - at) {
      return byteCountError(fc, byteCount, at - 2 + 7 + 2 * recordLength);
    }
    const bad = fileReferenceError(fc, refType, fileNumber, recordNumber, recordLength);
    if (bad) return bad;
    subRequests.push({ fileNumber, recordNumber, values: readRegisters(pdu, at + 7, recordLength) });
    at += 7 + 2 * recordLength;
  }
  return ok(subRequests);
}

function decodeWriteFileRecord(pdu: Uint8Array): Decoded<WriteFileRecordRequest> {
  const parsed = parseFileRecordWrites(pdu);
  return parsed.ok ? ok({ kind: 'write_file_record', fc: F.WRITE_FILE_RECORD, subRequests: parsed.value }) : parsed;
}

function decodeReadWriteRegisters(pdu: Uint8Array): Decoded<ReadWriteRegistersRequest> {
  const fc = F.READ_WRITE_MULTIPLE_REGISTERS;
  if (pdu.length < 10) return lengthError(fc, pdu.length, 'at least 10');
  const readAddress = u16(pdu, 1);
  const readQuantity = u16(pdu, 3);
  const writeAddress = u16(pdu, 5);
  const writeQuantity = u16(pdu, 7);
  const byteCount = pdu[9]!;
  if (readQuantity < 1 || readQuantity > L.READ_WRITE_READ_MAX) return quantityError(fc, 'read quantity', readQuantity, L.READ_WRITE_READ_MAX);
  if (writeQuantity < 1 || writeQuantity > L.READ_WRITE_WRITE_MAX) return quantityError(fc, 'write quantity', writeQuantity, L.READ_WRITE_WRITE_MAX);
  if (byteCount !== 2 * writeQuantity) return byteCountError(fc, byteCount, 2 * writeQuantity);
  if (pdu.length !== 10 + byteCount) return lengthError(fc, pdu.length, 10 + byteCount);
  const range = rangeError(fc, readAddress, readQuantity) ?? rangeError(fc, writeAddress, writeQuantity);
  if (range) return range;
  return ok({ kind: 'read_write_registers', fc, readAddress, readQuantity, writeAddress, values: readRegisters(pdu, 10, writeQuantity) });
}

function decodeReadDeviceIdentification(pdu: Uint8Array): Decoded<ReadDeviceIdentificationRequest> {
  const fc = F.ENCAPSULATED_INTERFACE_TRANSPORT;
  if (pdu.length < 2) return lengthError(fc, pdu.length, 4);
  const meiType = pdu[1]!;
  if (meiType !== MEI_READ_DEVICE_ID) return decodeError('MODBUS_FUNCTION_UNSUPPORTED', ILLEGAL_FUNCTION, fc, `MEI type ${meiType} is not supported (only 14)`);
  if (pdu.length !== 4) return lengthError(fc, pdu.length, 4);
  const code = pdu[2]!;
  if (code < 1 || code > 4) return decodeError('MODBUS_VALUE_INVALID', ILLEGAL_DATA_VALUE, fc, `read device id code ${code} outside 1..4`);
  return ok({ kind: 'read_device_identification', fc, meiType: MEI_READ_DEVICE_ID, readDeviceIdCode: code as 1 | 2 | 3 | 4, objectId: pdu[3]! });
}

// ---------------------------------------------------------------- encoding

function withFc(fc: number, dataLength: number): Buffer {
  const out = Buffer.alloc(1 + dataLength);
  out[0] = fc;
  return out;
}

function encodeRequestUnchecked(req: ModbusRequest): Buffer {
  switch (req.kind) {
    case 'read_bits':
    case 'read_registers': {
      const out = withFc(req.fc, 4);
      out.writeUInt16BE(req.address, 1);
      out.writeUInt16BE(req.quantity, 3);
      return out;
    }
    case 'write_single_coil':
    case 'write_single_register': {
      const out = withFc(req.fc, 4);
      out.writeUInt16BE(req.address, 1);
      out.writeUInt16BE(req.kind === 'write_single_coil' ? (req.value ? COIL_ON : COIL_OFF) : req.value, 3);
      return out;
    }
    case 'no_data':
      return withFc(req.fc, 0);
    case 'diagnostics': {
      const out = withFc(req.fc, 2 + req.data.length);
      out.writeUInt16BE(req.subFunction, 1);
      req.data.copy(out, 3);
      return out;
    }
    case 'write_multiple_coils':
    case 'write_multiple_registers': {
      const coils = req.kind === 'write_multiple_coils';
      const byteCount = coils ? bitBytes(req.values.length) : 2 * req.values.length;
      const out = withFc(req.fc, 5 + byteCount);
      out.writeUInt16BE(req.address, 1);
      out.writeUInt16BE(req.values.length, 3);
      out.writeUInt8(byteCount, 5);
      if (coils) writeBits(out, 6, req.values);
      else writeRegisters(out, 6, req.values);
      return out;
    }
    case 'read_file_record': {
      const out = withFc(req.fc, 1 + 7 * req.subRequests.length);
      out.writeUInt8(7 * req.subRequests.length, 1);
      req.subRequests.forEach((s, i) => {
        const at = 2 + 7 * i;
        out[at] = L.FILE_REFERENCE_TYPE;
        out.writeUInt16BE(s.fileNumber, at + 1);
        out.writeUInt16BE(s.recordNumber, at + 3);
        out.writeUInt16BE(s.recordLength, at + 5);
      });
      return out;
    }
    case 'write_file_record':
      return encodeFileRecordWrites(req.subRequests);
    case 'mask_write_register': {
      const out = withFc(req.fc, 6);
      out.writeUInt16BE(req.address, 1);
      out.writeUInt16BE(req.andMask, 3);
      out.writeUInt16BE(req.orMask, 5);
      return out;
    }
    case 'read_write_registers': {
      const out = withFc(req.fc, 9 + 2 * req.values.length);
      out.writeUInt16BE(req.readAddress, 1);
      out.writeUInt16BE(req.readQuantity, 3);
      out.writeUInt16BE(req.writeAddress, 5);
      out.writeUInt16BE(req.values.length, 7);
      out.writeUInt8(2 * req.values.length, 9);
      writeRegisters(out, 10, req.values);
      return out;
    }
    case 'read_fifo_queue': {
      const out = withFc(req.fc, 2);
      out.writeUInt16BE(req.address, 1);
      return out;
    }
    case 'read_device_identification':
      return Buffer.from([req.fc, MEI_READ_DEVICE_ID, req.readDeviceIdCode, req.objectId]);
    case 'opaque': {
      const out = withFc(req.fc, req.data.length);
      req.data.copy(out, 1);
      return out;
    }
  }
}

/** The PDU of a write file record request (and of its response, which echoes it). */
export function encodeFileRecordWrites(subRequests: ReadonlyArray<FileRecordWrite>): Buffer {
  const byteCount = subRequests.reduce((n, s) => n + 7 + 2 * s.values.length, 0);
  const out = withFc(F.WRITE_FILE_RECORD, 1 + byteCount);
  out.writeUInt8(byteCount, 1);
  let at = 2;
  for (const s of subRequests) {
    out[at] = L.FILE_REFERENCE_TYPE;
    out.writeUInt16BE(s.fileNumber, at + 1);
    out.writeUInt16BE(s.recordNumber, at + 3);
    out.writeUInt16BE(s.values.length, at + 5);
    writeRegisters(out, at + 7, s.values);
    at += 7 + 2 * s.values.length;
  }
  return out;
}

/**
 * Encodes a request PDU. The gateway never emits what it would refuse: the bytes are decoded again and a
 * request outside the spec (a programming error upstream of the codec) throws PenstockError PS_INTERNAL
 * with the decode error's code in `details`. Node's own range checks throw the same way for field values
 * that do not fit their width.
 */
export function encodeRequest(req: ModbusRequest): Buffer {
  let out: Buffer;
  try {
    out = encodeRequestUnchecked(req);
  } catch (err) {
    throw new PenstockError('PS_INTERNAL', `cannot encode Modbus ${req.kind} request`, { fc: req.fc }, { cause: err });
  }
  const check = decodeRequest(out);
  if (!check.ok) throw new PenstockError('PS_INTERNAL', `refusing to encode an invalid Modbus request: ${check.error.message}`, { code: check.error.code, fc: req.fc });
  if (req.kind === 'opaque' && check.value.kind !== 'opaque') {
    throw new PenstockError('PS_INTERNAL', `function ${req.fc} is public and must not be sent as opaque`, { fc: req.fc });
  }
  return out;
}
