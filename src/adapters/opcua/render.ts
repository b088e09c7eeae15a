// How an OPC UA action reads: in the journal (field names as network sensors log OPC UA: node_id,
// browse_path, attribute) and in one short line for people (`penstockctl`).
import type { Action } from '../../policy/types.ts';
import type { OpcuaObject } from './rules.ts';

/** The journal's `opcua` block of an action. */
export function renderOpcuaObject(o: OpcuaObject): Record<string, unknown> {
  return {
    node_id: o.nodeId,
    browse_path: o.browsePath,
    attribute: o.attribute,
    value: o.value,
    object_id: o.objectId,
  };
}

/** `write ns=1;s=boiler-1/Boiler/Setpoint = 42`. */
export function describeOpcuaAction(a: Action & { object: OpcuaObject }): string {
  const o = a.object;
  return `${a.verb} ${o.nodeId}${o.value !== undefined ? ` = ${o.value}` : ''}`;
}
