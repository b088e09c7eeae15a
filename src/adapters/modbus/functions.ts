// Function codes and the numeric limits of the Modbus Application Protocol Specification V1.1b3.
// One place for every number the request and response codecs check against.

export const FUNCTION_CODES = {
  READ_COILS: 1,
  READ_DISCRETE_INPUTS: 2,
  READ_HOLDING_REGISTERS: 3,
  READ_INPUT_REGISTERS: 4,
  WRITE_SINGLE_COIL: 5,
  WRITE_SINGLE_REGISTER: 6,
  READ_EXCEPTION_STATUS: 7,
  DIAGNOSTICS: 8,
  GET_COMM_EVENT_COUNTER: 11,
  GET_COMM_EVENT_LOG: 12,
  WRITE_MULTIPLE_COILS: 15,
  WRITE_MULTIPLE_REGISTERS: 16,
  REPORT_SERVER_ID: 17,
  READ_FILE_RECORD: 20,
  WRITE_FILE_RECORD: 21,
  MASK_WRITE_REGISTER: 22,
  READ_WRITE_MULTIPLE_REGISTERS: 23,
  READ_FIFO_QUEUE: 24,
  ENCAPSULATED_INTERFACE_TRANSPORT: 43,
} as const;

/** The public function codes this codec decodes field by field. Anything else in 1..127 is opaque. */
export const PUBLIC_FUNCTION_CODES: ReadonlySet<number> = new Set(Object.values(FUNCTION_CODES));

/**
 * Codes the spec (Annex A) reserves for legacy products (9, 10, 13, 14, 41, 42, 90, 91, 125, 126, 127),
 * plus 18 (program 884/M84) and 19 (reset comm link) of Modicon's older PI-MBUS-300 reference: the
 * programming and polling functions PLC programming tools still use (e.g. 90 = 0x5A for Schneider
 * Unity, 125/126 for Modsoft/ProWORX). They map to the verb `program`, so only a rule that names them
 * (the `programming` preset) can allow them.
 */
export const PROGRAMMING_FUNCTION_CODES: ReadonlySet<number> = new Set([9, 10, 13, 14, 18, 19, 41, 42, 90, 91, 125, 126, 127]);

/** MEI types of function 43. Only 14 (read device identification) is supported; 13 (CANopen) is not. */
export const MEI_READ_DEVICE_ID = 0x0e;

/** Diagnostics (function 8) sub-functions of V1.1b3 §6.8.1. Others (5-9, 0x13, 0x15+) are illegal function. */
export const DIAGNOSTIC_SUB_FUNCTIONS = {
  RETURN_QUERY_DATA: 0x00,
  RESTART_COMMUNICATIONS_OPTION: 0x01,
  RETURN_DIAGNOSTIC_REGISTER: 0x02,
  CHANGE_ASCII_INPUT_DELIMITER: 0x03,
  FORCE_LISTEN_ONLY_MODE: 0x04,
  CLEAR_COUNTERS_AND_DIAGNOSTIC_REGISTER: 0x0a,
  RETURN_BUS_MESSAGE_COUNT: 0x0b,
  RETURN_BUS_COMMUNICATION_ERROR_COUNT: 0x0c,
  RETURN_BUS_EXCEPTION_ERROR_COUNT: 0x0d,
  RETURN_SERVER_MESSAGE_COUNT: 0x0e,
  RETURN_SERVER_NO_RESPONSE_COUNT: 0x0f,
  RETURN_SERVER_NAK_COUNT: 0x10,
  RETURN_SERVER_BUSY_COUNT: 0x11,
  RETURN_BUS_CHARACTER_OVERRUN_COUNT: 0x12,
  CLEAR_OVERRUN_COUNTER_AND_FLAG: 0x14,
} as const;
export const SUPPORTED_DIAGNOSTIC_SUB_FUNCTIONS: ReadonlySet<number> = new Set(Object.values(DIAGNOSTIC_SUB_FUNCTIONS));

export const MODBUS_LIMITS = {
  /** A PDU is at most 253 bytes (256-byte RTU ADU minus address and CRC). */
  MAX_PDU: 253,
  /** The data space is 65536 items: address + quantity must not exceed it. */
  ADDRESS_SPACE: 0x10000,
  READ_BITS_MAX: 2000, // FC 1, 2: 0x07D0
  READ_REGISTERS_MAX: 125, // FC 3, 4: 0x007D
  WRITE_COILS_MAX: 1968, // FC 15: 0x07B0
  WRITE_REGISTERS_MAX: 123, // FC 16: 0x007B
  READ_WRITE_READ_MAX: 125, // FC 23 read part: 0x007D
  READ_WRITE_WRITE_MAX: 121, // FC 23 write part: 0x0079
  FIFO_COUNT_MAX: 31, // FC 24
  /** FC 24 reads the count register and up to 31 queued registers after it. */
  FIFO_SPAN: 32,
  EVENT_LOG_EVENTS_MAX: 64, // FC 12: 0..64 event bytes
  FILE_REFERENCE_TYPE: 6,
  FILE_RECORD_NUMBER_MAX: 0x270f, // records 0..9999 in each file
  FILE_RECORDS_PER_FILE: 10000,
  FILE_READ_BYTE_COUNT_MIN: 0x07, // FC 20 request: 1..35 sub-requests of 7 bytes
  FILE_READ_BYTE_COUNT_MAX: 0xf5,
  FILE_READ_SUB_REQUEST_LENGTH: 7,
  /**
   * FC 20 response data length is at most 0xF5 (245): the request is refused when the records it asks
   * for cannot fit in one response (each sub-response costs 2 bytes + 2 per register).
   */
  FILE_READ_RESPONSE_MAX: 0xf5,
  FILE_WRITE_BYTE_COUNT_MIN: 0x09, // FC 21: one sub-request of 7 bytes + one register
  FILE_WRITE_BYTE_COUNT_MAX: 0xfb,
  /** FC 8 sub-function 00 echoes N x 2 bytes: 1..125 words in a 253-byte PDU. */
  DIAGNOSTIC_QUERY_DATA_MAX: 250,
} as const;

export const COIL_ON = 0xff00;
export const COIL_OFF = 0x0000;

/** Conformity levels of a read device identification response (basic/regular/extended, +0x80 with individual access). */
export const DEVICE_ID_CONFORMITY_LEVELS: ReadonlySet<number> = new Set([0x01, 0x02, 0x03, 0x81, 0x82, 0x83]);
