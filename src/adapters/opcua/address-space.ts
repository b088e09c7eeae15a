// One target's upstream address space, mirrored as STRUCTURE ONLY under Objects/<target-id>/ in the
// gateway's namespace. No value is copied: reads, writes and calls are forwarded when they happen
// (accessor.ts), and a variable's local value is only the last notification of a live subscription.
//
// Gateway node ids are stable and readable: `ns=<gateway ns>;s=<target>/<browse path below the root>`,
// e.g. `ns=1;s=boiler-1/Boiler/Drum/Level`; policy sees the browse path `Objects/Boiler/Drum/Level`.
// They depend on browse names only, so they survive an upstream restart that renumbers its node ids.
// The mirror is refreshed (new nodes added) when it is older than `browse_cache_seconds`.
//
// Browse names, data types and method arguments keep the plant's namespaces, renumbered into the
// gateway's table (namespaces.ts); the plant's custom data types (and their encodings and definitions)
// are mirrored with their own ids, so a client decodes the plant's structures from the gateway alone.
// The plant's own Server object (its diagnostics, sessions and methods) is never mirrored.
import type { Logger } from 'pino';
import {
  AttributeIds,
  BrowseDirection,
  DataType,
  NodeClass,
  NodeClassMask,
  NodeId,
  NodeIdType,
  ObjectIds,
  QualifiedName,
  ReferenceTypeIds,
  StatusCodes,
  resolveNodeId,
  sameNodeId,
  Variant,
  makeAccessLevelFlag,
  type Argument,
  type BaseNode,
  type Namespace,
  type ReferenceDescription,
  type UAMethod,
  type UAObject,
  type UAVariable,
} from 'node-opcua';
import type { OpcuaUpstream } from './upstream.ts';
import { NamespaceMap } from './namespaces.ts';

export interface GatewayNode {
  target: string;
  /** Gateway-side node id, as the client and policy see it. */
  gatewayId: string;
  upstreamId: string;
  /** `Objects/...` below the target folder. */
  browsePath: string;
  nodeClass: 'Object' | 'Variable' | 'Method' | 'Root';
  /** Upstream AccessLevel has CurrentWrite (variables). */
  writable: boolean;
  /** The plant's AccessLevel (variables; 0 until described). */
  accessLevel: number;
  /**
   * A variable's data type when it is one of the plant's own (mirrored, gateway numbering). The local
   * node holds its nearest standard ancestor, which node-opcua can check notifications against.
   */
  dataType?: NodeId;
  parent: GatewayNode | undefined;
  /** The local node (for subscriptions: its value carries upstream notifications). */
  local: BaseNode;
}

const HIERARCHICAL = 'i=33';
const HAS_PROPERTY = 'i=46';
const ORGANIZES = 'i=35';
const FOLDER_TYPE = 'i=61';
const UPSTREAM_SERVER_OBJECT = new NodeId(NodeIdType.NUMERIC, ObjectIds.Server, 0);
const BROWSE_BATCH = 50;
const READ_BATCH = 200;

function escapeSegment(name: string): string {
  return name.replace(/%/g, '%25').replace(/\//g, '%2F');
}

interface Found {
  ref: ReferenceDescription;
  upstreamId: string;
  parent: GatewayNode;
  name: string;
  /** The browse name in the gateway's namespace table. */
  browseName: QualifiedName;
  path: string;
  refType: string;
}

export class TargetMirror {
  readonly target: string;
  readonly root: GatewayNode;
  readonly #ns: Namespace;
  readonly #upstream: OpcuaUpstream;
  readonly #log: Logger;
  readonly #maxNodes: number;
  readonly #maxDepth: number;
  readonly #upstreamRoot: string;
  /** gateway node id string → node */
  readonly nodes = new Map<string, GatewayNode>();
  readonly #byUpstream = new Map<string, GatewayNode>();
  #syncedAt = 0;
  #syncing: Promise<void> | undefined;
  #namespaces: { from: readonly string[]; map: NamespaceMap } | undefined;

  constructor(ns: Namespace, target: string, upstream: OpcuaUpstream, opts: { root: string; maxNodes: number; maxDepth: number; log: Logger }) {
    this.target = target;
    this.#ns = ns;
    this.#upstream = upstream;
    this.#log = opts.log;
    this.#maxNodes = opts.maxNodes;
    this.#maxDepth = opts.maxDepth;
    const objects = ns.addressSpace.rootFolder.objects;
    const folder = ns.addFolder(objects, { browseName: target, nodeId: `s=${target}`, description: `Penstock target ${target}` });
    this.#upstreamRoot = resolveNodeId(opts.root).toString();
    this.root = { target, gatewayId: folder.nodeId.toString(), upstreamId: this.#upstreamRoot, browsePath: 'Objects', nodeClass: 'Root', writable: false, accessLevel: 0, parent: undefined, local: folder };
    this.nodes.set(this.root.gatewayId, this.root);
  }

  /**
   * The plant's namespace indexes against the gateway's, for the plant's table as last read (each plant
   * URI published in the gateway's table, readable like the gateway's own namespace).
   */
  get namespaces(): NamespaceMap {
    const from = this.#upstream.namespaceArray;
    if (from.length === 0) return NamespaceMap.identity();
    if (this.#namespaces?.from !== from) {
      const as = this.#ns.addressSpace;
      const permissions = this.#ns.getDefaultRolePermissions();
      const map = new NamespaceMap(from, as, {
        onRegistered: (index) => as.getNamespace(index).setDefaultRolePermissions(permissions),
        ownNode: (id) => {
          const node = this.nodes.get(id.toString());
          return node && node.nodeClass !== 'Root' ? resolveNodeId(node.upstreamId) : undefined;
        },
      });
      this.#namespaces = { from, map };
    }
    return this.#namespaces.map;
  }

  get syncedAt(): number {
    return this.#syncedAt;
  }

  /** Refresh the mirror when it is older than `maxAgeMs` (one refresh at a time). */
  refreshIfStale(maxAgeMs: number, nowMs: number): Promise<void> {
    if (nowMs - this.#syncedAt < maxAgeMs || !this.#upstream.up) return Promise.resolve();
    return this.sync();
  }

  sync(): Promise<void> {
    this.#syncing ??= this.#sync().finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    const found: Found[] = [];
    const seen = new Set<string>([this.#upstreamRoot]);
    const namespaces = this.namespaces;
    let frontier: { upstreamId: string; node: GatewayNode | undefined; path: string; depth: number; parentForChildren: GatewayNode }[] = [
      { upstreamId: this.#upstreamRoot, node: this.root, path: '', depth: 0, parentForChildren: this.root },
    ];
    const methodArgs = new Map<string, { input?: string; output?: string }>();
    while (frontier.length > 0 && found.length < this.#maxNodes) {
      const next: typeof frontier = [];
      for (let i = 0; i < frontier.length; i += BROWSE_BATCH) {
        const batch = frontier.slice(i, i + BROWSE_BATCH);
        const results = await this.#upstream.browse(batch.map((f) => ({
          nodeId: f.upstreamId,
          browseDirection: BrowseDirection.Forward,
          referenceTypeId: HIERARCHICAL,
          includeSubtypes: true,
          nodeClassMask: NodeClassMask.Object | NodeClassMask.Variable | NodeClassMask.Method,
          resultMask: 63,
        })));
        batch.forEach((f, k) => {
          const refs = results[k]?.statusCode.isGood() ? results[k]!.references ?? [] : [];
          const names = new Map<string, number>();
          for (const ref of refs) {
            if (!ref.isForward || ref.nodeId.serverIndex || ref.nodeId.namespaceUri) continue;
            const upstreamId = new NodeId(ref.nodeId.identifierType, ref.nodeId.value, ref.nodeId.namespace).toString();
            const name = ref.browseName.name ?? '';
            // A method's argument properties describe it; they are not nodes of their own here.
            if (f.node?.nodeClass === 'Method' || f.node === undefined) {
              if (f.node?.nodeClass === 'Method' && (name === 'InputArguments' || name === 'OutputArguments')) {
                const m = methodArgs.get(f.node.gatewayId) ?? {};
                if (name === 'InputArguments') m.input = upstreamId;
                else m.output = upstreamId;
                methodArgs.set(f.node.gatewayId, m);
              }
              continue;
            }
            // The plant's Server object: its diagnostics and sessions are the plant's, not the target's.
            if (seen.has(upstreamId) || name.length === 0 || sameNodeId(ref.nodeId, UPSTREAM_SERVER_OBJECT)) continue;
            seen.add(upstreamId);
            const n = (names.get(name) ?? 0) + 1;
            names.set(name, n);
            const segment = escapeSegment(n === 1 ? name : `${name}~${n}`);
            const path = f.path ? `${f.path}/${segment}` : segment;
            if (found.length >= this.#maxNodes) break;
            const browseName = namespaces.qualifiedNameToGateway(new QualifiedName({ name, namespaceIndex: ref.browseName.namespaceIndex }));
            const item: Found = { ref, upstreamId, parent: f.parentForChildren, name, browseName, path, refType: ref.referenceTypeId.toString() };
            found.push(item);
            const have = this.nodes.get(this.#gatewayIdFor(path));
            const node = have ?? this.#create(item);
            if (node && f.depth + 1 < this.#maxDepth && ref.nodeClass !== NodeClass.Method) {
              next.push({ upstreamId, node, path, depth: f.depth + 1, parentForChildren: node });
            } else if (node && ref.nodeClass === NodeClass.Method) {
              next.push({ upstreamId, node, path, depth: this.#maxDepth, parentForChildren: node });
            }
          }
        });
      }
      frontier = next;
    }
    await this.#describeVariables(namespaces);
    await this.#describeMethods(methodArgs, namespaces);
    this.#syncedAt = Date.now();
    this.#log.info({ target: this.target, nodes: this.nodes.size - 1 }, 'opcua target mirrored');
  }

  #gatewayIdFor(path: string): string {
    return `ns=${this.#ns.index};s=${this.target}/${path}`;
  }

  /** Create the local node for an upstream reference (structure only). */
  #create(f: Found): GatewayNode | undefined {
    const parent = f.parent.local as UAObject;
    const nodeId = `s=${this.target}/${f.path}`;
    const common = { browseName: f.browseName, nodeId, displayName: f.ref.displayName.text ?? f.name };
    let local: BaseNode;
    let nodeClass: GatewayNode['nodeClass'];
    try {
      if (f.ref.nodeClass === NodeClass.Variable) {
        const v = this.#ns.addVariable({
          ...common,
          ...(f.refType === HAS_PROPERTY && f.parent.nodeClass !== 'Root' ? { propertyOf: parent } : f.parent.nodeClass === 'Root' ? { organizedBy: parent } : { componentOf: parent }),
          dataType: 'BaseDataType',
          minimumSamplingInterval: 0,
        });
        v.setValueFromSource(new Variant({ dataType: DataType.Null }), StatusCodes.BadWaitingForInitialData);
        local = v;
        nodeClass = 'Variable';
      } else if (f.ref.nodeClass === NodeClass.Method) {
        if (f.parent.nodeClass === 'Variable' || f.parent.nodeClass === 'Method') return undefined;
        const m = this.#ns.addMethod(parent, { ...common, executable: true, userExecutable: true });
        // A safety net: calls are answered by the gateway accessor and never reach this binding.
        m.bindMethod(async (_inputs: unknown, _context: unknown) => ({ statusCode: StatusCodes.BadUserAccessDenied }));
        local = m;
        nodeClass = 'Method';
      } else {
        const folder = f.ref.typeDefinition.toString() === FOLDER_TYPE;
        const place = f.parent.nodeClass === 'Root' || f.refType === ORGANIZES ? { organizedBy: parent } : { componentOf: parent };
        local = folder ? this.#ns.addFolder(parent, common) : this.#ns.addObject({ ...common, ...place });
        nodeClass = 'Object';
      }
    } catch (err) {
      this.#log.warn({ target: this.target, path: f.path, err: (err as Error).message }, 'opcua node not mirrored');
      return undefined;
    }
    const node: GatewayNode = { target: this.target, gatewayId: local.nodeId.toString(), upstreamId: f.upstreamId, browsePath: `Objects/${f.path}`, nodeClass, writable: false, accessLevel: 0, parent: f.parent, local };
    this.nodes.set(node.gatewayId, node);
    this.#byUpstream.set(node.upstreamId, node);
    return node;
  }

  /** Data type, value rank, access level and description of the variables, read upstream once per sync. */
  async #describeVariables(namespaces: NamespaceMap): Promise<void> {
    const vars = [...this.nodes.values()].filter((n) => n.nodeClass === 'Variable');
    const attrs = [AttributeIds.DataType, AttributeIds.ValueRank, AttributeIds.AccessLevel, AttributeIds.Description];
    const types = new Map<string, NodeId>();
    const typed: { n: GatewayNode; v: { dataType: NodeId }; type: NodeId }[] = [];
    for (let i = 0; i < vars.length; i += Math.floor(READ_BATCH / attrs.length)) {
      const batch = vars.slice(i, i + Math.floor(READ_BATCH / attrs.length));
      const dvs = await this.#upstream.readForGateway(batch.flatMap((n) => attrs.map((attributeId) => ({ nodeId: n.upstreamId, attributeId }))));
      batch.forEach((n, k) => {
        const [dt, rank, access, desc] = dvs.slice(k * attrs.length, (k + 1) * attrs.length);
        const v = n.local as UAVariable & { dataType: NodeId; valueRank: number; accessLevel: number; userAccessLevel: number };
        if (dt?.statusCode.isGood() && dt.value.value instanceof NodeId) {
          if (dt.value.value.namespace === 0) v.dataType = dt.value.value;
          else {
            types.set(dt.value.value.toString(), dt.value.value);
            typed.push({ n, v, type: dt.value.value });
          }
        }
        if (rank?.statusCode.isGood() && typeof rank.value.value === 'number') v.valueRank = rank.value.value;
        const level = access?.statusCode.isGood() && typeof access.value.value === 'number' ? access.value.value : 1;
        n.writable = (level & 0x02) !== 0;
        n.accessLevel = level;
        // The plant's AccessLevel as it is; what THIS principal may do (UserAccessLevel) is answered per
        // read from its grants (accessor.ts).
        v.accessLevel = level;
        v.userAccessLevel = level;
        if (desc?.statusCode.isGood() && desc.value.value) v.setDescription(desc.value.value);
      });
    }
    await this.#mirrorDataTypes([...types.values()], namespaces);
    for (const { n, v, type } of typed) {
      // A type that could not be mirrored leaves the variable as BaseDataType (what it holds is still sent).
      const mirrored = this.#ns.addressSpace.findDataType(namespaces.nodeIdToGateway(type));
      if (!mirrored) continue;
      n.dataType = mirrored.nodeId;
      let standard: typeof mirrored | null = mirrored;
      for (let guard = 0; standard && standard.nodeId.namespace !== 0 && guard < 32; guard++) standard = standard.subtypeOfObj;
      if (standard) v.dataType = standard.nodeId;
    }
  }

  /**
   * Mirror the plant's data types named by `ids` (plant indexes), their supertypes and the types of their
   * fields: node ids and browse names renumbered, the definition (fields, encoding id) renumbered, and
   * the encoding objects a client needs to find a structure's type from an encoded value.
   */
  async #mirrorDataTypes(ids: NodeId[], namespaces: NamespaceMap, depth = 0): Promise<void> {
    const as = this.#ns.addressSpace;
    const todo = ids.filter((id) => id.namespace !== 0 && !as.findNode(namespaces.nodeIdToGateway(id)));
    if (todo.length === 0 || depth > 8) return;
    const attrs = [AttributeIds.BrowseName, AttributeIds.DisplayName, AttributeIds.IsAbstract, AttributeIds.DataTypeDefinition];
    const [dvs, refs] = await Promise.all([
      this.#upstream.readForGateway(todo.flatMap((nodeId) => attrs.map((attributeId) => ({ nodeId, attributeId })))),
      this.#upstream.browse(todo.flatMap((nodeId) => [
        { nodeId, browseDirection: BrowseDirection.Inverse, referenceTypeId: ReferenceTypeIds.HasSubtype, includeSubtypes: false, resultMask: 63 },
        { nodeId, browseDirection: BrowseDirection.Forward, referenceTypeId: ReferenceTypeIds.HasEncoding, includeSubtypes: false, resultMask: 63 },
      ])),
    ]);
    const described = todo.map((id, k) => {
      const [name, display, abstract, definition] = dvs.slice(k * attrs.length, (k + 1) * attrs.length);
      const supertype = refs[2 * k]?.references?.[0]?.nodeId;
      const encodings = refs[2 * k + 1]?.references ?? [];
      const def = definition?.statusCode.isGood() ? (definition.value.value as { fields?: { dataType?: NodeId }[] } | null) : null;
      return { id, name: name?.value.value as QualifiedName | null, display: display?.value.value as { text?: string } | null, abstract: abstract?.value.value === true, supertype, encodings, def };
    });
    // What they stand on first: supertypes and field types of plant namespaces.
    const needed = described.flatMap((d) => [...(d.supertype ? [new NodeId(d.supertype.identifierType, d.supertype.value, d.supertype.namespace)] : []), ...(d.def?.fields ?? []).flatMap((f) => (f.dataType ? [f.dataType] : []))]);
    await this.#mirrorDataTypes(needed, namespaces, depth + 1);
    for (const d of described) {
      const nodeId = namespaces.nodeIdToGateway(d.id);
      if (!d.name || !d.supertype || as.findNode(nodeId)) continue;
      try {
        const typeNs = as.getNamespace(nodeId.namespace);
        const dataType = typeNs.createDataType({
          nodeId,
          browseName: namespaces.qualifiedNameToGateway(d.name),
          displayName: d.display?.text ?? d.name.name ?? '',
          isAbstract: d.abstract,
          subtypeOf: namespaces.nodeIdToGateway(new NodeId(d.supertype.identifierType, d.supertype.value, d.supertype.namespace)),
        });
        for (const e of d.encodings) {
          const encodingId = namespaces.nodeIdToGateway(new NodeId(e.nodeId.identifierType, e.nodeId.value, e.nodeId.namespace));
          const encoding = as.findNode(encodingId) ?? as.getNamespace(encodingId.namespace).addObject({ nodeId: encodingId, browseName: new QualifiedName({ name: e.browseName.name ?? '', namespaceIndex: 0 }), typeDefinition: 'DataTypeEncodingType' });
          dataType.addReference({ referenceType: 'HasEncoding', nodeId: encoding.nodeId });
        }
        // The definition as the plant gives it, renumbered (fields' types, base type, default encoding).
        if (d.def) (dataType as unknown as { $fullDefinition: unknown }).$fullDefinition = namespaces.valueToGateway(d.def);
      } catch (err) {
        this.#log.warn({ target: this.target, dataType: d.id.toString(), err: (err as Error).message }, 'opcua data type not mirrored');
      }
    }
  }

  async #describeMethods(args: Map<string, { input?: string; output?: string }>, namespaces: NamespaceMap): Promise<void> {
    const reads: { node: GatewayNode; kind: 'input' | 'output'; upstreamId: string }[] = [];
    for (const [gid, a] of args) {
      const node = this.nodes.get(gid);
      if (!node) continue;
      if (a.input) reads.push({ node, kind: 'input', upstreamId: a.input });
      if (a.output) reads.push({ node, kind: 'output', upstreamId: a.output });
    }
    if (reads.length === 0) return;
    const dvs = await this.#upstream.readForGateway(reads.map((r) => ({ nodeId: r.upstreamId, attributeId: AttributeIds.Value })));
    const argTypes = dvs.flatMap((dv) => (Array.isArray(dv?.value.value) ? (dv.value.value as Argument[]).map((a) => a.dataType) : []));
    await this.#mirrorDataTypes(argTypes, namespaces);
    reads.forEach((r, k) => {
      const plain = dvs[k]?.value.value as Argument[] | undefined;
      if (!Array.isArray(plain)) return;
      // Argument data types in the gateway's namespace table.
      const value = namespaces.valueToGateway(plain);
      const method = r.node.local as UAMethod;
      const name = r.kind === 'input' ? 'InputArguments' : 'OutputArguments';
      const nodeId = `s=${this.target}/${r.node.browsePath.slice('Objects/'.length)}/${name}`;
      if (this.#ns.findNode(nodeId)) return;
      const prop = this.#ns.addVariable({ propertyOf: method, browseName: { name, namespaceIndex: 0 }, nodeId, dataType: 'Argument', valueRank: 1 });
      prop.setValueFromSource(new Variant({ dataType: DataType.ExtensionObject, arrayType: 1, value }));
    });
  }

  byUpstreamId(id: string): GatewayNode | undefined {
    return this.#byUpstream.get(id);
  }
}
