// The gateway's side toward one upstream OPC UA server: one node-opcua client, one session, one
// subscription, shared by every front-door session that uses the target.
//   - connects in the background with back-off (250 ms doubling to 10 s) and reconnects the same way
//     after the link drops; node-opcua repairs the session and re-creates the subscription's items;
//   - while the link is down every request fails at once with BadNotConnected (never a hang), and a
//     request that fails on the wire with BadCommunicationError;
//   - one upstream monitored item per node however many sessions watch it (`watch`, ref-counted);
//   - what a client asked for goes upstream only with the Authorization of each of its items (read,
//     write, call, historyRead, watch check it first); the gateway's own reads of the plant's structure
//     (the mirror) and of a value about to be overwritten (for the write's record) are `readForGateway`;
//   - clients' Value reads that arrive in the same turn of the event loop go upstream as one read, each
//     node once however many sessions asked for it (`ReadBatch`), and a read of nodes that are all on
//     their way to the plant already waits for that read and goes with the others that waited; every
//     session's items were allowed with its own Authorization before they joined, each gets its own
//     copy of the values, and no one gets a value the plant read before its request arrived.
import type { Logger } from 'pino';
import {
  AttributeIds,
  ClientMonitoredItem,
  ClientSubscription,
  DataValue,
  MessageSecurityMode,
  OPCUAClient,
  SecurityPolicy,
  StatusCodes,
  TimestampsToReturn,
  UserTokenType,
  getExtraDataTypeManager,
  type BrowseDescriptionLike,
  type BrowseResult,
  type CallMethodRequestOptions,
  type CallMethodResult,
  type ClientSession,
  type HistoryReadRequest,
  type HistoryReadResponse,
  type NodeId,
  type OPCUACertificateManager,
  type ReadValueIdOptions,
  type StatusCode,
  type UserIdentityInfo,
  type WriteValueOptions,
} from 'node-opcua';
import type { Secret } from '../../common/secret.ts';
import { PenstockError } from '../../common/errors.ts';
import { requireAuthorization, type Authorization } from '../../core/authorization.ts';
import type { OpcuaVerb } from './rules.ts';
import type { OpcuaTargetConfig } from './schema.ts';
import type { StructureConstructor } from './namespaces.ts';

const BACKOFF = { initialDelay: 250, maxDelay: 10_000, randomisationFactor: 0.1 };
/** Upstream subscription: fast enough that the gateway adds little to a notification's latency. */
const PUBLISHING_INTERVAL_MS = 50;

/** A failure toward the upstream, with the status code the front door answers with. */
export class UpstreamFailure extends Error {
  readonly status: StatusCode;
  /** The plant answered that it cannot take this request's content (nothing of it was carried out). */
  readonly refusedContent: boolean;
  constructor(status: StatusCode, message: string, refusedContent = false) {
    super(message);
    this.name = 'UpstreamFailure';
    this.status = status;
    this.refusedContent = refusedContent;
  }
}

/**
 * ServiceFaults about a request's content (Part 4, 7.34): the plant carried out none of it, and another
 * request may fare better. Other faults (its session, its channel) are not the client's to see.
 */
const CONTENT_FAULTS = new Set(['BadDecodingError', 'BadEncodingLimitsExceeded', 'BadRequestTooLarge', 'BadTooManyOperations']);

/** One client read waiting for the batch it joined. */
interface JoinedRead {
  /** Index of each of its items in the batch's ids. */
  at: number[];
  resolve: (dvs: DataValue[]) => void;
  reject: (err: unknown) => void;
  nodes: ReadValueIdOptions[];
}

/**
 * Client reads of one turn of the event loop with the same maxAge, sent as one upstream read at the
 * turn's end (setImmediate: after every socket that was readable in this turn has been handled). A
 * value read before a request arrived is never handed to it: only reads not yet sent are joined.
 */
interface ReadBatch {
  maxAge: number;
  ids: ReadValueIdOptions[];
  index: Map<string, number>;
  joined: JoinedRead[];
  /** The largest request that joined: a batch never sends more distinct items than one client asked for at once. */
  cap: number;
}

/** An upstream read on its way, and the reads of the same nodes that arrived meanwhile and wait for it. */
interface ReadInFlight {
  maxAge: number;
  /** The sent batch's index (it no longer changes once sent). */
  keys: ReadonlyMap<string, number>;
  behind: ReadBatch | undefined;
}

/** How many of `keys` the batch does not hold yet. */
function newKeys(index: ReadonlyMap<string, number>, keys: readonly string[]): number {
  let n = 0;
  for (const k of keys) if (!index.has(k)) n++;
  return n;
}

function newReadBatch(maxAge: number): ReadBatch {
  return { maxAge, ids: [], index: new Map(), joined: [], cap: 0 };
}

/**
 * Identity of a ReadValueId, for sharing one upstream item between reads. A node's Value, as nearly every
 * read asks, is its node id's text as it is (no new string to build and hash per item); anything else
 * starts with `|`, which no node id's text does (`ns=…`, `i=…`, `s=…`, `g=…`, `b=…`).
 */
function readKey(n: ReadValueIdOptions): string {
  const plain = (n.attributeId === undefined || n.attributeId === AttributeIds.Value) && (n.indexRange === undefined || n.indexRange === null) && !n.dataEncoding;
  if (plain && typeof n.nodeId === 'string' && n.nodeId.length > 0 && n.nodeId.charCodeAt(0) !== 0x7c) return n.nodeId;
  const encoding = n.dataEncoding as { namespaceIndex?: number; name?: string } | null | undefined;
  return `|${String(n.nodeId)}|${n.attributeId ?? AttributeIds.Value}|${n.indexRange === undefined || n.indexRange === null ? '' : String(n.indexRange)}|${encoding ? `${encoding.namespaceIndex ?? 0}:${encoding.name ?? ''}` : ''}`;
}

type Watcher = (dv: DataValue) => void;
interface Watch {
  watchers: Set<Watcher>;
  item: ClientMonitoredItem | undefined;
  last: DataValue | undefined;
}

export interface UpstreamOptions {
  certificateManager: OPCUACertificateManager;
  /** Penstock's own client certificate (naming the appliance and site) and its key. */
  certificate?: { certificateFile: string; privateKeyFile: string; applicationUri: string };
  /** The password for `username` (from the vault), when the target has one. */
  password?: Secret;
  log: Logger;
}

export class OpcuaUpstream {
  readonly target: string;
  readonly cfg: OpcuaTargetConfig;
  readonly #opts: UpstreamOptions;
  readonly #client: OPCUAClient;
  #session: ClientSession | undefined;
  #subscription: ClientSubscription | undefined;
  #state: 'connecting' | 'up' | 'down' | 'closed' = 'connecting';
  readonly #watches = new Map<string, Watch>();
  readonly #onUp = new Set<() => void>();
  readonly #onDown = new Set<() => void>();
  /** Client reads of this turn of the event loop not yet sent, by maxAge. */
  readonly #readBatches = new Map<number, ReadBatch>();
  readonly #readsInFlight = new Set<ReadInFlight>();
  /** The plant's NamespaceArray, read at each connect (its indexes are what its node ids mean). */
  namespaceArray: readonly string[] = [];
  /** Upstream round trips, by kind (status and tests). */
  readonly stats = { reads: 0, writes: 0, calls: 0, browses: 0, reconnects: 0 };

  constructor(cfg: OpcuaTargetConfig, opts: UpstreamOptions) {
    this.target = cfg.id;
    this.cfg = cfg;
    this.#opts = opts;
    this.#client = OPCUAClient.create({
      applicationName: 'Penstock gateway',
      applicationUri: opts.certificate?.applicationUri ?? 'urn:penstock:gateway:client',
      clientCertificateManager: opts.certificateManager,
      ...(opts.certificate ? { certificateFile: opts.certificate.certificateFile, privateKeyFile: opts.certificate.privateKeyFile } : {}),
      securityMode: MessageSecurityMode[cfg.security_mode],
      securityPolicy: cfg.security_mode === 'None' ? SecurityPolicy.None : SecurityPolicy[cfg.security_policy],
      endpointMustExist: false,
      connectionStrategy: { ...BACKOFF, maxRetry: -1 },
      keepSessionAlive: true,
      requestedSessionTimeout: 60_000,
      defaultTransactionTimeout: cfg.timeout_ms,
      transportTimeout: cfg.timeout_ms,
    });
    this.#client.on('start_reconnection', () => this.#down('link lost'));
    this.#client.on('connection_lost', () => this.#down('link lost'));
    this.#client.on('after_reconnection', (err) => {
      if (!err) this.stats.reconnects++;
    });
    this.#client.on('connection_reestablished', () => this.#maybeUp());
  }

  get state(): string {
    return this.#state;
  }

  get up(): boolean {
    return this.#state === 'up';
  }

  /** Called each time the link becomes usable (first connect and every reconnect). */
  onUp(fn: () => void): () => void {
    this.#onUp.add(fn);
    return () => this.#onUp.delete(fn);
  }

  onDown(fn: () => void): () => void {
    this.#onDown.add(fn);
    return () => this.#onDown.delete(fn);
  }

  /** Connect in the background; never throws (failures are retried with back-off). */
  start(): void {
    void this.#connect();
  }

  async #connect(): Promise<void> {
    try {
      await this.#client.connect(this.cfg.endpoint);
      if (this.#state === 'closed') return;
      const identity: UserIdentityInfo = this.cfg.username && this.#opts.password
        ? { type: UserTokenType.UserName, userName: this.cfg.username, password: this.#opts.password.reveal() }
        : { type: UserTokenType.Anonymous };
      const session = await this.#client.createSession(identity);
      this.namespaceArray = await session.readNamespaceArray();
      this.#session = session;
      session.on('session_restored', () => {
        // A restarted plant may have renumbered its namespaces: read the table before going up again.
        session.readNamespaceArray().then((a) => (this.namespaceArray = a), () => {}).finally(() => this.#maybeUp());
      });
      session.on('keepalive_failure', () => this.#down('keep-alive failed'));
      this.#subscription = await session.createSubscription2({
        requestedPublishingInterval: PUBLISHING_INTERVAL_MS,
        requestedLifetimeCount: 6000,
        requestedMaxKeepAliveCount: 20,
        maxNotificationsPerPublish: 0,
        publishingEnabled: true,
        priority: 1,
      });
      this.#opts.log.info({ target: this.target, endpoint: this.cfg.endpoint }, 'opcua upstream connected');
      this.#maybeUp();
    } catch (err) {
      if (this.#state === 'closed') return;
      // node-opcua gave up (bad certificate, refused identity): try again later, from scratch.
      this.#opts.log.warn({ target: this.target, err: (err as Error).message }, 'opcua upstream connect failed; retrying');
      this.#state = 'down';
      setTimeout(() => void this.#connect(), BACKOFF.maxDelay).unref();
    }
  }

  #maybeUp(): void {
    if (this.#state === 'closed' || !this.#session || !this.#subscription) return;
    if (this.#state === 'up') return;
    this.#state = 'up';
    // Items that could not be created while the link was down are created now.
    for (const [nodeId, w] of this.#watches) if (!w.item && w.watchers.size > 0) void this.#monitor(nodeId, w);
    for (const fn of this.#onUp) fn();
  }

  #down(why: string): void {
    if (this.#state === 'closed' || this.#state === 'down') return;
    this.#state = 'down';
    this.#opts.log.warn({ target: this.target, why }, 'opcua upstream down');
    const bad = new DataValue({ statusCode: StatusCodes.BadNotConnected, serverTimestamp: new Date() });
    for (const w of this.#watches.values()) {
      w.last = bad;
      for (const fn of w.watchers) fn(bad);
    }
    for (const fn of this.#onDown) fn();
  }

  #ready(): ClientSession {
    if (this.#state !== 'up' || !this.#session) throw new UpstreamFailure(StatusCodes.BadNotConnected, `target ${this.target} is not connected`);
    return this.#session;
  }

  async #do<T>(what: string, fn: (s: ClientSession) => Promise<T>): Promise<T> {
    const session = this.#ready();
    try {
      return await fn(session);
    } catch (err) {
      if (err instanceof UpstreamFailure) throw err;
      this.#opts.log.warn({ target: this.target, what, err: (err as Error).message }, 'opcua upstream request failed');
      // The plant refused the request's content with a ServiceFault: its own status says why.
      const fault = (err as { response?: { responseHeader?: { serviceResult?: StatusCode } } }).response?.responseHeader?.serviceResult;
      if (fault && CONTENT_FAULTS.has(fault.name)) throw new UpstreamFailure(fault, `${what} on ${this.target} refused: ${fault.name}`, true);
      throw new UpstreamFailure(this.#state === 'up' ? StatusCodes.BadCommunicationError : StatusCodes.BadNotConnected, `${what} on ${this.target} failed`);
    }
  }

  /**
   * Before anything a client asked for goes upstream: one Authorization per item, each minted by the core
   * for this session, this target and this verb. A failure is a bug (PS_INTERNAL), and nothing is sent.
   */
  #allowed(session: string, auths: readonly Authorization[], items: number, verb: OpcuaVerb): void {
    try {
      if (auths.length !== items) throw new PenstockError('PS_INTERNAL', `${items} item(s) to forward with ${auths.length} authorization(s)`);
      for (const a of auths) requireAuthorization(a, session, { target: this.target, verb });
    } catch (err) {
      this.#opts.log.error({ target: this.target, session, verb, err: (err as Error).message }, 'opcua request not forwarded: no valid authorization');
      throw err;
    }
  }

  /**
   * A client's Value reads (each item allowed as `read`), in one upstream request, shared with the reads
   * of other sessions in the same turn of the event loop, or with those waiting behind a read of the
   * same nodes already on its way (each node read once for all of them). The DataValues are the
   * caller's own: nothing one caller does to them reaches another.
   */
  async read(session: string, nodes: ReadValueIdOptions[], auths: readonly Authorization[], maxAge = 0): Promise<DataValue[]> {
    this.#allowed(session, auths, nodes.length, 'read');
    this.#ready();
    if (nodes.length === 0) return [];
    const keys = nodes.map(readKey);
    let batch: ReadBatch | undefined;
    // Every node already asked for by a read on its way: wait for it, then go with the others that
    // waited (one fresh read for all of them, after each of them arrived), not alongside it.
    for (const f of this.#readsInFlight) {
      if (f.maxAge === maxAge && keys.every((k) => f.keys.has(k))) {
        batch = f.behind ??= newReadBatch(maxAge);
        break;
      }
    }
    if (!batch) {
      batch = this.#readBatches.get(maxAge);
      if (batch && batch.index.size + newKeys(batch.index, keys) > Math.max(batch.cap, nodes.length)) {
        // Joining would make a request larger than any client sent: the open batch goes now.
        this.#sendTurnBatch(batch);
        batch = undefined;
      }
      if (!batch) {
        const open = newReadBatch(maxAge);
        this.#readBatches.set(maxAge, (batch = open));
        setImmediate(() => this.#sendTurnBatch(open));
      }
    }
    const b = batch;
    b.cap = Math.max(b.cap, nodes.length);
    const at = keys.map((k, i) => {
      let j = b.index.get(k);
      if (j === undefined) b.index.set(k, (j = b.ids.push(nodes[i]!) - 1));
      return j;
    });
    return new Promise<DataValue[]>((resolve, reject) => b.joined.push({ at, resolve, reject, nodes }));
  }

  #sendTurnBatch(batch: ReadBatch): void {
    if (this.#readBatches.get(batch.maxAge) !== batch) return;
    this.#readBatches.delete(batch.maxAge);
    this.#sendBatch(batch);
  }

  #sendBatch(batch: ReadBatch): void {
    const flight: ReadInFlight = { maxAge: batch.maxAge, keys: batch.index, behind: undefined };
    this.#readsInFlight.add(flight);
    const landed = () => {
      this.#readsInFlight.delete(flight);
      if (flight.behind) this.#sendBatch(flight.behind);
    };
    this.stats.reads++;
    this.#do('read', (s) => s.read(batch.ids, batch.maxAge)).then(
      (dvs) => {
        // The first reader of an item gets the DataValue as it came, every other one a copy.
        const taken = new Set<number>();
        for (const r of batch.joined) {
          r.resolve(r.at.map((j) => {
            const dv = dvs[j];
            if (!dv || !taken.has(j)) {
              taken.add(j);
              return dv!;
            }
            return dv.clone();
          }));
        }
        landed();
      },
      (err: unknown) => {
        // A plant that refuses the joined request's content: each read is sent as it came, alone.
        if (batch.joined.length > 1 && err instanceof UpstreamFailure && err.refusedContent) {
          for (const r of batch.joined) {
            this.stats.reads++;
            this.#do('read', (s) => s.read(r.nodes, batch.maxAge)).then(r.resolve, r.reject);
          }
        } else for (const r of batch.joined) r.reject(err);
        landed();
      },
    );
  }

  /**
   * The gateway's own reads, never a client's: the plant's structure for the mirror (attributes, argument
   * lists) and, for the record of a write the core has allowed, the value about to be overwritten (the
   * core asks for it before it mints the write's Authorization). What it returns goes into the mirror's
   * metadata or the journal, not to a client.
   */
  readForGateway(nodes: ReadValueIdOptions[]): Promise<DataValue[]> {
    this.stats.reads++;
    return this.#do('read', (s) => s.read(nodes, 0));
  }

  async write(session: string, nodes: WriteValueOptions[], auths: readonly Authorization[]): Promise<StatusCode[]> {
    this.#allowed(session, auths, nodes.length, 'write');
    this.stats.writes++;
    return this.#do('write', (s) => s.write(nodes));
  }

  async call(session: string, methods: CallMethodRequestOptions[], auths: readonly Authorization[]): Promise<CallMethodResult[]> {
    this.#allowed(session, auths, methods.length, 'call');
    this.stats.calls++;
    return this.#do('call', (s) => s.call(methods));
  }

  async historyRead(session: string, request: HistoryReadRequest, auths: readonly Authorization[]): Promise<HistoryReadResponse> {
    this.#allowed(session, auths, request.nodesToRead?.length ?? 0, 'history');
    this.stats.reads++;
    return this.#do('history read', (s) => s.historyRead(request));
  }

  /** The plant's type of a structure, by its binary encoding id (plant indexes), or undefined. */
  async structureConstructor(encodingId: NodeId): Promise<StructureConstructor | undefined> {
    const session = this.#ready();
    try {
      const types = await getExtraDataTypeManager(session);
      return (await types.getExtensionObjectConstructorFromBinaryEncodingAsync(encodingId)) as unknown as StructureConstructor;
    } catch {
      return undefined;
    }
  }

  browse(nodes: BrowseDescriptionLike[]): Promise<BrowseResult[]> {
    this.stats.browses++;
    return this.#do('browse', async (s) => {
      const results = await s.browse(nodes);
      // Follow continuation points: a large folder arrives in pieces.
      for (const r of results) {
        let cp = r.continuationPoint;
        let guard = 0;
        while (cp && cp.length > 0 && guard++ < 100) {
          const [next] = await s.browseNext([cp], false);
          if (!next) break;
          r.references = [...(r.references ?? []), ...(next.references ?? [])];
          cp = next.continuationPoint;
        }
      }
      return results;
    });
  }

  /**
   * Watch the Value of an upstream node. The first watcher creates the upstream monitored item, the last
   * one to leave deletes it; a late joiner gets the last value at once. Returns the unwatch function.
   * `auth` is the `subscribe` Authorization of the session whose monitored item asks for it.
   */
  watch(nodeId: string, fn: Watcher, session: string, auth: Authorization): () => void {
    this.#allowed(session, [auth], 1, 'subscribe');
    let w = this.#watches.get(nodeId);
    if (!w) {
      w = { watchers: new Set(), item: undefined, last: undefined };
      this.#watches.set(nodeId, w);
      if (this.up) void this.#monitor(nodeId, w);
    }
    w.watchers.add(fn);
    if (w.last) fn(w.last);
    else if (!this.up) fn(new DataValue({ statusCode: StatusCodes.BadNotConnected, serverTimestamp: new Date() }));
    const watch = w;
    return () => {
      watch.watchers.delete(fn);
      if (watch.watchers.size > 0 || this.#watches.get(nodeId) !== watch) return;
      this.#watches.delete(nodeId);
      const item = watch.item;
      watch.item = undefined;
      if (item) void item.terminate().catch(() => {});
    };
  }

  /** Upstream monitored items alive now (tests assert on sharing). */
  get monitoredItemCount(): number {
    let n = 0;
    for (const w of this.#watches.values()) if (w.item) n++;
    return n;
  }

  async #monitor(nodeId: string, w: Watch): Promise<void> {
    const sub = this.#subscription;
    if (!sub) return;
    try {
      const item = ClientMonitoredItem.create(
        sub,
        { nodeId, attributeId: AttributeIds.Value },
        { samplingInterval: 0, discardOldest: true, queueSize: 10 },
        TimestampsToReturn.Both,
      );
      item.on('changed', (dv: DataValue) => {
        w.last = dv;
        for (const fn of w.watchers) fn(dv);
      });
      if (this.#watches.get(nodeId) !== w) {
        void item.terminate().catch(() => {});
        return;
      }
      w.item = item;
    } catch (err) {
      this.#opts.log.warn({ target: this.target, nodeId, err: (err as Error).message }, 'opcua upstream monitored item failed');
    }
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#watches.clear();
    try {
      await this.#subscription?.terminate();
    } catch {}
    try {
      await this.#session?.close();
    } catch {}
    try {
      await this.#client.disconnect();
    } catch {}
  }
}
