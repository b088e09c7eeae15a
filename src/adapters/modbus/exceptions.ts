// Modbus exception codes, the catalogue of codec errors, and the mapping from a policy decision to
// the exception a refused client receives. Pure data and functions: no sockets, no policy imports
// beyond the reason registry.
import { DECISION_REASONS, type DecisionReason } from '../../policy/types.ts';

/** Exception codes of the Modbus Application Protocol Specification V1.1b3, §7. */
export const EXCEPTION_CODES = {
  ILLEGAL_FUNCTION: 0x01,
  ILLEGAL_DATA_ADDRESS: 0x02,
  ILLEGAL_DATA_VALUE: 0x03,
  SERVER_DEVICE_FAILURE: 0x04,
  ACKNOWLEDGE: 0x05,
  SERVER_DEVICE_BUSY: 0x06,
  MEMORY_PARITY_ERROR: 0x08,
  GATEWAY_PATH_UNAVAILABLE: 0x0a,
  GATEWAY_TARGET_FAILED_TO_RESPOND: 0x0b,
} as const;
export type ExceptionName = keyof typeof EXCEPTION_CODES;
export type ExceptionCode = (typeof EXCEPTION_CODES)[ExceptionName];

const EXCEPTION_NAMES = new Map<number, ExceptionName>(
  (Object.entries(EXCEPTION_CODES) as Array<[ExceptionName, number]>).map(([name, code]) => [code, name]),
);

/**
 * Exception names as Zeek writes them (modbus.log `exception`), for the journal: the spec's codes in
 * Zeek's older spelling (SLAVE for SERVER). A Record over every code, so a new code needs its name here.
 */
const ZEEK_EXCEPTION_NAMES: Readonly<Record<ExceptionCode, string>> = {
  [EXCEPTION_CODES.ILLEGAL_FUNCTION]: 'ILLEGAL_FUNCTION',
  [EXCEPTION_CODES.ILLEGAL_DATA_ADDRESS]: 'ILLEGAL_DATA_ADDRESS',
  [EXCEPTION_CODES.ILLEGAL_DATA_VALUE]: 'ILLEGAL_DATA_VALUE',
  [EXCEPTION_CODES.SERVER_DEVICE_FAILURE]: 'SLAVE_DEVICE_FAILURE',
  [EXCEPTION_CODES.ACKNOWLEDGE]: 'ACKNOWLEDGE',
  [EXCEPTION_CODES.SERVER_DEVICE_BUSY]: 'SLAVE_DEVICE_BUSY',
  [EXCEPTION_CODES.MEMORY_PARITY_ERROR]: 'MEMORY_PARITY_ERROR',
  [EXCEPTION_CODES.GATEWAY_PATH_UNAVAILABLE]: 'GATEWAY_PATH_UNAVAILABLE',
  [EXCEPTION_CODES.GATEWAY_TARGET_FAILED_TO_RESPOND]: 'GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND',
};

/** Zeek's name of an exception code; `unknown-N` for a code the spec does not define. */
export function modbusExceptionName(code: number): string {
  return Object.hasOwn(ZEEK_EXCEPTION_NAMES, code) ? ZEEK_EXCEPTION_NAMES[code as ExceptionCode] : `unknown-${code}`;
}

/** The spec name of an exception code, or undefined for a code the spec does not define (a PLC may send one). */
export function exceptionName(code: number): ExceptionName | undefined {
  return EXCEPTION_NAMES.get(code);
}

/** An exception response PDU: function code with the high bit set, then the exception code. */
export function encodeException(fc: number, code: number): Buffer {
  const pdu = Buffer.allocUnsafe(2);
  pdu[0] = (fc & 0x7f) | 0x80;
  pdu[1] = code & 0xff;
  return pdu;
}

/**
 * Why the codec refused bytes. Stable codes: callers (the adapter glue, the journal, tests) match on
 * `code`, never on `message`. Add new codes at the end; never reuse one.
 */
export const MODBUS_DECODE_ERRORS = {
  MODBUS_PDU_EMPTY: 'the PDU holds no function code',
  MODBUS_PDU_TOO_LONG: 'the PDU is longer than the 253 bytes the spec allows',
  MODBUS_FUNCTION_UNSUPPORTED: 'function code 0, an exception code (128-255), an unsupported MEI type or diagnostic sub-function',
  MODBUS_PDU_LENGTH: 'the PDU length does not match what its function code and fields require (truncated or trailing bytes)',
  MODBUS_QUANTITY_OUT_OF_RANGE: 'a quantity is outside the limits the spec sets for the function',
  MODBUS_BYTE_COUNT_MISMATCH: 'a byte count disagrees with the quantity or with the bytes present',
  MODBUS_VALUE_INVALID: 'a field holds a value the spec does not allow (coil value, padding bits, MEI read code, sub-function data)',
  MODBUS_ADDRESS_OUT_OF_RANGE: 'address + quantity runs past 65536, or a file record reference is invalid',
  MODBUS_RESPONSE_MISMATCH: 'the response does not answer the request it was matched with (function code, echo, count)',
  MODBUS_NO_RESPONSE_EXPECTED: 'the request is one the server never answers (diagnostics 04, force listen only mode)',
  MBAP_PROTOCOL_ID: 'the MBAP protocol identifier is not 0 (not Modbus)',
  MBAP_LENGTH: 'the MBAP length field is outside 2..254, so the stream cannot be framed',
  RTU_CRC: 'the RTU frame CRC does not match',
  RTU_UNIT_MISMATCH: 'the RTU response comes from another unit than the one asked',
  RTU_FRAME_LENGTH: 'the RTU frame is shorter or longer than any valid frame',
} as const;
export type ModbusErrorCode = keyof typeof MODBUS_DECODE_ERRORS;

/**
 * A refusal of a PDU. `exception` is what to answer the client in Modbus (for a request) or toward the
 * client when an upstream response is bad. Plain object, not an Error: it is returned, never thrown,
 * and a hostile peer can make thousands per second (no stack capture).
 */
export interface ModbusDecodeError {
  readonly code: ModbusErrorCode;
  /** The exception code to put on the wire for this failure. */
  readonly exception: ExceptionCode;
  /** The function code the failure concerns (0 when the PDU was empty). */
  readonly fc: number;
  /** Detail for the journal and the log; never parse it. */
  readonly message: string;
}

export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ModbusDecodeError };

export function decodeError(code: ModbusErrorCode, exception: ExceptionCode, fc: number, message: string): { ok: false; error: ModbusDecodeError } {
  return { ok: false, error: { code, exception, fc, message } };
}

/**
 * The exception a refused client receives, per issue 4: a function code not granted → illegal function,
 * a range not granted → illegal data address, a value outside a rule's bounds → illegal data value.
 * A Record over every reason, so adding a reason to the registry fails type-checking here until it is mapped.
 */
const EXCEPTION_FOR_REASON: Record<DecisionReason, ExceptionCode> = {
  function_not_granted: EXCEPTION_CODES.ILLEGAL_FUNCTION,
  object_not_granted: EXCEPTION_CODES.ILLEGAL_DATA_ADDRESS,
  value_out_of_bounds: EXCEPTION_CODES.ILLEGAL_DATA_VALUE,
  // "You may not do this at all": the client learns nothing about which addresses exist or are granted.
  no_grant: EXCEPTION_CODES.ILLEGAL_FUNCTION,
  grant_not_active: EXCEPTION_CODES.ILLEGAL_FUNCTION,
  principal_expired: EXCEPTION_CODES.ILLEGAL_FUNCTION,
  rule_denies: EXCEPTION_CODES.ILLEGAL_FUNCTION,
  metacharacters: EXCEPTION_CODES.ILLEGAL_FUNCTION,
  // The glue answers with the decode error's own exception when it has one; this is the fallback.
  malformed: EXCEPTION_CODES.ILLEGAL_DATA_VALUE,
  // Fail closed on evidence: the gateway cannot perform the action and will not soon, so "device failure"
  // rather than "busy" (busy invites tight client retry loops against a full disk).
  journal_unavailable: EXCEPTION_CODES.SERVER_DEVICE_FAILURE,
  // A rate limit is transient: busy tells a well-behaved client to retry later.
  session_limit: EXCEPTION_CODES.SERVER_DEVICE_BUSY,
  // A request waiting for a person: busy, so the client's retry passes once someone approves.
  rule_requires_approval: EXCEPTION_CODES.SERVER_DEVICE_BUSY,
  // A person said no (or nobody answered): final for this request, not a transient condition.
  approval_refused: EXCEPTION_CODES.SERVER_DEVICE_FAILURE,
  // Not a refusal; if a caller asks anyway, refuse (the safe direction) rather than pretend success.
  rule_allows: EXCEPTION_CODES.SERVER_DEVICE_FAILURE,
};

/** The exception to answer for a refused decision. A reason this build does not know → device failure. */
export function exceptionForDecision(reason: DecisionReason): ExceptionCode {
  return Object.hasOwn(EXCEPTION_FOR_REASON, reason) ? EXCEPTION_FOR_REASON[reason] : EXCEPTION_CODES.SERVER_DEVICE_FAILURE;
}

/**
 * How each refusal reads in Modbus, for documentation and tests (`exception 2 ILLEGAL_DATA_ADDRESS`):
 * derived from the mapping above, which the front door answers with.
 */
export const MODBUS_REFUSALS: Readonly<Record<DecisionReason, string>> = Object.freeze(Object.fromEntries(
  (Object.keys(DECISION_REASONS) as DecisionReason[]).map((reason) => {
    const code = exceptionForDecision(reason);
    return [reason, `exception ${code} ${modbusExceptionName(code)}`];
  }),
) as Record<DecisionReason, string>);
