// From a decoded Modbus request to the Actions policy decides on. Addresses are 0-based, as on the wire.
//
// Mapping (table null = the function addresses no data table; `address` then carries the function's own
// selector so that evidence and rules can tell requests apart, and `quantity` is 0 unless noted):
//   1/2/3/4   read coil / discrete_input / holding_register / input_register (address, quantity)
//   5/15      write coil, values 0/1;   6/16 write holding_register, values as sent
//   22        write holding_register, quantity 1, values undefined, `masks` {and, or} — the value written
//             depends on the register's current content, so it is not a value; policy must treat a bounded
//             rule as not satisfied by a write without values (safe direction), or bound the masks:
//             the result lies in [or & ~and, (or & ~and) | and].
//   23        TWO actions, in the order the server performs them: write holding_register (write range,
//             values), then read holding_register (read range). Both must be allowed.
//   24        read holding_register, address = FIFO pointer, quantity 32 (count register + up to 31 queued
//             values: the most the answer can reveal), clipped at the end of the address space.
//   20        read, table null, one action per sub-request: address = record number, quantity = record length.
//   21        program, table null, one per sub-request, values = the record data. File records are where
//             devices keep configuration and program files: only a rule naming the code allows them.
//   7/11/12/17  read, table null (exception status, comm event counter/log, server id).
//   8         diagnostic, table null, address = sub-function.
//   43/14     read, table null, address = object id.
//   opaque    program for the legacy/programming codes (PROGRAMMING_FUNCTION_CODES), other for the rest.
// The file number of FC 20/21 is in the object's `fileNumber`, the masks of FC 22 in its `masks`.
import type { Action, Verb } from '../../policy/types.ts';
import type { ModbusObject, ModbusTable } from './rules.ts';
import { MODBUS_LIMITS as L, PROGRAMMING_FUNCTION_CODES } from './functions.ts';
import type { ModbusRequest } from './pdu.ts';

/** The object of an action the front door builds (masks and file numbers included: see rules.ts). */
export type ModbusActionObject = ModbusObject;

export interface ModbusAction extends Action {
  object: ModbusActionObject;
}

const READ_TABLE: Record<1 | 2 | 3 | 4, ModbusTable> = { 1: 'coil', 2: 'discrete_input', 3: 'holding_register', 4: 'input_register' };

export function requestToActions(request: ModbusRequest, target: string, unit: number): ModbusAction[] {
  const fc = request.fc;
  const act = (verb: Verb, table: ModbusTable | null, address: number, quantity: number, extra: Partial<ModbusActionObject> = {}): ModbusAction => ({
    target,
    verb,
    object: { kind: 'modbus', unit, functionCode: fc, table, address, quantity, ...extra },
  });
  switch (request.kind) {
    case 'read_bits':
    case 'read_registers':
      // The hot path of every polling client: the same object as act() builds, without the spread.
      return [{ target, verb: 'read', object: { kind: 'modbus', unit, functionCode: fc, table: READ_TABLE[request.fc], address: request.address, quantity: request.quantity } }];
    case 'write_single_coil':
      return [act('write', 'coil', request.address, 1, { values: [request.value] })];
    case 'write_multiple_coils':
      return [act('write', 'coil', request.address, request.values.length, { values: [...request.values] })];
    case 'write_single_register':
      return [act('write', 'holding_register', request.address, 1, { values: [request.value] })];
    case 'write_multiple_registers':
      return [act('write', 'holding_register', request.address, request.values.length, { values: [...request.values] })];
    case 'mask_write_register':
      return [act('write', 'holding_register', request.address, 1, { masks: { and: request.andMask, or: request.orMask } })];
    case 'read_write_registers':
      return [
        act('write', 'holding_register', request.writeAddress, request.values.length, { values: [...request.values] }),
        act('read', 'holding_register', request.readAddress, request.readQuantity),
      ];
    case 'read_fifo_queue':
      return [act('read', 'holding_register', request.address, Math.min(L.FIFO_SPAN, L.ADDRESS_SPACE - request.address))];
    case 'read_file_record':
      return request.subRequests.map((s) => act('read', null, s.recordNumber, s.recordLength, { fileNumber: s.fileNumber }));
    case 'write_file_record':
      return request.subRequests.map((s) => act('program', null, s.recordNumber, s.values.length, { fileNumber: s.fileNumber, values: [...s.values] }));
    case 'no_data':
      return [act('read', null, 0, 0)];
    case 'diagnostics':
      return [act('diagnostic', null, request.subFunction, 0)];
    case 'read_device_identification':
      return [act('read', null, request.objectId, 0)];
    case 'opaque':
      return [act(PROGRAMMING_FUNCTION_CODES.has(fc) ? 'program' : 'other', null, 0, 0)];
  }
}
