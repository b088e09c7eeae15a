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

/** Read back by the alert detectors (src/alerts): a numeric value written to a node, keyed by the node. */
export function opcuaWrittenValues(block: Record<string, unknown>, verb: string): { point: string; value: number }[] {
  return verb === 'write' && typeof block.node_id === 'string' && typeof block.value === 'number' && Number.isFinite(block.value) ? [{ point: block.node_id, value: block.value }] : [];
}
