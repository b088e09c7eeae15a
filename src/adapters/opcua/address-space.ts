// One target's upstream address space, mirrored as STRUCTURE ONLY under Objects/<target-id>/ in the
// gateway's namespace. No value is copied: reads, writes and calls are forwarded when they happen
// (accessor.ts), and a variable's local value is only the last notification of a live subscription.
//
// Gateway node ids are stable and readable: `ns=<gateway ns>;s=<target>/<browse path below the root>`,
// e.g. `ns=1;s=boiler-1/Boiler/Drum/Level`; policy sees the browse path `Objects/Boiler/Drum/Level`.
// They depend on browse names only, so they survive an upstream restart that renumbers its node ids.
// The mirror is refreshed (new nodes added) when it is older than `browse_cache_seconds`.
import type { Logger } from 'pino';
import {
  AttributeIds,
  BrowseDirection,
  DataType,
  NodeClass,
  NodeClassMask,
  NodeId,
  StatusCodes,
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
  parent: GatewayNode | undefined;
  /** The local node (for subscriptions: its value carries upstream notifications). */
  local: BaseNode;
}

const HIERARCHICAL = 'i=33';
const HAS_PROPERTY = 'i=46';
const ORGANIZES = 'i=35';
const FOLDER_TYPE = 'i=61';
const UPSTREAM_SERVER_OBJECT = 'i=2253';
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

  constructor(ns: Namespace, target: string, upstream: OpcuaUpstream, opts: { root: string; maxNodes: number; maxDepth: number; log: Logger }) {
    this.target = target;
    this.#ns = ns;
    this.#upstream = upstream;
    this.#log = opts.log;
    this.#maxNodes = opts.maxNodes;
    this.#maxDepth = opts.maxDepth;
    this.#upstreamRoot = opts.root;
    const objects = ns.addressSpace.rootFolder.objects;
    const folder = ns.addFolder(objects, { browseName: target, nodeId: `s=${target}`, description: `Penstock target ${target}` });
    this.root = { target, gatewayId: folder.nodeId.toString(), upstreamId: opts.root, browsePath: 'Objects', nodeClass: 'Root', writable: false, parent: undefined, local: folder };
    this.nodes.set(this.root.gatewayId, this.root);
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
    const seen = new Set<string>([this.#upstreamRoot, UPSTREAM_SERVER_OBJECT]);
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
            if (seen.has(upstreamId) || name.length === 0) continue;
            seen.add(upstreamId);
            const n = (names.get(name) ?? 0) + 1;
            names.set(name, n);
            const segment = escapeSegment(n === 1 ? name : `${name}~${n}`);
            const path = f.path ? `${f.path}/${segment}` : segment;
            if (found.length >= this.#maxNodes) break;
            const item: Found = { ref, upstreamId, parent: f.parentForChildren, name, path, refType: ref.referenceTypeId.toString() };
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
    await this.#describeVariables();
    await this.#describeMethods(methodArgs);
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
    const common = { browseName: f.name, nodeId, displayName: f.ref.displayName.text ?? f.name };
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
    const node: GatewayNode = { target: this.target, gatewayId: local.nodeId.toString(), upstreamId: f.upstreamId, browsePath: `Objects/${f.path}`, nodeClass, writable: false, parent: f.parent, local };
    this.nodes.set(node.gatewayId, node);
    this.#byUpstream.set(node.upstreamId, node);
    return node;
  }

  /** Data type, value rank, access level and description of the variables, read upstream once per sync. */
  async #describeVariables(): Promise<void> {
    const vars = [...this.nodes.values()].filter((n) => n.nodeClass === 'Variable');
    const attrs = [AttributeIds.DataType, AttributeIds.ValueRank, AttributeIds.AccessLevel, AttributeIds.Description];
    for (let i = 0; i < vars.length; i += Math.floor(READ_BATCH / attrs.length)) {
      const batch = vars.slice(i, i + Math.floor(READ_BATCH / attrs.length));
      const dvs = await this.#upstream.read(batch.flatMap((n) => attrs.map((attributeId) => ({ nodeId: n.upstreamId, attributeId }))));
      batch.forEach((n, k) => {
        const [dt, rank, access, desc] = dvs.slice(k * attrs.length, (k + 1) * attrs.length);
        const v = n.local as UAVariable & { dataType: NodeId; valueRank: number; accessLevel: number; userAccessLevel: number };
        if (dt?.statusCode.isGood() && dt.value.value instanceof NodeId && dt.value.value.namespace === 0) v.dataType = dt.value.value;
        if (rank?.statusCode.isGood() && typeof rank.value.value === 'number') v.valueRank = rank.value.value;
        const level = access?.statusCode.isGood() && typeof access.value.value === 'number' ? access.value.value : 1;
        n.writable = (level & 0x02) !== 0;
        // The local node says what upstream allows; what THIS principal may do is decided per request.
        v.accessLevel = makeAccessLevelFlag(n.writable ? 'CurrentRead | CurrentWrite' : 'CurrentRead');
        v.userAccessLevel = v.accessLevel;
        if (desc?.statusCode.isGood() && desc.value.value) v.setDescription(desc.value.value);
      });
    }
  }

  async #describeMethods(args: Map<string, { input?: string; output?: string }>): Promise<void> {
    const reads: { node: GatewayNode; kind: 'input' | 'output'; upstreamId: string }[] = [];
    for (const [gid, a] of args) {
      const node = this.nodes.get(gid);
      if (!node) continue;
      if (a.input) reads.push({ node, kind: 'input', upstreamId: a.input });
      if (a.output) reads.push({ node, kind: 'output', upstreamId: a.output });
    }
    if (reads.length === 0) return;
    const dvs = await this.#upstream.read(reads.map((r) => ({ nodeId: r.upstreamId, attributeId: AttributeIds.Value })));
    reads.forEach((r, k) => {
      const value = dvs[k]?.value.value as Argument[] | undefined;
      if (!Array.isArray(value)) return;
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
