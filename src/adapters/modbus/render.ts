// How a Modbus action reads: in the journal, in the names OT analysts know from Zeek (modbus.log: unit,
// func, exception; ICSNPP: address, quantity, values), so a SIEM rule written for network sensors reads
// Penstock evidence unchanged; and in one short line for people (`penstockctl`).
import type { Action } from '../../policy/types.ts';
import { modbusFunctionName, PROGRAMMING_FUNCTION_CODES } from './functions.ts';
import { MODBUS_PRESETS, MODBUS_TABLE_WRITES } from './policy.ts';
import type { ModbusObject } from './rules.ts';

/** The journal's `modbus` block of an action. */
export function renderModbusObject(o: ModbusObject): Record<string, unknown> {
  return {
    unit: o.unit,
    func: modbusFunctionName(o.functionCode),
    func_code: o.functionCode,
    table: o.table,
    address: o.address,
    quantity: o.quantity,
    values: o.values,
    // How the values were read against bounds: run-time scale factors the gateway read from the device.
    ...(o.scaleFactors ? { scale_factors: o.scaleFactors } : {}),
  };
}

/** One line for an action: `write holding_register 100 x2 = [1,2] (unit 1, fc 16)`. */
export function describeModbusAction(a: Action & { object: ModbusObject }): string {
  const o = a.object;
  return `${a.verb} ${o.table ?? 'fc'} ${o.address}${o.quantity > 1 ? ` x${o.quantity}` : ''}${o.values ? ` = [${o.values.join(',')}]` : ''} (unit ${o.unit}, fc ${o.functionCode})`;
}

// Read back by the alert detectors (src/alerts), from the journal block above.
const PROGRAMMING_CODES: ReadonlySet<number> = new Set([...MODBUS_PRESETS.programming, ...PROGRAMMING_FUNCTION_CODES]);

/** A function code of the programming class: the `programming` preset's and the legacy programming codes. */
export function isModbusProgramming(block: Record<string, unknown>): boolean {
  return typeof block.func_code === 'number' && PROGRAMMING_CODES.has(block.func_code);
}

/** Each value a table write puts at its address: point `unit/table/address` (FC 22's masks are no values). */
export function modbusWrittenValues(block: Record<string, unknown>): { point: string; value: number }[] {
  const { unit, table, address, values, func_code: fc } = block;
  if (typeof fc !== 'number' || !MODBUS_TABLE_WRITES.has(fc) || typeof address !== 'number' || typeof table !== 'string' || !Array.isArray(values)) return [];
  return values.flatMap((v, i) => (typeof v === 'number' ? [{ point: `${String(unit)}/${table}/${address + i}`, value: v }] : []));
}
