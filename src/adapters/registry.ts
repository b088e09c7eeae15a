// The explicit list of front doors. A protocol missing here is a start-up error in config.
// Schemas are loaded eagerly (config validation needs them, even for `penstockctl config check` on a
// machine where no daemon runs); an adapter's implementation is loaded only when a listener uses it,
// so a gateway without OPC UA never loads node-opcua (≈ 100 MB of RSS on a small box).
import type { ProtocolAdapter, ProtocolSchemas } from './types.ts';
import { modbusListenerSchema, modbusTargetSchema } from './modbus/schema.ts';
import { sshListenerSchema, sshTargetSchema } from './ssh/schema.ts';
import { opcuaListenerSchema, opcuaTargetSchema } from './opcua/schema.ts';

export const protocolSchemas: ProtocolSchemas = new Map([
  ['modbus', { listenerSchema: modbusListenerSchema, targetSchema: modbusTargetSchema }],
  ['ssh', { listenerSchema: sshListenerSchema, targetSchema: sshTargetSchema }],
  ['opcua', { listenerSchema: opcuaListenerSchema, targetSchema: opcuaTargetSchema }],
]);

const loaders: ReadonlyMap<string, () => Promise<ProtocolAdapter>> = new Map([
  ['modbus', async () => (await import('./modbus/adapter.ts')).modbusAdapter],
  ['ssh', async () => (await import('./ssh/adapter.ts')).sshAdapter],
  ['opcua', async () => (await import('./opcua/adapter.ts')).opcuaAdapter],
]);

/** The adapter for a protocol, loaded on first use; undefined for a protocol Penstock has no front door for. */
export async function loadAdapter(protocol: string): Promise<ProtocolAdapter | undefined> {
  return loaders.get(protocol)?.();
}
