// Function codes and the numeric limits of the Modbus Application Protocol Specification V1.1b3.
// One place for every number the request and response codecs check against, and the one table of
// function codes (what each is, which tables it addresses, read or write) that policy derives from.

import type { ModbusTable } from './rules.ts';

/** What one public function is: the one table every other part derives its view from. */
export interface ModbusFunction {
  code: number;
  /** How explanations and errors name it. */
  name: string;
  /** Tables the function addresses; null when it addresses none (its `address` is a selector of its own). */
  tables: readonly ModbusTable[] | null;
  /** FC 23 carries both: the adapter sends one action per direction, told apart by the verb. */
  direction: 'read' | 'write' | 'by_verb';
  /** A write whose values are exactly the raw values that land in the registers (FC 22's are masks). */
  writesValues?: true;
  /** Zeek's name (modbus.log `func`) where it differs from the spec's name, the key of MODBUS_FUNCTIONS. */
  zeek?: string;
}

/**
 * The public functions of V1.1b3, by the spec's names. The codec decodes these field by field; policy,
 * the config checks and `penstockctl policy check` take codes, names, tables and directions from here.
 * The data-table functions (tables not null) are what `access: read|write` may grant; the others
 * (diagnostics, file records, status reads) only a rule naming them.
 */
export const MODBUS_FUNCTIONS = {
  READ_COILS: { code: 1, name: 'read coils', tables: ['coil'], direction: 'read' },
  READ_DISCRETE_INPUTS: { code: 2, name: 'read discrete inputs', tables: ['discrete_input'], direction: 'read' },
  READ_HOLDING_REGISTERS: { code: 3, name: 'read holding registers', tables: ['holding_register'], direction: 'read' },
  READ_INPUT_REGISTERS: { code: 4, name: 'read input registers', tables: ['input_register'], direction: 'read' },
  WRITE_SINGLE_COIL: { code: 5, name: 'write single coil', tables: ['coil'], direction: 'write', writesValues: true },
  WRITE_SINGLE_REGISTER: { code: 6, name: 'write single register', tables: ['holding_register'], direction: 'write', writesValues: true },
  READ_EXCEPTION_STATUS: { code: 7, name: 'read exception status', tables: null, direction: 'read' },
  DIAGNOSTICS: { code: 8, name: 'diagnostics', tables: null, direction: 'write' },
  GET_COMM_EVENT_COUNTER: { code: 11, name: 'get comm event counter', tables: null, direction: 'read' },
  GET_COMM_EVENT_LOG: { code: 12, name: 'get comm event log', tables: null, direction: 'read' },
  WRITE_MULTIPLE_COILS: { code: 15, name: 'write multiple coils', tables: ['coil'], direction: 'write', writesValues: true },
  WRITE_MULTIPLE_REGISTERS: { code: 16, name: 'write multiple registers', tables: ['holding_register'], direction: 'write', writesValues: true },
  REPORT_SERVER_ID: { code: 17, name: 'report server id', tables: null, direction: 'read', zeek: 'REPORT_SLAVE_ID' },
  READ_FILE_RECORD: { code: 20, name: 'read file record', tables: null, direction: 'read' },
  WRITE_FILE_RECORD: { code: 21, name: 'write file record', tables: null, direction: 'write' },
  MASK_WRITE_REGISTER: { code: 22, name: 'mask write register', tables: ['holding_register'], direction: 'write' },
  READ_WRITE_MULTIPLE_REGISTERS: { code: 23, name: 'read/write multiple registers', tables: ['holding_register'], direction: 'by_verb', writesValues: true },
  READ_FIFO_QUEUE: { code: 24, name: 'read FIFO queue', tables: ['holding_register'], direction: 'read' },
  ENCAPSULATED_INTERFACE_TRANSPORT: { code: 43, name: 'read device identification', tables: null, direction: 'read', zeek: 'ENCAP_INTERFACE_TRANSPORT' },
} as const satisfies Record<string, ModbusFunction>;

type FunctionName = keyof typeof MODBUS_FUNCTIONS;

/** Code by the spec's name, e.g. FUNCTION_CODES.READ_COILS === 1 (a literal type, for the codec's switches). */
export const FUNCTION_CODES = Object.fromEntries(Object.entries(MODBUS_FUNCTIONS).map(([k, f]) => [k, f.code])) as {
  readonly [K in FunctionName]: (typeof MODBUS_FUNCTIONS)[K]['code'];
};

/** The public functions by code. */
export const FUNCTIONS_BY_CODE: ReadonlyMap<number, ModbusFunction> = new Map(Object.values(MODBUS_FUNCTIONS).map((f) => [f.code, f]));

/**
 * Function names as Zeek writes them (base/protocols/modbus/consts.zeek), which the journal uses so a SIEM
 * rule written for network sensors reads Penstock evidence unchanged: the spec's name, in Zeek's spelling
 * where the two differ.
 */
export const ZEEK_FUNCTION_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(MODBUS_FUNCTIONS).map(([key, f]: [string, ModbusFunction]) => [f.code, f.zeek ?? key]),
);

/** Zeek's name of a function code; `unknown-N` for a code it has no name for (vendor and programming codes). */
export function modbusFunctionName(code: number): string {
  return ZEEK_FUNCTION_NAMES.get(code) ?? `unknown-${code}`;
}

/** The public function codes this codec decodes field by field. Anything else in 1..127 is opaque. */
export const PUBLIC_FUNCTION_CODES: ReadonlySet<number> = new Set(FUNCTIONS_BY_CODE.keys());

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
