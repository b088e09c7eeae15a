// Namespace indexes between a plant and the gateway. A namespace index means something only against the
// NamespaceArray of the server that sent it, so every index that crosses the gateway is translated:
// each plant namespace URI is published in the gateway's own table (registered as a namespace of the
// gateway server, so one URI has one index however many targets use it), and node ids, expanded node
// ids and qualified names are rewritten from the plant's index to the gateway's one and back, in node
// attributes and in values (arrays, structure fields, method arguments, ExtensionObject encoding ids).
//
// Structures of plant namespaces are carried as their binary body: toward the client, a structure the
// plant leg decoded is encoded again and sent under the gateway's id of its encoding (the client decodes
// it from the data type mirrored in the gateway, address-space.ts); toward the plant, a client's body is
// decoded with the plant's own type (so a body the plant could not decode is refused here, for that item
// alone), its fields translated, and sent as the plant's structure.
import {
  BinaryStream,
  DataType,
  ExpandedNodeId,
  LocalizedText,
  NodeId,
  QualifiedName,
  StatusCodes,
  Variant,
} from 'node-opcua';
import { OpaqueStructure } from 'node-opcua-extension-object';
import { UpstreamFailure } from './upstream.ts';

const UA = 'http://opcfoundation.org/UA/';
const MAX_DEPTH = 32;

/**
 * An opaque structure that survives node-opcua's copies: a Variant copies an ExtensionObject as
 * `new value.constructor(value)`, and OpaqueStructure's constructor takes (nodeId, buffer), so a plain
 * one comes out of a WriteValue or CallMethodRequest as an empty body under node id 0.
 */
export class CarriedStructure extends OpaqueStructure {
  constructor(nodeIdOrCopy: NodeId | OpaqueStructure, buffer?: Buffer) {
    if (nodeIdOrCopy instanceof OpaqueStructure) super(nodeIdOrCopy.nodeId, nodeIdOrCopy.buffer);
    else super(nodeIdOrCopy, buffer!);
  }
}

/** The data types whose values can hold a namespace index (the rest pass through untouched, and fast). */
const INDEXED_TYPES = new Set(['NodeId', 'ExpandedNodeId', 'QualifiedName', 'ExtensionObject', 'Variant', 'DataValue']);

/** What the gateway's address space must offer to publish plant namespaces. */
export interface NamespaceTable {
  getNamespaceIndex(uri: string): number;
  registerNamespace(uri: string): { index: number };
}

/** A binary-encoded structure the plant knows, by its encoding id (plant indexes). */
export type StructureConstructor = new () => { decode(stream: BinaryStream): void };

/** A value that cannot be carried to the plant: answered for its item alone, with `status`. */
export class Untranslatable extends UpstreamFailure {
  override readonly name = 'Untranslatable';
}

type Direction = (ns: number) => number;

export class NamespaceMap {
  /** plant index → gateway index */
  readonly #toGateway: number[];
  /** gateway index → plant index */
  readonly #toPlant = new Map<number, number>();
  readonly plantUris: readonly string[];
  readonly #ownNode: (id: NodeId) => NodeId | undefined;

  /**
   * Publish the plant's URIs in the gateway's table (`onRegistered` for each new gateway namespace).
   * `ownNode` names a node of the gateway's own namespace (a mirrored node) as the plant does, for a
   * client that writes or passes a gateway node id as a value.
   */
  constructor(plantUris: readonly string[], table: NamespaceTable, opts: { onRegistered?: (index: number) => void; ownNode?: (id: NodeId) => NodeId | undefined } = {}) {
    this.plantUris = plantUris;
    this.#ownNode = opts.ownNode ?? (() => undefined);
    this.#toGateway = plantUris.map((uri, i) => {
      if (i === 0 || uri === UA) return 0;
      let index = table.getNamespaceIndex(uri);
      if (index < 0) {
        index = table.registerNamespace(uri).index;
        opts.onRegistered?.(index);
      }
      return index;
    });
    this.#toGateway.forEach((g, p) => {
      if (!this.#toPlant.has(g)) this.#toPlant.set(g, p);
    });
  }

  /** Before the plant's table is known (the link never came up): only namespace 0 means anything. */
  static identity(): NamespaceMap {
    return new NamespaceMap([UA], { getNamespaceIndex: () => 0, registerNamespace: () => ({ index: 0 }) });
  }

  gatewayIndex(plant: number): number {
    const g = this.#toGateway[plant];
    // An index the plant's table does not have: kept out of every gateway namespace rather than guessed.
    return g ?? (plant === 0 ? 0 : 0xffff);
  }

  plantIndex(gateway: number): number | undefined {
    return gateway === 0 ? 0 : this.#toPlant.get(gateway);
  }

  readonly #up: Direction = (ns) => this.gatewayIndex(ns);
  readonly #upPass: Pass = { to: this.#up, nodeId: (id) => this.nodeIdToGateway(id), up: true };
  readonly #down: Direction = (ns) => {
    const p = this.plantIndex(ns);
    if (p === undefined) throw new Untranslatable(StatusCodes.BadNodeIdUnknown, `namespace index ${ns} names no namespace of the target`);
    return p;
  };

  nodeIdToGateway(id: NodeId): NodeId {
    return id.namespace === 0 ? id : renumber(id, this.#up);
  }

  /** A gateway node id as the plant names it (throws Untranslatable for a namespace the plant lacks). */
  nodeIdToPlant(id: NodeId): NodeId {
    if (id.namespace === 0) return id;
    return (id instanceof ExpandedNodeId ? undefined : this.#ownNode(id)) ?? renumber(id, this.#down);
  }

  qualifiedNameToGateway(q: QualifiedName): QualifiedName {
    return q.namespaceIndex === 0 ? q : new QualifiedName({ name: q.name, namespaceIndex: this.#up(q.namespaceIndex) });
  }

  /** A plant value as the client must see it (a new Variant when anything changed). */
  variantToGateway(v: Variant): Variant {
    if (!INDEXED_TYPES.has(dataTypeName(v))) return v;
    return cloneVariant(v, translate(v.value, this.#upPass, 0, true));
  }

  /** A structure read from the plant (e.g. a data type definition) as the client must see it. */
  valueToGateway<T>(value: T): T {
    return translate(value, this.#upPass, 0, false) as T;
  }

  /**
   * A client's value as the plant must receive it. `constructorFor` finds the plant's type of a
   * structure by its (plant) encoding id. Throws Untranslatable when the value cannot be carried.
   */
  async variantToPlant(v: Variant, constructorFor: (encodingId: NodeId) => Promise<StructureConstructor | undefined>): Promise<Variant> {
    if (!INDEXED_TYPES.has(dataTypeName(v))) return v;
    // Opaque bodies are decoded first (async), then everything is renumbered in one synchronous pass.
    const decoded = new Map<OpaqueStructure, unknown>();
    const pending: Promise<void>[] = [];
    collectOpaque(v.value, 0, (o) => {
      pending.push((async () => {
        const id = this.nodeIdToPlant(o.nodeId);
        const ctor = await constructorFor(id);
        decoded.set(o, ctor ? decodeBody(ctor, o.buffer) : new CarriedStructure(id, o.buffer));
      })());
    });
    await Promise.all(pending);
    return cloneVariant(v, translate(v.value, { to: this.#down, nodeId: (id) => this.nodeIdToPlant(id), up: false, decoded }, 0, true));
  }
}

function dataTypeName(v: Variant): string {
  return DataType[v.dataType] ?? 'Null';
}

function cloneVariant(v: Variant, value: unknown): Variant {
  if (value === v.value) return v;
  return new Variant({ dataType: v.dataType, arrayType: v.arrayType, value, ...(v.dimensions ? { dimensions: v.dimensions } : {}) });
}

function renumber(id: NodeId, to: Direction): NodeId {
  if (id instanceof ExpandedNodeId) {
    // An expanded node id that names its namespace by URI (or another server) needs no index.
    if (id.namespaceUri || id.serverIndex) return id;
    return new ExpandedNodeId(id.identifierType, id.value, to(id.namespace), null, 0);
  }
  return new NodeId(id.identifierType, id.value, to(id.namespace));
}

function decodeBody(ctor: StructureConstructor, body: Buffer): unknown {
  const obj = new ctor();
  const stream = new BinaryStream(body);
  try {
    obj.decode(stream);
  } catch (err) {
    throw new Untranslatable(StatusCodes.BadDecodingError, `the structure cannot be decoded as the target's type (${(err as Error).message})`);
  }
  if (stream.length !== body.length) throw new Untranslatable(StatusCodes.BadDecodingError, `the structure's body is ${body.length} bytes, its type reads ${stream.length}`);
  return obj;
}

function collectOpaque(value: unknown, depth: number, found: (o: OpaqueStructure) => void): void {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return;
  if (value instanceof OpaqueStructure) return found(value);
  if (Array.isArray(value)) {
    for (const x of value) collectOpaque(x, depth + 1, found);
    return;
  }
  if (value instanceof NodeId || value instanceof QualifiedName || value instanceof LocalizedText || value instanceof Date) return;
  for (const k of Object.keys(value)) collectOpaque((value as Record<string, unknown>)[k], depth + 1, found);
}

interface EncodedStructure {
  schema?: { encodingDefaultBinary?: NodeId | null };
  encode(stream: BinaryStream): void;
  binaryStoreSize(): number;
}

interface Pass {
  /** Namespace indexes (qualified names)… */
  to: Direction;
  /** …and node ids, which may also be gateway nodes named as the plant names them. */
  nodeId: (id: NodeId) => NodeId;
  /** Toward the client (plant structures are re-encoded under the gateway's encoding id). */
  up: boolean;
  /** Toward the plant: what each opaque body of the client decoded to. */
  decoded?: Map<OpaqueStructure, unknown>;
}

/**
 * Renumber every namespace index inside `value`: new objects where anything changed, the input left as
 * it was (the plant leg shares decoded values between watchers). `element` is true for a value that is
 * encoded as an ExtensionObject of its own (a variant's element), false for a structure's inline field.
 */
function translate(value: unknown, pass: Pass, depth: number, element: boolean): unknown {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value) || value instanceof Date) return value;
  if (depth > MAX_DEPTH) throw new Untranslatable(StatusCodes.BadEncodingLimitsExceeded, 'the value nests too deeply');
  if (value instanceof NodeId) return value.namespace === 0 && !(value instanceof ExpandedNodeId) ? value : pass.nodeId(value);
  if (value instanceof QualifiedName) return value.namespaceIndex === 0 ? value : new QualifiedName({ name: value.name, namespaceIndex: pass.to(value.namespaceIndex) });
  if (value instanceof LocalizedText) return value;
  if (value instanceof OpaqueStructure) {
    if (pass.up) return new CarriedStructure(renumber(value.nodeId, pass.to), value.buffer);
    const d = pass.decoded?.get(value);
    // A decoded body's fields still hold gateway indexes; an undecoded one was renumbered already; one
    // inside a decoded body (an ExtensionObject field) goes as it is, under the plant's encoding id.
    if (d === undefined) return new CarriedStructure(pass.nodeId(value.nodeId), value.buffer);
    return d instanceof OpaqueStructure ? d : translate(d, pass, depth + 1, false);
  }
  if (Array.isArray(value)) {
    let changed = false;
    const out = value.map((x) => {
      const y = translate(x, pass, depth + 1, element);
      if (y !== x) changed = true;
      return y;
    });
    return changed ? out : value;
  }
  if (value instanceof Variant) {
    if (!INDEXED_TYPES.has(dataTypeName(value))) return value;
    return cloneVariant(value, translate(value.value, pass, depth + 1, true));
  }
  // A structure (a node-opcua class instance): its fields first.
  const src = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const k of Object.keys(src)) {
    const x = src[k];
    const y = translate(x, pass, depth + 1, false);
    if (y !== x) {
      copy ??= Object.assign(Object.create(Object.getPrototypeOf(src) as object) as Record<string, unknown>, src);
      copy[k] = y;
    }
  }
  const result = (copy ?? src) as unknown as EncodedStructure;
  // A plant-namespace type travels to the client as its body under the gateway's id of its encoding.
  const encoding = result.schema?.encodingDefaultBinary;
  if (pass.up && element && encoding instanceof NodeId && encoding.namespace !== 0 && typeof result.encode === 'function') {
    const stream = new BinaryStream(result.binaryStoreSize());
    result.encode(stream);
    return new CarriedStructure(renumber(encoding, pass.to), stream.buffer.subarray(0, stream.length));
  }
  return result;
}
