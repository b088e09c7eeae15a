// Per-item enforcement of the attribute services. node-opcua hands every Browse, Read, Write, Call and
// HistoryRead batch to its engine's address-space accessor; the gateway puts this one in front of the
// default. For each item on a gateway node (Objects/<target>/…):
//   Read Value       → Action read  → allowed items of a batch go upstream in ONE read per target
//   Read metadata    → served from the mirror when the node is visible to the principal, else denied
//   Write Value      → Action write (numeric value for bounds) → value read just before → journaled with
//                      the value written and the value before → upstream write → outcome journaled
//   Call             → Action call (method node, object) → journaled with its arguments → upstream call
//                      → outcome with the output arguments
//   HistoryRead      → Action history → forwarded
//   Browse           → references filtered to what the principal may see
// The items of one service request share one rate-limit token (WireRequest), as one Modbus request does.
// A refusal is a per-item status (BadUserAccessDenied, BadOutOfRange, BadNotWritable); the rest of the
// batch goes on. The server's own nodes (namespace 0, Server object) go to the default accessor, where
// node-opcua's role permissions apply (unresolvedPermissionPolicy: deny).
import {
  AttributeIds,
  BrowseResult,
  CallMethodResult,
  DataValue,
  HistoryReadRequest,
  HistoryReadResult,
  StatusCodes,
  type BrowseDescriptionOptions,
  type CallMethodRequest,
  type CallMethodResultOptions,
  type ReadRequestOptions,
  type ReadValueIdOptions,
  type StatusCode,
  type WriteValue,
} from 'node-opcua';
import type { WireRequest } from '../../core/core.ts';
import type { Session } from '../../sessions/registry.ts';
import type { Decision } from '../../policy/types.ts';
import { refusalStatusName, type Located, type OpcuaGateway } from './gateway.ts';
import { UpstreamFailure, type OpcuaUpstream } from './upstream.ts';

/** The accessor interface node-opcua's ServerEngine calls (node-opcua-server IAddressSpaceAccessor). */
export interface AddressSpaceAccessor {
  browse(context: unknown, nodesToBrowse: BrowseDescriptionOptions[]): Promise<BrowseResult[]>;
  read(context: unknown, readRequest: ReadRequestOptions): Promise<DataValue[]>;
  write(context: unknown, nodesToWrite: WriteValue[]): Promise<StatusCode[]>;
  call(context: unknown, methodsToCall: CallMethodRequest[]): Promise<CallMethodResultOptions[]>;
  historyRead(context: unknown, historyReadRequest: HistoryReadRequest): Promise<HistoryReadResult[]>;
}

const ATTRIBUTE_NAMES = Object.fromEntries(Object.entries(AttributeIds).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v, k])) as Record<number, string>;

function refused(d: Decision): StatusCode {
  return StatusCodes[refusalStatusName(d.reason)];
}

function failureStatus(err: unknown): StatusCode {
  return err instanceof UpstreamFailure ? err.status : StatusCodes.BadCommunicationError;
}

/** The numeric value of a write, for bounds checks (booleans count as 0/1). */
function numericValue(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}

/** Evidence-friendly rendering of a value (bounded: a huge array must not become a huge event). */
function evidence(v: unknown): unknown {
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean') return v ?? null;
  if (typeof v === 'string') return v.length > 256 ? `${v.slice(0, 256)}…` : v;
  if (typeof v === 'bigint') return v.toString();
  const s = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? String(v);
  return s.length > 256 ? `${s.slice(0, 256)}…` : s;
}

export class GatewayAccessor implements AddressSpaceAccessor {
  readonly #inner: AddressSpaceAccessor;
  readonly #gw: OpcuaGateway;
  readonly #browseCacheMs: number;

  constructor(inner: AddressSpaceAccessor, gw: OpcuaGateway, browseCacheMs: number) {
    this.#inner = inner;
    this.#gw = gw;
    this.#browseCacheMs = browseCacheMs;
  }

  // ---------------------------------------------------------------- browse

  async browse(context: unknown, nodesToBrowse: BrowseDescriptionOptions[]): Promise<BrowseResult[]> {
    const session = this.#gw.sessionOf(context as { session?: unknown });
    const located = nodesToBrowse.map((b) => this.#gw.locate(b.nodeId));
    // A stale mirror is refreshed before it is shown (bounded lifetime of the browse cache).
    const now = this.#gw.core.clock.now();
    await Promise.all([...new Set(located.filter((l) => l).map((l) => l!.mirror))].map((m) => m.refreshIfStale(this.#browseCacheMs, now).catch(() => {})));
    const results = await this.#inner.browse(context, nodesToBrowse);
    return results.map((r, i) => {
      const at = located[i];
      if (at && (!session || !this.#gw.visible(session, at.node))) return new BrowseResult({ statusCode: StatusCodes.BadNodeIdUnknown });
      if (r.references && r.references.length > 0) {
        r.references = r.references.filter((ref) => {
          const target = ref.nodeId.serverIndex || ref.nodeId.namespaceUri ? undefined : this.#gw.locate(ref.nodeId);
          return !target || (session !== undefined && this.#gw.visible(session, target.node));
        });
      }
      return r;
    });
  }

  // ---------------------------------------------------------------- read

  async read(context: unknown, req: ReadRequestOptions): Promise<DataValue[]> {
    const items: ReadValueIdOptions[] = req.nodesToRead ?? [];
    const session = this.#gw.sessionOf(context as { session?: unknown });
    const out: (DataValue | undefined)[] = new Array(items.length);
    const local: number[] = [];
    // Value reads, per upstream link: every item is decided, and those allowed go upstream in ONE read.
    const upstream = new Map<OpcuaUpstream, { idx: number[]; ids: ReadValueIdOptions[] }>();
    const decisions: Promise<void>[] = [];
    const request: WireRequest = {};
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      const at = this.#gw.locate(item.nodeId);
      if (!at) {
        local.push(i);
        continue;
      }
      if (!session) {
        out[i] = new DataValue({ statusCode: StatusCodes.BadUserAccessDenied });
        continue;
      }
      const attributeId = item.attributeId ?? AttributeIds.Value;
      if (attributeId === AttributeIds.Value && at.node.nodeClass === 'Variable') {
        let group = upstream.get(at.upstream);
        if (!group) upstream.set(at.upstream, (group = { idx: [], ids: [] }));
        group.idx.push(i);
        group.ids.push(item.indexRange ? { nodeId: at.node.upstreamId, attributeId, indexRange: item.indexRange } : { nodeId: at.node.upstreamId, attributeId });
        decisions.push(this.#gw.core.authorize(session, this.#gw.readValueAction(at.node), { request }).then((d) => {
          if (d.effect !== 'allow') out[i] = new DataValue({ statusCode: refused(d) });
        }));
        continue;
      }
      // Metadata is what browse shows: served from the mirror to those who may see the node.
      if (this.#gw.visible(session, at.node)) {
        local.push(i);
        continue;
      }
      const attribute = ATTRIBUTE_NAMES[attributeId] ?? String(attributeId);
      decisions.push(this.#gw.core.authorize(session, this.#gw.action(at.node, 'browse', { attribute }), { request }).then((d) => {
        if (d.effect === 'allow') local.push(i);
        else out[i] = new DataValue({ statusCode: refused(d) });
      }));
    }
    await Promise.all(decisions);
    await Promise.all([
      (async () => {
        if (local.length === 0) return;
        local.sort((a, b) => a - b);
        const dvs = await this.#inner.read(context, { ...req, nodesToRead: local.map((i) => items[i]!) });
        local.forEach((i, k) => (out[i] = dvs[k]));
      })(),
      ...[...upstream].map(async ([link, group]) => {
        // Refused items (already answered) stay behind.
        const idx: number[] = [];
        const ids: ReadValueIdOptions[] = [];
        group.idx.forEach((i, k) => {
          if (out[i] !== undefined) return;
          idx.push(i);
          ids.push(group.ids[k]!);
        });
        if (idx.length === 0) return;
        try {
          const dvs = await link.read(ids, req.maxAge ?? 0);
          idx.forEach((i, k) => (out[i] = dvs[k] ?? new DataValue({ statusCode: StatusCodes.BadCommunicationError })));
        } catch (err) {
          for (const i of idx) out[i] = new DataValue({ statusCode: failureStatus(err) });
        }
      }),
    ]);
    return out.map((dv) => dv ?? new DataValue({ statusCode: StatusCodes.BadInternalError }));
  }

  // ---------------------------------------------------------------- write

  async write(context: unknown, nodesToWrite: WriteValue[]): Promise<StatusCode[]> {
    const session = this.#gw.sessionOf(context as { session?: unknown });
    const out: StatusCode[] = new Array(nodesToWrite.length);
    const local: number[] = [];
    const forward: { i: number; at: Located; action: ReturnType<OpcuaGateway['action']> }[] = [];
    const request: WireRequest = {};
    // Decide and journal in request order, one by one. The durable record made before a write is
    // forwarded holds the value written and the value Penstock read just before (after any approval).
    for (let i = 0; i < nodesToWrite.length; i++) {
      const w = nodesToWrite[i]!;
      const at = this.#gw.locate(w.nodeId);
      if (!at) {
        local.push(i);
        continue;
      }
      if (!session) {
        out[i] = StatusCodes.BadUserAccessDenied;
        continue;
      }
      const raw = w.value?.value?.value;
      const attribute = ATTRIBUTE_NAMES[w.attributeId] ?? String(w.attributeId);
      const value = numericValue(raw);
      const action = this.#gw.action(at.node, 'write', { attribute, ...(value !== undefined ? { value } : {}) });
      const forwardable = w.attributeId === AttributeIds.Value && at.node.nodeClass === 'Variable' && at.node.writable;
      const d = await this.#gw.core.authorize(session, action, {
        request,
        evidence: async () => ({ new_values: [evidence(raw)], ...(forwardable ? await this.#valueBefore(at) : {}) }),
      });
      if (d.effect !== 'allow') {
        out[i] = refused(d);
        continue;
      }
      if (this.#clientGone(context, session, action)) {
        out[i] = StatusCodes.BadSecureChannelClosed;
        continue;
      }
      if (!forwardable) {
        out[i] = StatusCodes.BadNotWritable;
        void this.#gw.core.recordOutcome(session, action, { status: 'BadNotWritable', forwarded: false });
        continue;
      }
      forward.push({ i, at, action });
    }
    if (local.length > 0) {
      const statuses = await this.#inner.write(context, local.map((i) => nodesToWrite[i]!));
      local.forEach((i, k) => (out[i] = statuses[k]!));
    }
    for (const [target, group] of groupBy(forward, (f) => f.at.mirror.target)) {
      const upstream = this.#gw.upstreams.get(target)!;
      const started = process.hrtime.bigint();
      try {
        const statuses = await upstream.write(group.map((f) => ({ nodeId: f.at.node.upstreamId, attributeId: AttributeIds.Value, value: nodesToWrite[f.i]!.value, ...(nodesToWrite[f.i]!.indexRange ? { indexRange: nodesToWrite[f.i]!.indexRange } : {}) })));
        const ms = Math.round((Number(process.hrtime.bigint() - started) / 1e6) * 10) / 10;
        group.forEach((f, k) => {
          const status = statuses[k] ?? StatusCodes.BadCommunicationError;
          out[f.i] = status;
          void this.#gw.core.recordOutcome(session!, f.action, { status: status.name, ms });
        });
      } catch (err) {
        const status = failureStatus(err);
        for (const f of group) {
          out[f.i] = status;
          void this.#gw.core.recordOutcome(session!, f.action, { status: status.name, upstream_failure: true });
        }
      }
    }
    return out;
  }

  /** An allowed privileged action whose client has gone meanwhile: journaled as not forwarded. */
  #clientGone(context: unknown, session: Session, action: ReturnType<OpcuaGateway['action']>): boolean {
    if (!this.#gw.clientGone(context as { session?: unknown })) return false;
    void this.#gw.core.recordOutcome(session, action, { status: 'BadSecureChannelClosed', forwarded: false, reason: 'the client connection closed before the action was forwarded' });
    return true;
  }

  /** The value about to be overwritten, read upstream for the write's record (or why it could not be). */
  async #valueBefore(at: Located): Promise<Record<string, unknown>> {
    try {
      const [dv] = await at.upstream.read([{ nodeId: at.node.upstreamId, attributeId: AttributeIds.Value }]);
      return dv?.statusCode.isGood() ? { old_values: [evidence(dv.value.value)] } : { before_unavailable: dv?.statusCode.name ?? 'BadCommunicationError' };
    } catch (err) {
      return { before_unavailable: failureStatus(err).name };
    }
  }

  // ---------------------------------------------------------------- call

  async call(context: unknown, methodsToCall: CallMethodRequest[]): Promise<CallMethodResultOptions[]> {
    const session = this.#gw.sessionOf(context as { session?: unknown });
    const out: CallMethodResultOptions[] = new Array(methodsToCall.length);
    const local: number[] = [];
    const request: WireRequest = {};
    for (let i = 0; i < methodsToCall.length; i++) {
      const m = methodsToCall[i]!;
      const method = this.#gw.locate(m.methodId);
      const object = this.#gw.locate(m.objectId);
      if (!method && !object) {
        local.push(i);
        continue;
      }
      if (!session || !method || !object || method.node.nodeClass !== 'Method' || object.mirror !== method.mirror) {
        out[i] = new CallMethodResult({ statusCode: session ? StatusCodes.BadMethodInvalid : StatusCodes.BadUserAccessDenied });
        continue;
      }
      const args = (m.inputArguments ?? []).map((v) => evidence(v.value));
      const action = this.#gw.action(method.node, 'call', { objectId: object.node.gatewayId });
      const d = await this.#gw.core.authorize(session, action, { request, evidence: async () => ({ arguments: args }) });
      if (d.effect !== 'allow') {
        out[i] = new CallMethodResult({ statusCode: refused(d) });
        continue;
      }
      if (this.#clientGone(context, session, action)) {
        out[i] = new CallMethodResult({ statusCode: StatusCodes.BadSecureChannelClosed });
        continue;
      }
      try {
        const [r] = await method.upstream.call([{ objectId: object.node.upstreamId, methodId: method.node.upstreamId, inputArguments: m.inputArguments ?? [] }]);
        out[i] = r ?? new CallMethodResult({ statusCode: StatusCodes.BadCommunicationError });
        void this.#gw.core.recordOutcome(session, action, { status: r?.statusCode.name ?? 'BadCommunicationError', outputs: (r?.outputArguments ?? []).map((v) => evidence(v.value)) });
      } catch (err) {
        const status = failureStatus(err);
        out[i] = new CallMethodResult({ statusCode: status });
        void this.#gw.core.recordOutcome(session, action, { status: status.name, upstream_failure: true });
      }
    }
    if (local.length > 0) {
      const results = await this.#inner.call(context, local.map((i) => methodsToCall[i]!));
      local.forEach((i, k) => (out[i] = results[k]!));
    }
    return out;
  }

  // ---------------------------------------------------------------- history

  async historyRead(context: unknown, req: HistoryReadRequest): Promise<HistoryReadResult[]> {
    const session = this.#gw.sessionOf(context as { session?: unknown });
    const items = req.nodesToRead ?? [];
    const located = items.map((n) => this.#gw.locate(n.nodeId));
    if (located.every((l) => !l)) return this.#inner.historyRead(context, req);
    const out: HistoryReadResult[] = new Array(items.length);
    const localIdx: number[] = [];
    const request: WireRequest = {};
    for (let i = 0; i < items.length; i++) {
      const at = located[i];
      if (!at) {
        localIdx.push(i);
        continue;
      }
      const d = session ? await this.#gw.core.authorize(session, this.#gw.action(at.node, 'history', { attribute: 'Value' }), { request }) : undefined;
      if (!d || d.effect !== 'allow') {
        out[i] = new HistoryReadResult({ statusCode: d ? refused(d) : StatusCodes.BadUserAccessDenied });
        continue;
      }
      try {
        const res = await at.upstream.historyRead(new HistoryReadRequest({
          historyReadDetails: req.historyReadDetails,
          timestampsToReturn: req.timestampsToReturn,
          releaseContinuationPoints: req.releaseContinuationPoints,
          nodesToRead: [{ nodeId: at.node.upstreamId, indexRange: items[i]!.indexRange, dataEncoding: items[i]!.dataEncoding, continuationPoint: items[i]!.continuationPoint }],
        }));
        out[i] = res.results?.[0] ?? new HistoryReadResult({ statusCode: StatusCodes.BadCommunicationError });
      } catch (err) {
        out[i] = new HistoryReadResult({ statusCode: failureStatus(err) });
      }
    }
    if (localIdx.length > 0) {
      const results = await this.#inner.historyRead(context, new HistoryReadRequest({ ...req, nodesToRead: localIdx.map((i) => items[i]!) }));
      localIdx.forEach((i, k) => (out[i] = results[k]!));
    }
    return out;
  }
}

function groupBy<T>(list: T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const t of list) {
    const k = key(t);
    const g = m.get(k);
    if (g) g.push(t);
    else m.set(k, [t]);
  }
  return m;
}

export type { Session };
