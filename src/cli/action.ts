// Turning `penstockctl policy check` arguments into the Action a front door would build, so a dry run
// asks policy exactly what a real request would.
import { modbusTables } from '../config/schema.ts';
import type { ParsedCommandLine } from '../policy/argv.ts';
import { MODBUS_FUNCTION_CODES } from '../adapters/modbus/policy.ts';
import type { ModbusTable, Verb } from '../policy/types.ts';

/** An action without its target (the admin command takes the target beside it). */
export interface DryRunAction {
  verb: Verb;
  object: Record<string, unknown> & { kind: string };
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const TABLE_ALIASES: Record<string, ModbusTable> = {
  coil: 'coil', coils: 'coil', co: 'coil',
  discrete_input: 'discrete_input', discrete_inputs: 'discrete_input', discrete: 'discrete_input', di: 'discrete_input',
  input_register: 'input_register', input_registers: 'input_register', input: 'input_register', ir: 'input_register',
  holding_register: 'holding_register', holding_registers: 'holding_register', holding: 'holding_register', hr: 'holding_register',
};

const F = MODBUS_FUNCTION_CODES;
/** What a front door would see for a read or write of a table: codes from the one table (functions.ts). */
const READ_FC: Record<ModbusTable, number> = { coil: F.READ_COILS, discrete_input: F.READ_DISCRETE_INPUTS, holding_register: F.READ_HOLDING_REGISTERS, input_register: F.READ_INPUT_REGISTERS };
const WRITE_FC: Partial<Record<ModbusTable, { single: number; multiple: number }>> = {
  coil: { single: F.WRITE_SINGLE_COIL, multiple: F.WRITE_MULTIPLE_COILS },
  holding_register: { single: F.WRITE_SINGLE_REGISTER, multiple: F.WRITE_MULTIPLE_REGISTERS },
};

export interface ModbusCheckOptions {
  quantity?: string;
  unit?: string;
  fc?: string;
  values?: string;
}

export function integer(text: string | undefined, what: string, min: number, max: number): number {
  if (text === undefined || !/^\s*(0x[0-9a-f]+|\d+)\s*$/i.test(text)) throw new UsageError(`${what} must be a whole number (got ${text ?? 'nothing'})`);
  const n = Number(text.trim());
  if (n < min || n > max) throw new UsageError(`${what} must be between ${min} and ${max} (got ${n})`);
  return n;
}

/** `modbus read|write TABLE ADDRESS`: function code from verb + table (+ quantity for writes), unless --fc says. */
export function modbusAction(args: string[], opts: ModbusCheckOptions): DryRunAction {
  const [verb, tableName, addressText, ...extra] = args;
  if (verb !== 'read' && verb !== 'write') throw new UsageError(`modbus: expected read or write, got ${verb ?? 'nothing'}`);
  if (extra.length) throw new UsageError(`modbus: unexpected arguments: ${extra.join(' ')}`);
  const table = tableName === undefined ? undefined : TABLE_ALIASES[tableName.toLowerCase()];
  if (!table) throw new UsageError(`modbus: TABLE must be one of ${modbusTables.join(', ')} (got ${tableName ?? 'nothing'})`);
  const address = integer(addressText, 'ADDRESS (0-based protocol address)', 0, 65535);
  const values = opts.values === undefined ? undefined : opts.values.split(',').map((v, i) => integer(v, `--values item ${i + 1}`, 0, 65535));
  if (values && verb !== 'write') throw new UsageError('--values is for writes');
  const quantity = opts.quantity !== undefined ? integer(opts.quantity, '--quantity', 1, 2000) : (values?.length ?? 1);
  if (values && values.length !== quantity) throw new UsageError(`--values has ${values.length} item(s) but --quantity is ${quantity}`);
  const unit = opts.unit === undefined ? 1 : integer(opts.unit, '--unit', 0, 255);
  let functionCode: number;
  if (opts.fc !== undefined) functionCode = integer(opts.fc, '--fc', 1, 127);
  else if (verb === 'read') functionCode = READ_FC[table];
  else if (WRITE_FC[table]) functionCode = quantity === 1 ? WRITE_FC[table].single : WRITE_FC[table].multiple;
  else throw new UsageError(`modbus: ${table} is read-only (no write function code); use --fc to ask about a specific one`);
  if (table === 'coil' && values?.some((v) => v > 1)) throw new UsageError('coil values are 0 or 1');
  return {
    verb,
    object: { kind: 'modbus', unit, functionCode, table, address, quantity, ...(values ? { values } : {}) },
  };
}

export interface OpcuaCheckOptions {
  value?: string;
  browsePath?: string;
  attribute?: string;
  object?: string;
}

const OPCUA_VERBS = ['read', 'write', 'call', 'browse', 'subscribe', 'history'] as const;

export function opcuaAction(args: string[], opts: OpcuaCheckOptions): DryRunAction {
  const [verb, nodeId, ...extra] = args;
  if (!verb || !(OPCUA_VERBS as readonly string[]).includes(verb)) throw new UsageError(`opcua: expected one of ${OPCUA_VERBS.join(', ')}, got ${verb ?? 'nothing'}`);
  if (!nodeId) throw new UsageError('opcua: NODEID is missing (e.g. "ns=1;s=Boiler/Drum/Level")');
  if (extra.length) throw new UsageError(`opcua: unexpected arguments: ${extra.join(' ')}`);
  let value: number | undefined;
  if (opts.value !== undefined) {
    value = Number(opts.value);
    if (opts.value.trim() === '' || !Number.isFinite(value)) throw new UsageError(`--value must be a number (got ${opts.value})`);
  }
  return {
    verb: verb as Verb,
    object: {
      kind: 'opcua',
      nodeId,
      ...(opts.browsePath !== undefined ? { browsePath: opts.browsePath } : {}),
      ...(opts.attribute !== undefined ? { attribute: opts.attribute } : {}),
      ...(value !== undefined ? { value } : {}),
      ...(opts.object !== undefined ? { objectId: opts.object } : {}),
    },
  };
}

/**
 * `ssh exec -- CMD ARGS…` / `ssh shell` / `ssh tunnel [modbus|raw]`. One word after `--` is taken as the
 * command line exactly as a client would send it; several words are joined with POSIX quoting, so
 * `-- ls -l "my file"` asks about the argv [ls, -l, my file].
 */
export function sshAction(args: string[], parse: (line: string) => ParsedCommandLine): DryRunAction {
  const [channel, ...rest] = args;
  if (channel === 'shell') {
    if (rest.length) throw new UsageError(`ssh shell takes no arguments (got ${rest.join(' ')})`);
    return { verb: 'shell', object: { kind: 'ssh', channel: 'shell' } };
  }
  if (channel === 'tunnel') {
    const kind = rest[0] ?? 'raw';
    if ((kind !== 'modbus' && kind !== 'raw') || rest.length > 1) throw new UsageError('ssh tunnel takes modbus or raw');
    return { verb: 'tunnel', object: { kind: 'ssh', channel: 'tunnel', tunnel: kind } };
  }
  if (channel !== 'exec') throw new UsageError(`ssh: expected exec, shell or tunnel, got ${channel ?? 'nothing'}`);
  if (rest.length === 0) throw new UsageError('ssh exec: give the command after --, e.g. policy check P T ssh exec -- systemctl status plc');
  const commandLine = rest.length === 1 ? rest[0]! : rest.map(shellQuote).join(' ');
  const parsed = parse(commandLine);
  return {
    verb: 'exec',
    object: {
      kind: 'ssh',
      channel: 'exec',
      commandLine,
      // An unparseable line goes without argv, as a front door would send it (policy denies it as malformed).
      ...('error' in parsed ? {} : { argv: parsed.argv, metacharacters: parsed.metacharacters }),
    },
  };
}

/** POSIX single-quote a word unless it needs none. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
