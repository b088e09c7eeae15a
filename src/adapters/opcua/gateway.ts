// What the enforcement code (accessor.ts, monitored.ts) shares: the targets' mirrors and upstream links,
// the map from node-opcua sessions to Penstock sessions, what each principal may see, and the local
// watches that carry upstream notifications to the gateway's variables.
import { DataType, NodeId, StatusCodes, Variant, type DataValue, type UAVariable } from 'node-opcua';
import type { Core } from '../../core/core.ts';
import { requireAuthorization, type Authorization } from '../../core/authorization.ts';
import type { Session } from '../../sessions/registry.ts';
import type { Action } from '../../policy/types.ts';
import type { OpcuaObject, OpcuaVerb } from './rules.ts';
import type { GatewayNode, TargetMirror } from './address-space.ts';
import type { OpcuaUpstream } from './upstream.ts';
import type { OpcuaRefusals } from './refusals.ts';
import type { TooLarge } from './limits.ts';

export interface Located {
  mirror: TargetMirror;
  node: GatewayNode;
  upstream: OpcuaUpstream;
}

interface Visibility {
  at: number;
  config: unknown;
  size: number;
  ids: Set<string>;
}

export class OpcuaGateway {
  readonly core: Core;
  readonly listener: string;
  readonly mirrors = new Map<string, TargetMirror>();
  readonly upstreams = new Map<string, OpcuaUpstream>();
  /** node-opcua ServerSession → Penstock session */
  readonly #sessions = new WeakMap<object, Session>();
  readonly #visibility = new Map<string, Visibility>();
  readonly #visibilityMs: number;
  readonly #localWatches = new Map<string, { count: number; unwatch: () => void; first: Promise<void> }>();
  readonly #readValueActions = new WeakMap<GatewayNode, Action>();
  readonly #subscribeActions = new WeakMap<GatewayNode, Action>();
  /** A Write or Call request's item list → when its client stops waiting (ms since the epoch). */
  readonly #deadlines = new WeakMap<object, number>();

  readonly #refusals: OpcuaRefusals | undefined;
  readonly #unwatchGrants: () => void;

  constructor(core: Core, listener: string, visibilityMs: number, refusals?: OpcuaRefusals) {
    this.core = core;
    this.listener = listener;
    this.#visibilityMs = visibilityMs;
    this.#refusals = refusals;
    // A grant issued, revoked or expired changes what anyone may see.
    this.#unwatchGrants = core.grants.onChange(() => this.#visibility.clear());
  }

  /** Stop following grant changes (the gateway's listener or agent link has closed). */
  dispose(): void {
    this.#unwatchGrants();
  }

  bind(serverSession: object, session: Session): void {
    this.#sessions.set(serverSession, session);
  }

  /** The Penstock session of a node-opcua session context (undefined: not activated through us). */
  sessionOf(context: { session?: unknown } | undefined | null): Session | undefined {
    const s = context?.session;
    return s && typeof s === 'object' ? this.#sessions.get(s) : undefined;
  }

  /**
   * Has the client's connection gone while its request waited (an approval can take minutes)? Its OPC UA
   * session outlives the connection, but nobody is there for the answer: a privileged action is then not
   * forwarded, since the person who approved it expected the requester to be at the other end.
   */
  clientGone(context: { session?: unknown } | undefined | null): boolean {
    const s = context?.session as { aborted?: boolean } | undefined;
    return s?.aborted === true;
  }

  /**
   * Remember when the client of a Write or Call request stops waiting for the answer: its arrival plus
   * the RequestHeader's timeoutHint (0: no deadline), less a tenth of it (at most 1 s): the client's
   * timer started when it sent the request, so without that margin an approval given just after the
   * client gave up would still be in time here, and the write would reach the plant with nobody
   * waiting for it. With it, the client gets our BadTimeout before its own timer fires. node-opcua
   * emits every request before it hands the request's item list, that same array, to the accessor,
   * so the list is the key.
   */
  noteRequest(request: { requestHeader?: { timeoutHint?: number }; nodesToWrite?: unknown; methodsToCall?: unknown }): void {
    const items = request.nodesToWrite ?? request.methodsToCall;
    const hint = request.requestHeader?.timeoutHint ?? 0;
    const margin = Math.min(1000, Math.floor(hint / 10));
    if (items && typeof items === 'object' && hint > 0) this.#deadlines.set(items, this.core.clock.now() + hint - margin);
  }

  /** When the client of the request whose item list is `items` gives up (undefined: it waits as long as it takes). */
  deadlineOf(items: object): number | undefined {
    return this.#deadlines.get(items);
  }

  /** Journal (rate-limited) an item refused before any work because its value would not fit the heap. */
  refuseTooLarge(session: Session, nodeId: string, r: TooLarge): void {
    const detail = { status: r.status, node_id: nodeId, bytes: r.bytes, allowed_bytes: r.allowed };
    if (this.#refusals) this.#refusals.malformed(session.remote, session.principal.id, 'request_too_large', detail);
    else this.core.log.warn(detail, 'opcua request too large');
  }

  /** A gateway node by (client-side) node id, or undefined for the server's own nodes. */
  locate(nodeId: unknown): Located | undefined {
    let key: string;
    try {
      key = nodeId instanceof NodeId ? nodeId.toString() : typeof nodeId === 'string' ? nodeId : new NodeId((nodeId as NodeId).identifierType, (nodeId as NodeId).value, (nodeId as NodeId).namespace).toString();
    } catch {
      return undefined;
    }
    for (const mirror of this.mirrors.values()) {
      const node = mirror.nodes.get(key);
      if (node) return { mirror, node, upstream: this.upstreams.get(mirror.target)! };
    }
    return undefined;
  }

  action(node: GatewayNode, verb: OpcuaVerb, extra: Partial<OpcuaObject> = {}): Action {
    return { target: node.target, verb, object: { kind: 'opcua', nodeId: node.gatewayId, browsePath: node.browsePath, ...extra } };
  }

  /**
   * The action of reading a variable's Value. It is the same for every read of the node, so it is built
   * once per node (frozen: policy and the journal only look at it) instead of once per item of a batch.
   */
  readValueAction(node: GatewayNode): Action {
    return this.#frozenAction(this.#readValueActions, node, 'read');
  }

  /** The action of watching a variable's Value (subscribe, and the notifications it delivers). */
  subscribeAction(node: GatewayNode): Action {
    return this.#frozenAction(this.#subscribeActions, node, 'subscribe');
  }

  #frozenAction(cache: WeakMap<GatewayNode, Action>, node: GatewayNode, verb: 'read' | 'subscribe'): Action {
    let a = cache.get(node);
    if (!a) {
      const action = this.action(node, verb, { attribute: 'Value' });
      Object.freeze(action.object);
      a = Object.freeze(action);
      cache.set(node, a);
    }
    return a;
  }

  /**
   * May this session's principal see `node` in a browse? A node is visible when a `browse` rule of an
   * active grant names it, or names something below it (the path down must be visible too). Computed
   * as a dry run of policy (nothing journaled) over the whole mirror, cached per principal.
   */
  visible(session: Session, node: GatewayNode): boolean {
    const now = this.core.clock.now();
    const config = this.core.config();
    const size = [...this.mirrors.values()].reduce((n, m) => n + m.nodes.size, 0);
    let v = this.#visibility.get(session.principal.id);
    if (!v || v.config !== config || v.size !== size || now - v.at > this.#visibilityMs) {
      const ids = new Set<string>();
      for (const mirror of this.mirrors.values()) {
        for (const n of mirror.nodes.values()) {
          if (n.nodeClass === 'Root' || ids.has(n.gatewayId)) continue;
          if (this.core.explain(session.principal.id, this.action(n, 'browse')).effect === 'deny') continue;
          for (let p: GatewayNode | undefined = n; p && !ids.has(p.gatewayId); p = p.parent) ids.add(p.gatewayId);
        }
      }
      v = { at: now, config, size, ids };
      this.#visibility.set(session.principal.id, v);
    }
    return v.ids.has(node.gatewayId);
  }

  /**
   * Start carrying upstream notifications for `node` into its local variable (ref-counted: every
   * monitored item on the node, from any session, shares one local watch and so one upstream item).
   * `first` settles once the variable holds a value from this watch (or after `firstWaitMs`): a new
   * monitored item created after it starts with a current value, not with one left from an earlier
   * watch or with BadWaitingForInitialData. `auth` is the session's `subscribe` Authorization for it.
   */
  watchLocal(at: Located, session: Session, auth: Authorization, firstWaitMs = 2000): { release: () => void; first: Promise<void> } {
    requireAuthorization(auth, session.id, { target: at.mirror.target, verb: 'subscribe' });
    const id = at.node.gatewayId;
    let w = this.#localWatches.get(id);
    if (!w) {
      const variable = at.node.local as UAVariable;
      // Whatever the variable held is from an earlier watch: stale until upstream speaks.
      variable.setValueFromSource(new Variant({ dataType: DataType.Null }), StatusCodes.BadWaitingForInitialData);
      let arrived!: () => void;
      const first = new Promise<void>((resolve) => (arrived = resolve));
      const unwatch = at.upstream.watch(at.node.upstreamId, (dv: DataValue) => {
        try {
          // The plant's namespace indexes in the value, as the gateway's clients resolve them.
          variable.setValueFromSource(at.mirror.namespaces.variantToGateway(dv.value), dv.statusCode, dv.sourceTimestamp ?? new Date());
        } catch (err) {
          this.core.log.debug({ node: id, err: (err as Error).message }, 'opcua notification not applied');
        }
        arrived();
      }, session.id, auth);
      w = { count: 0, unwatch, first };
      this.#localWatches.set(id, w);
    }
    w.count++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const cur = this.#localWatches.get(id);
      if (!cur || --cur.count > 0) return;
      this.#localWatches.delete(id);
      cur.unwatch();
    };
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, firstWaitMs)));
    return { release, first: Promise.race([w.first, waited]).finally(() => clearTimeout(timer)) };
  }
}
