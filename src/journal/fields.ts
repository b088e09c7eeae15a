// How actions, decisions and outcomes appear in journal events. Protocol fields use the names OT
// analysts know from Zeek (modbus.log: unit, func, exception; ICSNPP: address, quantity, values) and
// Suricata, so a SIEM rule written for network sensors reads Penstock evidence unchanged.
import type { Action, Decision, ModbusObject, OpcuaObject, SshObject } from '../policy/types.ts';

/** Zeek's Modbus function names (base/protocols/modbus/consts.zeek). */
export const MODBUS_FUNCTIONS: Readonly<Record<number, string>> = {
  1: 'READ_COILS',
  2: 'READ_DISCRETE_INPUTS',
  3: 'READ_HOLDING_REGISTERS',
  4: 'READ_INPUT_REGISTERS',
  5: 'WRITE_SINGLE_COIL',
  6: 'WRITE_SINGLE_REGISTER',
  7: 'READ_EXCEPTION_STATUS',
  8: 'DIAGNOSTICS',
  11: 'GET_COMM_EVENT_COUNTER',
  12: 'GET_COMM_EVENT_LOG',
  15: 'WRITE_MULTIPLE_COILS',
  16: 'WRITE_MULTIPLE_REGISTERS',
  17: 'REPORT_SLAVE_ID',
  20: 'READ_FILE_RECORD',
  21: 'WRITE_FILE_RECORD',
  22: 'MASK_WRITE_REGISTER',
  23: 'READ_WRITE_MULTIPLE_REGISTERS',
  24: 'READ_FIFO_QUEUE',
  43: 'ENCAP_INTERFACE_TRANSPORT',
};

/** Zeek's Modbus exception names. */
export const MODBUS_EXCEPTIONS: Readonly<Record<number, string>> = {
  1: 'ILLEGAL_FUNCTION',
  2: 'ILLEGAL_DATA_ADDRESS',
  3: 'ILLEGAL_DATA_VALUE',
  4: 'SLAVE_DEVICE_FAILURE',
  5: 'ACKNOWLEDGE',
  6: 'SLAVE_DEVICE_BUSY',
  8: 'MEMORY_PARITY_ERROR',
  10: 'GATEWAY_PATH_UNAVAILABLE',
  11: 'GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND',
};

export function modbusFunctionName(code: number): string {
  return MODBUS_FUNCTIONS[code] ?? `unknown-${code}`;
}

export function modbusExceptionName(code: number): string {
  return MODBUS_EXCEPTIONS[code] ?? `unknown-${code}`;
}

export function renderModbus(o: ModbusObject): Record<string, unknown> {
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

export function renderOpcua(o: OpcuaObject): Record<string, unknown> {
  return {
    node_id: o.nodeId,
    browse_path: o.browsePath,
    attribute: o.attribute,
    value: o.value,
    object_id: o.objectId,
  };
}

export function renderSsh(o: SshObject): Record<string, unknown> {
  return {
    channel: o.channel,
    command: o.commandLine,
    argv: o.argv,
    metacharacters: o.metacharacters,
    pty: o.pty,
    tunnel: o.tunnel,
    path: o.path,
    direction: o.direction,
    bytes: o.bytes,
  };
}

/** `{ verb, target, modbus|opcua|ssh: {...} }`: the protocol block is keyed by the protocol's name. */
export function renderAction(action: Action): Record<string, unknown> {
  const o = action.object;
  const block = o.kind === 'modbus' ? renderModbus(o) : o.kind === 'opcua' ? renderOpcua(o) : renderSsh(o);
  return { verb: action.verb, target: action.target, [o.kind]: block };
}

export function renderDecision(d: Decision): Record<string, unknown> {
  return { effect: d.effect, reason: d.reason, grant: d.grant, rule: d.rule, explanation: d.explanation };
}

/** Outcome of a Modbus request: exception by Zeek name, and the register values before and after a write. */
export function modbusOutcome(o: {
  exception?: number;
  oldValues?: number[];
  newValues?: number[];
  durationMs?: number;
  bytes?: number;
}): Record<string, unknown> {
  return {
    exception: o.exception === undefined ? undefined : modbusExceptionName(o.exception),
    exception_code: o.exception,
    old_values: o.oldValues,
    new_values: o.newValues,
    duration_ms: o.durationMs,
    bytes: o.bytes,
  };
}
