// How a Modbus action reads: in the journal, in the names OT analysts know from Zeek (modbus.log: unit,
// func, exception; ICSNPP: address, quantity, values), so a SIEM rule written for network sensors reads
// Penstock evidence unchanged; and in one short line for people (`penstockctl`).
import type { Action } from '../../policy/types.ts';
import { modbusFunctionName } from './functions.ts';
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
