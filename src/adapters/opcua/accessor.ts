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
// The items of one service request share one rate-limit token (WireRequest), as one request of any front door does.
// A refusal is a per-item status (BadUserAccessDenied, BadOutOfRange, BadNotWritable); the rest of the
// batch goes on, and so it does when the plant refuses a whole batch's content: its items are sent again
// one by one. Values cross in the namespace table of their side (namespaces.ts). UserAccessLevel and
// UserExecutable are answered from the principal's grants at the time of the read. The server's own
// nodes (namespace 0, Server object) go to the default accessor, where node-opcua's role permissions
// apply (unresolvedPermissionPolicy: deny).
import {
  AttributeIds,
  BrowseResult,
  CallMethodResult,
  DataType,
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
  type Variant,
  type WriteValue,
} from 'node-opcua';
import { isPenstockError } from '../../common/errors.ts';
import type { Authorization, Verdict, WireRequest } from '../../core/core.ts';
import type { Session } from '../../sessions/registry.ts';
import type { Decision } from '../../policy/types.ts';
import type { OpcuaVerb } from './rules.ts';
import { exactInt64 } from './policy.ts';
import type { GatewayNode } from './address-space.ts';
import type { NamespaceMap } from './namespaces.ts';
import type { Located, OpcuaGateway } from './gateway.ts';
import { refusalStatusName } from './refusals.ts';
import { UpstreamFailure, type OpcuaUpstream } from './upstream.ts';
import { evidence } from './evidence.ts';
import { RequestBudget } from './limits.ts';

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

/**
 * The status of an item that failed upstream. A PenstockError here is the upstream link refusing to
 * forward without a valid Authorization (a bug, never a peer's doing): nothing was sent.
 */
export function failureStatus(err: unknown): StatusCode {
  if (isPenstockError(err)) return StatusCodes.BadInternalError;
  return err instanceof UpstreamFailure ? err.status : StatusCodes.BadCommunicationError;
}

/** What an item's outcome says of its failure: lost on the link, or never sent (no valid proof). */
export function failureOutcome(err: unknown): Record<string, unknown> {
  return isPenstockError(err) ? { forwarded: false, error: err.code } : { upstream_failure: true };
}

/**
 * The numeric value of a write, for bounds checks (booleans count as 0/1; 64-bit integers exactly, as
 * decimal text beyond the safe integers).
 */
export function numericValue(variant: Variant | null | undefined): number | string | undefined {
  const v: unknown = variant?.value;
  if (variant?.dataType === DataType.Int64 || variant?.dataType === DataType.UInt64) return exactInt64(v, variant.dataType === DataType.UInt64);
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'bigint') return exactInt64(v, false);
  return undefined;
}

/** AccessLevel bits (Part 3, 8.57) a principal's verbs open: reading, writing (with status and time stamps), history. */
const ACCESS_BY_VERB: [OpcuaVerb, number][] = [['read', 0x01], ['write', 0x02 | 0x20 | 0x40], ['history', 0x04]];
/** SemanticChange says how the node behaves, not what anyone may do: kept as the plant says. */
const ACCESS_INFORMATIONAL = 0x10;

/** Why a value could not be carried (Untranslatable), or the link's state while looking up a type. */
export function translationStatus(err: unknown): StatusCode {
  return err instanceof UpstreamFailure ? err.status : StatusCodes.BadInternalError;
}

/** A plant DataValue as the client must see it (namespace indexes in values renumbered). */
export function toClient(dv: DataValue, namespaces: NamespaceMap): DataValue {
  try {
    dv.value = namespaces.variantToGateway(dv.value);
    return dv;
  } catch (err) {
    return new DataValue({ statusCode: translationStatus(err) });
  }
}

/** The value about to be overwritten, read upstream for the write's record (or why it could not be). */
export async function valueBefore(at: Located): Promise<Record<string, unknown>> {
  try {
    const [dv] = await at.upstream.readForGateway([{ nodeId: at.node.upstreamId, attributeId: AttributeIds.Value }]);
    return dv?.statusCode.isGood() ? { old_values: [evidence(dv.value.value)] } : { old_values_unavailable: dv?.statusCode.name ?? 'BadCommunicationError' };
  } catch (err) {
    return { old_values_unavailable: failureStatus(err).name };
  }
}

/** The allowed-so-far Value reads of one request toward one upstream link, in request order. */
interface ValueReads {
  idx: number[];
  ids: ReadValueIdOptions[];
  auths: (Authorization | undefined)[];
  namespaces: NamespaceMap;
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
    const upstream = new Map<OpcuaUpstream, ValueReads>();
    const decisions: Promise<void>[] = [];
    const request: WireRequest = {};
    const opts = { request };
    // The Value reads' decisions, awaited together (a batch is mostly these: no closure per item).
    const verdicts: Promise<Verdict>[] = [];
    const decided: ValueReads[] = [];
    const decidedAt: number[] = [];
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
        if (!group) upstream.set(at.upstream, (group = { idx: [], ids: [], auths: [], namespaces: at.mirror.namespaces }));
        decidedAt.push(group.idx.push(i) - 1);
        group.ids.push(item.indexRange ? { nodeId: at.node.upstreamId, attributeId, indexRange: item.indexRange } : { nodeId: at.node.upstreamId, attributeId });
        verdicts.push(this.#gw.core.authorize(session, this.#gw.readValueAction(at.node), opts));
        decided.push(group);
        continue;
      }
      const decision = this.#readMetadata(session, at, attributeId, i, out, local, opts);
      if (decision) decisions.push(decision);
    }
    const [values] = await Promise.all([Promise.all(verdicts), Promise.all(decisions)]);
    for (let j = 0; j < values.length; j++) {
      const group = decided[j]!;
      const k = decidedAt[j]!;
      const verdict = values[j]!;
      if (verdict.authorization) group.auths[k] = verdict.authorization;
      else out[group.idx[k]!] = new DataValue({ statusCode: refused(verdict) });
    }
    await Promise.all([
      (async () => {
        if (local.length === 0) return;
        local.sort((a, b) => a - b);
        const dvs = await this.#inner.read(context, { ...req, nodesToRead: local.map((i) => items[i]!) });
        local.forEach((i, k) => (out[i] = dvs[k]));
      })(),
      ...[...upstream].map(async ([link, group]) => {
        // Refused items (already answered) stay behind; the others go with their Authorization.
        const idx: number[] = [];
        const ids: ReadValueIdOptions[] = [];
        const auths: Authorization[] = [];
        group.idx.forEach((i, k) => {
          const auth = group.auths[k];
          if (out[i] !== undefined || !auth) return;
          idx.push(i);
          ids.push(group.ids[k]!);
          auths.push(auth);
        });
        if (idx.length === 0) return;
        try {
          const dvs = await link.read(session!.id, ids, auths, req.maxAge ?? 0);
          idx.forEach((i, k) => {
            const dv = dvs[k];
            out[i] = dv ? toClient(dv, group.namespaces) : new DataValue({ statusCode: StatusCodes.BadCommunicationError });
          });
        } catch (err) {
          for (const i of idx) out[i] = new DataValue({ statusCode: failureStatus(err) });
        }
      }),
    ]);
    return out.map((dv) => dv ?? new DataValue({ statusCode: StatusCodes.BadInternalError }));
  }

  /**
   * A metadata item of a read. Metadata is what browse shows: served from the mirror to those who may see
   * the node, except what the principal itself may do, which is answered from its grants now. Returns the
   * decision to wait for when the node is not visible to the principal.
   */
  #readMetadata(session: Session, at: Located, attributeId: number, i: number, out: (DataValue | undefined)[], local: number[], opts: { request: WireRequest }): Promise<void> | undefined {
    const serve = () => {
      const own = this.#servedHere(session, at.node, attributeId);
      if (own) out[i] = own;
      else local.push(i);
    };
    if (this.#gw.visible(session, at.node)) {
      serve();
      return undefined;
    }
    const attribute = ATTRIBUTE_NAMES[attributeId] ?? String(attributeId);
    return this.#gw.core.authorize(session, this.#gw.action(at.node, 'browse', { attribute }), opts).then((verdict) => {
      if (verdict.authorization) serve();
      else out[i] = new DataValue({ statusCode: refused(verdict) });
    });
  }

  // ---------------------------------------------------------------- write

  async write(context: unknown, nodesToWrite: WriteValue[]): Promise<StatusCode[]> {
    const session = this.#gw.sessionOf(context as { session?: unknown });
    const out: StatusCode[] = new Array(nodesToWrite.length);
    const local: number[] = [];
    const forward: { i: number; at: Located; action: ReturnType<OpcuaGateway['action']>; value: Variant; auth: Authorization }[] = [];
    const request: WireRequest = {};
    const budget = new RequestBudget();
    const deadline = this.#gw.deadlineOf(nodesToWrite);
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
      const tooLarge = this.#tooLarge(budget, session, at, raw);
      if (tooLarge) {
        out[i] = tooLarge;
        continue;
      }
      const attribute = ATTRIBUTE_NAMES[w.attributeId] ?? String(w.attributeId);
      const value = numericValue(w.value?.value);
      const action = this.#gw.action(at.node, 'write', { attribute, ...(value !== undefined ? { value } : {}) });
      const forwardable = w.attributeId === AttributeIds.Value && at.node.nodeClass === 'Variable' && at.node.writable;
      const verdict = await this.#gw.core.authorize(session, action, {
        request,
        evidence: async () => ({ new_values: [evidence(raw)], ...(forwardable ? await valueBefore(at) : {}) }),
        ...(deadline !== undefined ? { deadlineMs: deadline } : {}),
      });
      if (!verdict.authorization) {
        out[i] = refused(verdict);
        continue;
      }
      if (this.#clientGone(context, session, action)) {
        out[i] = StatusCodes.BadSecureChannelClosed;
        continue;
      }
      if (this.#expired(deadline, session, action)) {
        out[i] = StatusCodes.BadTimeout;
        continue;
      }
      if (!forwardable) {
        out[i] = StatusCodes.BadNotWritable;
        void this.#gw.core.recordOutcome(session, action, { status: 'BadNotWritable', forwarded: false });
        continue;
      }
      // The value as the plant names things: a value that cannot be carried fails alone, not forwarded.
      let plantValue: Variant;
      try {
        plantValue = await at.mirror.namespaces.variantToPlant(w.value.value, (id) => at.upstream.structureConstructor(id));
      } catch (err) {
        const status = translationStatus(err);
        out[i] = status;
        void this.#gw.core.recordOutcome(session, action, { status: status.name, forwarded: false, reason: (err as Error).message });
        continue;
      }
      forward.push({ i, at, action, value: plantValue, auth: verdict.authorization });
    }
    if (local.length > 0) {
      const statuses = await this.#inner.write(context, local.map((i) => nodesToWrite[i]!));
      local.forEach((i, k) => (out[i] = statuses[k]!));
    }
    for (const [target, group] of groupBy(forward, (f) => f.at.mirror.target)) {
      const upstream = this.#gw.upstreams.get(target)!;
      const items = group.map((f) => ({ nodeId: f.at.node.upstreamId, attributeId: AttributeIds.Value, value: { ...nodesToWrite[f.i]!.value, value: f.value }, ...(nodesToWrite[f.i]!.indexRange ? { indexRange: nodesToWrite[f.i]!.indexRange } : {}) }));
      const started = process.hrtime.bigint();
      const elapsed = () => Math.round((Number(process.hrtime.bigint() - started) / 1e6) * 10) / 10;
      try {
        const statuses = await upstream.write(session!.id, items, group.map((f) => f.auth));
        const ms = elapsed();
        group.forEach((f, k) => {
          const status = statuses[k] ?? StatusCodes.BadCommunicationError;
          out[f.i] = status;
          void this.#gw.core.recordOutcome(session!, f.action, { status: status.name, ms });
        });
      } catch (err) {
        // The plant refused the batch's content as a whole (a strict stack refuses a request with one body
        // it cannot decode), so none of it was written: each item is sent alone and gets its own answer,
        // as a server answers items. A batch lost on the wire is not sent again (it may have been applied).
        const retry = group.length > 1 && upstream.up && err instanceof UpstreamFailure && err.refusedContent;
        for (const [k, f] of group.entries()) {
          let status = failureStatus(err);
          if (retry) {
            try {
              status = (await upstream.write(session!.id, [items[k]!], [f.auth]))[0] ?? StatusCodes.BadCommunicationError;
            } catch (alone) {
              status = failureStatus(alone);
            }
          }
          out[f.i] = status;
          void this.#gw.core.recordOutcome(session!, f.action, { status: status.name, ms: elapsed(), ...(retry ? { batch_failed: failureStatus(err).name, sent_alone: true } : failureOutcome(err)) });
        }
      }
    }
    return out;
  }

  /**
   * Attributes answered here rather than by the local node: a variable's plant-namespace DataType
   * (address-space.ts); UserAccessLevel of a variable and UserExecutable of a method as this principal's
   * grants stand now (a dry run of policy, nothing journaled): the plant's AccessLevel narrowed to the
   * verbs it may use on the node. A bounded write counts as writable (within its bounds); one needing
   * approval too.
   */
  #servedHere(session: Session, node: GatewayNode, attributeId: number): DataValue | undefined {
    const may = (verb: OpcuaVerb, extra: Partial<Parameters<OpcuaGateway['action']>[2]> = {}) => {
      const d = this.#gw.core.explain(session.principal.id, this.#gw.action(node, verb, extra));
      return d.effect !== 'deny' || d.reason === 'value_out_of_bounds';
    };
    if (attributeId === AttributeIds.UserAccessLevel && node.nodeClass === 'Variable') {
      let mask = ACCESS_INFORMATIONAL;
      for (const [verb, bits] of ACCESS_BY_VERB) if (may(verb, { attribute: 'Value' })) mask |= bits;
      return new DataValue({ value: { dataType: DataType.Byte, value: node.accessLevel & mask }, statusCode: StatusCodes.Good });
    }
    if (attributeId === AttributeIds.DataType && node.dataType) return new DataValue({ value: { dataType: DataType.NodeId, value: node.dataType }, statusCode: StatusCodes.Good });
    if (attributeId === AttributeIds.UserExecutable && node.nodeClass === 'Method') {
      const objectId = node.parent?.gatewayId;
      return new DataValue({ value: { dataType: DataType.Boolean, value: objectId !== undefined && may('call', { objectId }) }, statusCode: StatusCodes.Good });
    }
    return undefined;
  }

  /** An allowed privileged action whose client has gone meanwhile: journaled as not forwarded. */
  #clientGone(context: unknown, session: Session, action: ReturnType<OpcuaGateway['action']>): boolean {
    if (!this.#gw.clientGone(context as { session?: unknown })) return false;
    void this.#gw.core.recordOutcome(session, action, { status: 'BadSecureChannelClosed', forwarded: false, reason: 'the client connection closed before the action was forwarded' });
    return true;
  }

  /**
   * An allowed action whose client stopped waiting (its request's timeoutHint passed, typically while a
   * person decided on an approval): the approval applied only while the request waited, so the action is
   * journaled as expired and not forwarded.
   */
  #expired(deadline: number | undefined, session: Session, action: ReturnType<OpcuaGateway['action']>): boolean {
    if (deadline === undefined || this.#gw.core.clock.now() < deadline) return false;
    void this.#gw.core.recordOutcome(session, action, { status: 'BadTimeout', forwarded: false, expired: true, deadline: new Date(deadline).toISOString(), reason: 'the request timed out at its client before the action was allowed' });
    return true;
  }

  /**
   * Refuse, before any decision, upstream read or approval, an item whose value would not fit the heap
   * next to the other items of its request (the value, the value read before it and their encodings).
   */
  #tooLarge(budget: RequestBudget, session: Session, at: Located, raw: unknown): StatusCode | undefined {
    const refusal = budget.admit(raw);
    if (!refusal) return undefined;
    this.#gw.refuseTooLarge(session, at.node.gatewayId, refusal);
    return StatusCodes[refusal.status];
  }

  // ---------------------------------------------------------------- call

  async call(context: unknown, methodsToCall: CallMethodRequest[]): Promise<CallMethodResultOptions[]> {
    const session = this.#gw.sessionOf(context as { session?: unknown });
    const out: CallMethodResultOptions[] = new Array(methodsToCall.length);
    const local: number[] = [];
    const request: WireRequest = {};
    const budget = new RequestBudget();
    const deadline = this.#gw.deadlineOf(methodsToCall);
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
      const tooLarge = this.#tooLarge(budget, session, method, (m.inputArguments ?? []).map((v) => v.value));
      if (tooLarge) {
        out[i] = new CallMethodResult({ statusCode: tooLarge });
        continue;
      }
      const args = (m.inputArguments ?? []).map((v) => evidence(v.value));
      const action = this.#gw.action(method.node, 'call', { objectId: object.node.gatewayId });
      const verdict = await this.#gw.core.authorize(session, action, { request, evidence: async () => ({ arguments: args }), ...(deadline !== undefined ? { deadlineMs: deadline } : {}) });
      if (!verdict.authorization) {
        out[i] = new CallMethodResult({ statusCode: refused(verdict) });
        continue;
      }
      if (this.#clientGone(context, session, action)) {
        out[i] = new CallMethodResult({ statusCode: StatusCodes.BadSecureChannelClosed });
        continue;
      }
      if (this.#expired(deadline, session, action)) {
        out[i] = new CallMethodResult({ statusCode: StatusCodes.BadTimeout });
        continue;
      }
      const namespaces = method.mirror.namespaces;
      let inputArguments: Variant[];
      try {
        inputArguments = await Promise.all((m.inputArguments ?? []).map((v) => namespaces.variantToPlant(v, (id) => method.upstream.structureConstructor(id))));
      } catch (err) {
        const status = translationStatus(err);
        out[i] = new CallMethodResult({ statusCode: status });
        void this.#gw.core.recordOutcome(session, action, { status: status.name, forwarded: false, reason: (err as Error).message });
        continue;
      }
      try {
        const [r] = await method.upstream.call(session.id, [{ objectId: object.node.upstreamId, methodId: method.node.upstreamId, inputArguments }], [verdict.authorization]);
        if (r?.outputArguments) r.outputArguments = r.outputArguments.map((v) => namespaces.variantToGateway(v));
        out[i] = r ?? new CallMethodResult({ statusCode: StatusCodes.BadCommunicationError });
        void this.#gw.core.recordOutcome(session, action, { status: r?.statusCode.name ?? 'BadCommunicationError', outputs: (r?.outputArguments ?? []).map((v) => evidence(v.value)) });
      } catch (err) {
        const status = failureStatus(err);
        out[i] = new CallMethodResult({ statusCode: status });
        void this.#gw.core.recordOutcome(session, action, { status: status.name, ...failureOutcome(err) });
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
      if (!session) {
        out[i] = new HistoryReadResult({ statusCode: StatusCodes.BadUserAccessDenied });
        continue;
      }
      const verdict = await this.#gw.core.authorize(session, this.#gw.action(at.node, 'history', { attribute: 'Value' }), { request });
      if (!verdict.authorization) {
        out[i] = new HistoryReadResult({ statusCode: refused(verdict) });
        continue;
      }
      try {
        const res = await at.upstream.historyRead(session.id, new HistoryReadRequest({
          historyReadDetails: req.historyReadDetails,
          timestampsToReturn: req.timestampsToReturn,
          releaseContinuationPoints: req.releaseContinuationPoints,
          nodesToRead: [{ nodeId: at.node.upstreamId, indexRange: items[i]!.indexRange, dataEncoding: items[i]!.dataEncoding, continuationPoint: items[i]!.continuationPoint }],
        }), [verdict.authorization]);
        const result = res.results?.[0];
        // Past values in the gateway's namespace table, like current ones.
        out[i] = result ? at.mirror.namespaces.valueToGateway(result) : new HistoryReadResult({ statusCode: StatusCodes.BadCommunicationError });
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
