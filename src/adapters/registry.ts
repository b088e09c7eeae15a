// The explicit list of front doors. A protocol missing here is a start-up error in config.
// Adapters are listed by their config schemas (config validation needs them even for a config
// check on a machine where the daemon does not run) and by their implementation.
import type { ProtocolAdapter, ProtocolSchemas } from './types.ts';
import { modbusListenerSchema, modbusTargetSchema } from './modbus/schema.ts';
import { modbusAdapter } from './modbus/adapter.ts';

export const protocolSchemas: ProtocolSchemas = new Map([
  ['modbus', { listenerSchema: modbusListenerSchema, targetSchema: modbusTargetSchema }],
]);

export const adapters: ReadonlyMap<string, ProtocolAdapter> = new Map<string, ProtocolAdapter>([
  ['modbus', modbusAdapter],
]);
