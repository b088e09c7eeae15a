// The module table: every protocol Penstock has a front door for, one line each. A protocol missing
// here is a start-up error in config. Shared code (config, policy, journal, admin, cli, core's
// composition root) looks protocols up here and never names one; adding a protocol is a folder under
// src/adapters/ and a line below (docs/adding-a-protocol.md).
//
// The modules are small and loaded eagerly (config validation, policy and the journal need their
// schemas, matchers and renderers, even for `penstockctl config check` where no daemon runs); a front
// door itself is loaded only when a listener or a tunnel uses it (`load()`), so a gateway without a
// protocol never loads its stack (node-opcua alone is ≈ 100 MB of RSS on a small box).
import type { FrontDoor, ProtocolModule, ProtocolTable } from './types.ts';
import { modbusModule } from './modbus/module.ts';
import { opcuaModule } from './opcua/module.ts';
import { sshModule } from './ssh/module.ts';
import { mcpModule } from './mcp/module.ts';

const modules: readonly ProtocolModule[] = [modbusModule, opcuaModule, sshModule, mcpModule] as unknown as ProtocolModule[];

export const protocols: ProtocolTable = new Map(modules.map((m) => [m.name, m]));

/** The protocol named `name`, or undefined for one Penstock has no front door for. */
export function protocolModule(name: string): ProtocolModule | undefined {
  return protocols.get(name);
}

/** The front door of a protocol, loaded on first use; undefined for a protocol Penstock has no front door for. */
export async function loadFrontDoor(name: string): Promise<FrontDoor | undefined> {
  return protocols.get(name)?.load();
}
