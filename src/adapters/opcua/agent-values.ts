// Values between an agent's JSON and OPC UA Variants: a value to write or pass to a method, typed as a
// built-in type (given, or the variable's / argument's own), and a value read, bounded for the agent.
import { DataType, NodeId, VariantArrayType, Variant } from 'node-opcua';
import { INTEGER_TEXT } from './rules.ts';
import { exactInt64 } from './policy.ts';
import { OPCUA_AGENT_LIMITS, opcuaAgentDataTypes, type OpcuaAgentDataType } from './agent-tools.ts';

/** An argument the agent gave that cannot be sent as the type it must have. */
export class AgentValueError extends Error {
  override readonly name = 'AgentValueError';
}

/** The built-in type a data type node id stands for, when it is one an agent may write (else undefined). */
export function builtInType(dataType: NodeId | undefined): OpcuaAgentDataType | undefined {
  if (!dataType || dataType.namespace !== 0 || typeof dataType.value !== 'number') return undefined;
  const name = DataType[dataType.value];
  return (opcuaAgentDataTypes as readonly string[]).includes(name ?? '') ? (name as OpcuaAgentDataType) : undefined;
}

const INTEGER_RANGES: Partial<Record<OpcuaAgentDataType, [number, number]>> = {
  SByte: [-128, 127],
  Byte: [0, 255],
  Int16: [-32768, 32767],
  UInt16: [0, 65535],
  Int32: [-(2 ** 31), 2 ** 31 - 1],
  UInt32: [0, 2 ** 32 - 1],
};
const FLOAT_MAX = 3.4028234663852886e38;

/** A 64-bit integer as node-opcua carries it: [high, low] 32-bit words. */
function int64Words(raw: unknown, unsigned: boolean): [number, number] {
  let v: bigint;
  if (typeof raw === 'number' && Number.isSafeInteger(raw)) v = BigInt(raw);
  else if (typeof raw === 'string' && INTEGER_TEXT.test(raw)) v = BigInt(raw);
  else throw new AgentValueError(`${JSON.stringify(raw)} is not an integer (beyond 2^53, give it as decimal text)`);
  const [min, max] = unsigned ? [0n, 2n ** 64n - 1n] : [-(2n ** 63n), 2n ** 63n - 1n];
  if (v < min || v > max) throw new AgentValueError(`${raw} is outside ${unsigned ? 'UInt64' : 'Int64'}`);
  const high = unsigned ? Number((v >> 32n) & 0xffffffffn) : Number(BigInt.asIntN(32, v >> 32n));
  return [high, Number(v & 0xffffffffn)];
}

function scalarFor(raw: unknown, type: OpcuaAgentDataType): unknown {
  switch (type) {
    case 'Boolean':
      if (typeof raw !== 'boolean') throw new AgentValueError(`${JSON.stringify(raw)} is not a boolean`);
      return raw;
    case 'String':
      if (typeof raw !== 'string') throw new AgentValueError(`${JSON.stringify(raw)} is not a text`);
      return raw;
    case 'DateTime': {
      const d = typeof raw === 'string' ? new Date(raw) : undefined;
      if (!d || Number.isNaN(d.getTime())) throw new AgentValueError(`${JSON.stringify(raw)} is not an ISO 8601 date`);
      return d;
    }
    case 'Int64':
    case 'UInt64':
      return int64Words(raw, type === 'UInt64');
    case 'Float':
    case 'Double':
      if (typeof raw !== 'number' || !Number.isFinite(raw)) throw new AgentValueError(`${JSON.stringify(raw)} is not a finite number`);
      if (type === 'Float' && Math.abs(raw) > FLOAT_MAX) throw new AgentValueError(`${raw} is outside Float`);
      return raw;
    default: {
      const [min, max] = INTEGER_RANGES[type]!;
      if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < min || raw > max) throw new AgentValueError(`${JSON.stringify(raw)} is not a ${type} (an integer from ${min} to ${max})`);
      return raw;
    }
  }
}

/** The Variant an agent's value is sent as: a scalar, or an array when the value is one. Throws AgentValueError. */
export function toVariant(raw: unknown, type: OpcuaAgentDataType): Variant {
  const dataType = DataType[type];
  if (Array.isArray(raw)) return new Variant({ dataType, arrayType: VariantArrayType.Array, value: raw.map((x) => scalarFor(x, type)) });
  return new Variant({ dataType, arrayType: VariantArrayType.Scalar, value: scalarFor(raw, type) });
}

interface Bounded {
  value: unknown;
  truncated: boolean;
}

function text(s: string, b: Bounded): string {
  if (s.length <= OPCUA_AGENT_LIMITS.textChars) return s;
  b.truncated = true;
  return `${s.slice(0, OPCUA_AGENT_LIMITS.textChars)}…`;
}

/** The URI of a namespace index of the gateway's table (the agent has no NamespaceArray to look it up in). */
export type NamespaceUriOf = (index: number) => string | undefined;

/** A node id as text an agent can use without the gateway's NamespaceArray: `nsu=<uri>;…` beyond namespace 0. */
export function nodeIdText(id: { toString(): string; namespace?: number; namespaceUri?: string | null }, uriOf: NamespaceUriOf | undefined): string {
  const text = id.toString();
  if (id.namespaceUri || !id.namespace || !uriOf) return text;
  const uri = uriOf(id.namespace);
  return uri ? text.replace(/^ns=\d+;/, `nsu=${uri};`) : text;
}

function jsonScalar(v: unknown, dataType: DataType, b: Bounded, uriOf: NamespaceUriOf | undefined): unknown {
  if (v === null || v === undefined) return null;
  if (dataType === DataType.Int64 || dataType === DataType.UInt64) return exactInt64(v, dataType === DataType.UInt64) ?? String(v);
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (typeof v === 'string') return text(v, b);
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (Buffer.isBuffer(v)) return text(v.toString('base64'), b);
  if (dataType === DataType.LocalizedText) return text(String((v as { text?: unknown }).text ?? ''), b);
  if (dataType === DataType.StatusCode) return String((v as { name?: unknown }).name ?? v);
  if (dataType === DataType.NodeId || dataType === DataType.ExpandedNodeId) return text(nodeIdText(v as NodeId, uriOf), b);
  if (dataType === DataType.QualifiedName || dataType === DataType.Guid) return text(String(v), b);
  // A structure (ExtensionObject) or anything else: its JSON, as text, bounded.
  return text(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? String(v), b);
}

/**
 * What the agent sees of a value read or returned: JSON (64-bit integers exactly, as decimal text beyond
 * 2^53; dates as ISO 8601; byte strings in base64; node ids as `nsu=<uri>;…`; structures as their JSON
 * text), arrays and texts cut
 * at the bounds, and the built-in type's name.
 */
export function fromVariant(v: Variant | null | undefined, uriOf?: NamespaceUriOf): { value: unknown; data_type: string; truncated?: true } {
  if (!v) return { value: null, data_type: 'Null' };
  const b: Bounded = { value: undefined, truncated: false };
  const raw: unknown = v.value;
  const isArray = v.arrayType !== VariantArrayType.Scalar && raw !== null && typeof raw === 'object' && typeof (raw as { length?: unknown }).length === 'number' && !Buffer.isBuffer(raw);
  if (isArray) {
    const list = raw as ArrayLike<unknown>;
    const max = OPCUA_AGENT_LIMITS.arrayElements;
    if (list.length > max) b.truncated = true;
    // Int64 arrays hold [high, low] pairs per element; typed arrays their numbers.
    b.value = Array.from({ length: Math.min(list.length, max) }, (_x, i) => jsonScalar(list[i], v.dataType, b, uriOf));
  } else {
    b.value = jsonScalar(raw, v.dataType, b, uriOf);
  }
  return { value: b.value, data_type: DataType[v.dataType] ?? String(v.dataType), ...(b.truncated ? { truncated: true as const } : {}) };
}
