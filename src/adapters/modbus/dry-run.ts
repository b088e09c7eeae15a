// `penstockctl policy check PRINCIPAL TARGET modbus read|write TABLE ADDRESS …`: the action a real
// request would become, so a dry run asks policy exactly what the front door would.
import { DryRunUsageError, type DryRunSyntax } from '../types.ts';
import { FUNCTION_CODES as F } from './functions.ts';
import { modbusTables, type ModbusObject, type ModbusTable } from './rules.ts';

const TABLE_ALIASES: Record<string, ModbusTable> = {
  coil: 'coil', coils: 'coil', co: 'coil',
  discrete_input: 'discrete_input', discrete_inputs: 'discrete_input', discrete: 'discrete_input', di: 'discrete_input',
  input_register: 'input_register', input_registers: 'input_register', input: 'input_register', ir: 'input_register',
  holding_register: 'holding_register', holding_registers: 'holding_register', holding: 'holding_register', hr: 'holding_register',
};

/** What a front door would see for a read or write of a table: codes from the one table (functions.ts). */
const READ_FC: Record<ModbusTable, number> = { coil: F.READ_COILS, discrete_input: F.READ_DISCRETE_INPUTS, holding_register: F.READ_HOLDING_REGISTERS, input_register: F.READ_INPUT_REGISTERS };
const WRITE_FC: Partial<Record<ModbusTable, { single: number; multiple: number }>> = {
  coil: { single: F.WRITE_SINGLE_COIL, multiple: F.WRITE_MULTIPLE_COILS },
  holding_register: { single: F.WRITE_SINGLE_REGISTER, multiple: F.WRITE_MULTIPLE_REGISTERS },
};

export interface ModbusDryRunOptions {
  quantity?: string | undefined;
  unit?: string | undefined;
  fc?: string | undefined;
  values?: string | undefined;
}

/** A whole number (decimal or 0x hex) in [min, max], or a usage error naming `what`. */
function integer(text: string | undefined, what: string, min: number, max: number): number {
  if (text === undefined || !/^\s*(0x[0-9a-f]+|\d+)\s*$/i.test(text)) throw new DryRunUsageError(`${what} must be a whole number (got ${text ?? 'nothing'})`);
  const n = Number(text.trim());
  if (n < min || n > max) throw new DryRunUsageError(`${what} must be between ${min} and ${max} (got ${n})`);
  return n;
}

/** `read|write TABLE ADDRESS`: function code from verb + table (+ quantity for writes), unless --fc says. */
export function parseModbusDryRun(args: string[], opts: ModbusDryRunOptions): { verb: 'read' | 'write'; object: ModbusObject } {
  const [verb, tableName, addressText, ...extra] = args;
  if (verb !== 'read' && verb !== 'write') throw new DryRunUsageError(`modbus: expected read or write, got ${verb ?? 'nothing'}`);
  if (extra.length) throw new DryRunUsageError(`modbus: unexpected arguments: ${extra.join(' ')}`);
  const table = tableName === undefined ? undefined : TABLE_ALIASES[tableName.toLowerCase()];
  if (!table) throw new DryRunUsageError(`modbus: TABLE must be one of ${modbusTables.join(', ')} (got ${tableName ?? 'nothing'})`);
  const address = integer(addressText, 'ADDRESS (0-based protocol address)', 0, 65535);
  const values = opts.values === undefined ? undefined : opts.values.split(',').map((v, i) => integer(v, `--values item ${i + 1}`, 0, 65535));
  if (values && verb !== 'write') throw new DryRunUsageError('--values is for writes');
  const quantity = opts.quantity !== undefined ? integer(opts.quantity, '--quantity', 1, 2000) : (values?.length ?? 1);
  if (values && values.length !== quantity) throw new DryRunUsageError(`--values has ${values.length} item(s) but --quantity is ${quantity}`);
  const unit = opts.unit === undefined ? 1 : integer(opts.unit, '--unit', 0, 255);
  let functionCode: number;
  if (opts.fc !== undefined) functionCode = integer(opts.fc, '--fc', 1, 127);
  else if (verb === 'read') functionCode = READ_FC[table];
  else if (WRITE_FC[table]) functionCode = quantity === 1 ? WRITE_FC[table].single : WRITE_FC[table].multiple;
  else throw new DryRunUsageError(`modbus: ${table} is read-only (no write function code); use --fc to ask about a specific one`);
  if (table === 'coil' && values?.some((v) => v > 1)) throw new DryRunUsageError('coil values are 0 or 1');
  return {
    verb,
    object: { kind: 'modbus', unit, functionCode, table, address, quantity, ...(values ? { values } : {}) },
  };
}

const W = { coil: WRITE_FC.coil!, holding_register: WRITE_FC.holding_register! };

export const modbusDryRun: DryRunSyntax = {
  usage: ['modbus read|write TABLE ADDRESS [--quantity N] [--unit U] [--fc FC] [--values 1,2,3]'],
  options: [
    { flags: '--quantity <n>', description: 'number of coils or registers (default: number of --values, else 1)' },
    { flags: '--unit <u>', description: 'unit id (default 1)' },
    { flags: '--fc <fc>', description: 'function code (default: from verb, table and quantity)' },
    { flags: '--values <list>', description: 'values written, comma separated' },
  ],
  help: `Modbus ADDRESS is the 0-based protocol address. TABLE: ${modbusTables.join(', ')}.\nWrites: coil → fc ${W.coil.single} (one) / ${W.coil.multiple} (several); holding_register → fc ${W.holding_register.single} / ${W.holding_register.multiple}.`,
  parse: (args, options) => parseModbusDryRun(args, options),
};
