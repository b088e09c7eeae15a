// Runs the OPC UA agent tools (agent-tools.ts) for the agents' front door. Each node a call touches becomes the
// Action the front door builds for the same service request (gateway.ts: node id, browse path,
// attribute, written value, call object), decided through `call.authorize`, and goes to the plant only
// through the target's link (links.ts: a listener's, else the agent tools' own) with the Authorization
// that allow carries:
//   opcua_browse → what Browse shows: the nodes the principal's browse rules make visible (a dry run);
//                  a start node it may not see is decided as a `browse` (the denial is the answer)
//   opcua_read   → `read` of each node's Value, the allowed ones in ONE upstream read; per-node statuses
//                  like OPC UA's (BadUserAccessDenied); refused as a whole when no node may be read,
//                  or at the first node that needs a person's approval; metadata from the mirror
//   opcua_write  → `write` with the numeric value (bounds), evidence: the value written and the value
//                  read just before; the plant's status in `action.outcome`
//   opcua_call   → `call` on the method with its object, evidence: the arguments; outputs in the outcome
// Every call has one item to decide before anything is sent, except reads (which change nothing).
import { AttributeIds, SessionContext, resolveNodeId, type DataValue, type NodeId, type ReadValueIdOptions, type StatusCode, type UAMethod, type UAVariable, type Variant } from 'node-opcua';
import type { Authorization, Verdict, WireRequest } from '../../core/core.ts';
import type { AgentCall, AgentToolResult } from '../types.ts';
import { OPCUA_AGENT_LIMITS, type OpcuaAgentDataType } from './agent-tools.ts';
import { AgentValueError, builtInType, fromVariant, nodeIdText, toVariant, type NamespaceUriOf } from './agent-values.ts';
import { failureOutcome, failureStatus, numericValue, toClient, translationStatus, valueBefore } from './accessor.ts';
import type { GatewayNode } from './address-space.ts';
import { evidence } from './evidence.ts';
import type { Located, OpcuaGateway } from './gateway.ts';
import { acquireLink } from './links.ts';
import { refusalStatusName } from './refusals.ts';
import { opcuaTargetSchema } from './schema.ts';

type Failure = Extract<AgentToolResult, { error: unknown }>;

function fail(code: string, message: string, detail?: Record<string, unknown>): Failure {
  return { ok: false, error: { code, message, ...(detail ? { detail } : {}) } };
}

function refused(verdict: Verdict): AgentToolResult {
  return { ok: false, refused: verdict };
}

/** The plant (or the link to it) answered an OPC UA status other than Good. */
function deviceStatus(target: string, status: StatusCode | string, more: Record<string, unknown> = {}): Failure {
  const name = typeof status === 'string' ? status : status.name;
  return fail('device_status', `${target} answered ${name}`, { status: name, ...more });
}

/** What one call works with: the listener's gateway, the target's mirror and link, the call. */
interface Ctx {
  call: AgentCall;
  gw: OpcuaGateway;
  target: string;
  located: Omit<Located, 'node'>;
  /** The URIs of the gateway's namespace indexes (node ids the agent sees name their namespace by URI). */
  uriOf: NamespaceUriOf;
}

type Args = Record<string, unknown>;

const TOOLS: Record<string, (ctx: Ctx, args: Args) => Promise<AgentToolResult>> = {
  opcua_browse: browse,
  opcua_read: read,
  opcua_write: write,
  opcua_call: call,
};

/** FrontDoor.callAgentTool of the OPC UA front door. */
export async function callOpcuaAgentTool(name: string, args: Args, call: AgentCall): Promise<AgentToolResult> {
  const run = TOOLS[name];
  if (!run) return fail('unknown_tool', `the OPC UA front door has no tool ${name}`);
  const target = String(args.target);
  const cfg = call.core.config().targets.get(target);
  if (!cfg) return fail('unknown_target', `no target ${target}`);
  if (cfg.protocol !== 'opcua') return fail('not_opcua_target', `target ${target} is not an OPC UA target`);
  let link: Awaited<ReturnType<typeof acquireLink>>;
  try {
    link = await acquireLink(call.core, target, call.session);
  } catch (err) {
    call.core.log.warn({ target, err: (err as Error).message }, 'opcua agent tools link not opened');
    return fail('link_failed', `no link to ${target} could be opened`);
  }
  try {
    const { gateway: gw, browseCacheMs } = link.served;
    const located = { mirror: gw.mirrors.get(target)!, upstream: gw.upstreams.get(target)! };
    const waited = await ready(located, call.signal, opcuaTargetSchema.parse(cfg).timeout_ms, browseCacheMs, call.core.clock.now());
    if (waited) return waited;
    const addressSpace = located.mirror.root.local.addressSpace;
    const uriOf = (i: number) => addressSpace.getNamespaceUri(i) || undefined;
    return await run({ call, gw, target, located, uriOf }, args);
  } finally {
    link.release();
  }
}

/**
 * Wait (at most the target's timeout) for the link to be up and the target mirrored once; a stale mirror
 * is refreshed first, as the front door's Browse does.
 */
async function ready(at: Ctx['located'], signal: AbortSignal, timeoutMs: number, browseCacheMs: number, now: number): Promise<Failure | undefined> {
  const { upstream, mirror } = at;
  let timer: NodeJS.Timeout | undefined;
  let off: (() => void) | undefined;
  let onAbort: (() => void) | undefined;
  try {
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      onAbort = () => resolve();
      signal.addEventListener('abort', onAbort, { once: true });
    });
    if (!upstream.up) await Promise.race([waited, new Promise<void>((resolve) => (off = upstream.onUp(resolve)))]);
    if (signal.aborted) return fail('cancelled', 'the call was cancelled');
    if (!upstream.up) return deviceStatus(mirror.target, 'BadNotConnected');
    if (mirror.syncedAt === 0) await Promise.race([waited, mirror.sync().catch(() => {})]);
    else await mirror.refreshIfStale(browseCacheMs, now).catch(() => {});
    if (mirror.syncedAt === 0) return fail('not_mirrored', `${mirror.target}'s address space is not mirrored yet`);
    return undefined;
  } finally {
    clearTimeout(timer);
    off?.();
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/**
 * A node of the call's target named by gateway node id (`ns=1;s=…` as rules name it, or `nsu=<the
 * gateway's namespace URI>;s=…`) or by browse path.
 */
function resolve(ctx: Ctx, given: string): GatewayNode | Failure {
  const mirror = ctx.located.mirror;
  let node: GatewayNode | undefined;
  let text = given;
  const byUri = /^nsu=([^;]+);([isgb]=[\s\S]*)$/.exec(text);
  if (byUri) {
    const index = mirror.root.local.addressSpace.getNamespaceIndex(byUri[1]!);
    text = index >= 0 ? `ns=${index};${byUri[2]}` : '';
  }
  if (/^Objects(\/|$)/.test(text)) {
    const path = text.replace(/\/+$/, '');
    node = path === 'Objects' ? mirror.root : [...mirror.nodes.values()].find((n) => n.browsePath === path && n.nodeClass !== 'Root');
  } else {
    try {
      node = mirror.nodes.get(resolveNodeId(text).toString());
    } catch {
      node = undefined;
    }
  }
  return node ?? fail('unknown_node', `${ctx.target} has no node ${given}`, { node: given });
}

function isFailure(x: unknown): x is Failure {
  return typeof x === 'object' && x !== null && (x as { ok?: unknown }).ok === false;
}

function refusalDetail(v: Verdict): Record<string, unknown> {
  return { reason: v.reason, explanation: v.explanation, ...(v.grant ? { grant: v.grant } : {}), ...(v.rule ? { rule: v.rule } : {}) };
}

function nameOf(node: GatewayNode): string {
  return (node.local as { browseName?: { name?: string } }).browseName?.name ?? node.browsePath.split('/').pop() ?? '';
}

function dataTypeOf(node: GatewayNode): NodeId | undefined {
  return node.dataType ?? (node.local as UAVariable).dataType;
}

/** A data type for the agent: a built-in type's name, else its node id by namespace URI. */
function typeName(id: NodeId | undefined, uriOf: NamespaceUriOf): string {
  return builtInType(id) ?? (id ? nodeIdText(id, uriOf) : 'BaseDataType');
}

// ------------------------------------------------------------------ browse

async function browse(ctx: Ctx, args: Args): Promise<AgentToolResult> {
  const { call, gw } = ctx;
  const start = args.node === undefined ? ctx.located.mirror.root : resolve(ctx, String(args.node));
  if (isFailure(start)) return start;
  // A node browse does not show is hidden by the front door; here the agent learns why, from policy.
  if (!gw.visible(call.session, start)) {
    const verdict = await call.authorize(gw.action(start, 'browse'));
    if (!verdict.authorization) return refused(verdict);
  }
  const max = typeof args.max_references === 'number' ? args.max_references : OPCUA_AGENT_LIMITS.browseDefault;
  const children = [...ctx.located.mirror.nodes.values()].filter((n) => n.parent === start && gw.visible(call.session, n));
  const references = children.slice(0, max).map((n) => ({
    node: n.gatewayId,
    browse_path: n.browsePath,
    name: nameOf(n),
    node_class: n.nodeClass,
    ...(n.nodeClass === 'Variable' ? { writable: n.writable, data_type: typeName(dataTypeOf(n), ctx.uriOf) } : {}),
  }));
  const truncated = children.length > max;
  return {
    ok: true,
    result: { target: ctx.target, node: start.gatewayId, browse_path: start.browsePath, references, truncated },
    text: `${references.length} reference(s) below ${start.browsePath}${truncated ? ` (${children.length - max} more left out)` : ''}`,
  };
}

// ------------------------------------------------------------------ read

interface ReadItem {
  node: string;
  status: string;
  value?: unknown;
  data_type?: string;
  truncated?: true;
  source_timestamp?: string;
  refused?: Record<string, unknown>;
}

function fromDataValue(node: GatewayNode, dv: DataValue | undefined, uriOf: NamespaceUriOf): ReadItem {
  if (!dv) return { node: node.gatewayId, status: 'BadCommunicationError' };
  if (!dv.statusCode.isGood()) return { node: node.gatewayId, status: dv.statusCode.name };
  return {
    node: node.gatewayId,
    status: dv.statusCode.name,
    ...fromVariant(dv.value, uriOf),
    ...(dv.sourceTimestamp ? { source_timestamp: dv.sourceTimestamp.toISOString() } : {}),
  };
}

/** A node's metadata attribute as the mirror holds it (the plant's own data types by their gateway id). */
function fromMirror(node: GatewayNode, attribute: string, uriOf: NamespaceUriOf): ReadItem {
  const attributeId = AttributeIds[attribute as keyof typeof AttributeIds] as number;
  if (attributeId === AttributeIds.DataType && node.dataType) return { node: node.gatewayId, status: 'Good', value: nodeIdText(node.dataType, uriOf), data_type: 'NodeId' };
  return fromDataValue(node, node.local.readAttribute(SessionContext.defaultContext, attributeId), uriOf);
}

/**
 * The results as they fit the whole call's budget (OPCUA_AGENT_LIMITS.readBytes of JSON): the values of
 * the nodes after the budget is spent are left out (`truncated`), their statuses kept.
 */
function withinBudget(results: ReadItem[]): ReadItem[] {
  let left = OPCUA_AGENT_LIMITS.readBytes;
  return results.map((r) => {
    if (r.value === undefined) return r;
    const size = JSON.stringify(r.value)?.length ?? 0;
    if (size <= left) {
      left -= size;
      return r;
    }
    left = 0;
    const { value: _dropped, ...rest } = r;
    return { ...rest, truncated: true };
  });
}

async function read(ctx: Ctx, args: Args): Promise<AgentToolResult> {
  const { call, gw } = ctx;
  const attribute = typeof args.attribute === 'string' ? args.attribute : 'Value';
  const nodes: GatewayNode[] = [];
  for (const text of args.nodes as string[]) {
    const n = resolve(ctx, text);
    if (isFailure(n)) return n;
    nodes.push(n);
  }
  const out: (ReadItem | undefined)[] = new Array(nodes.length);
  const request: WireRequest = {};
  const forward: { i: number; auth: Authorization }[] = [];
  let firstRefusal: Verdict | undefined;
  // Decided in order; the items of the call share one rate-limit token, like the items of one Read.
  for (const [i, node] of nodes.entries()) {
    const upstreamValue = attribute === 'Value' && node.nodeClass === 'Variable';
    if (!upstreamValue && gw.visible(call.session, node)) {
      out[i] = fromMirror(node, attribute, ctx.uriOf);
      continue;
    }
    const action = upstreamValue ? gw.readValueAction(node) : gw.action(node, 'browse', { attribute });
    const verdict = await call.authorize(action, { request });
    if (verdict.effect === 'approve') return refused(verdict);
    if (!verdict.authorization) {
      firstRefusal ??= verdict;
      out[i] = { node: node.gatewayId, status: refusalStatusName(verdict.reason), refused: refusalDetail(verdict) };
      continue;
    }
    if (upstreamValue) forward.push({ i, auth: verdict.authorization });
    else out[i] = fromMirror(node, attribute, ctx.uriOf);
  }
  if (firstRefusal && out.filter((r) => r?.refused).length === nodes.length) return refused(firstRefusal);
  if (forward.length > 0) {
    const { upstream, mirror } = ctx.located;
    const ids: ReadValueIdOptions[] = forward.map((f) => ({ nodeId: nodes[f.i]!.upstreamId, attributeId: AttributeIds.Value }));
    try {
      const dvs = await upstream.read(call.session.id, ids, forward.map((f) => f.auth));
      forward.forEach((f, k) => (out[f.i] = fromDataValue(nodes[f.i]!, dvs[k] ? toClient(dvs[k], mirror.namespaces) : undefined, ctx.uriOf)));
    } catch (err) {
      const status = failureStatus(err).name;
      for (const f of forward) out[f.i] = { node: nodes[f.i]!.gatewayId, status };
    }
  }
  const results = withinBudget(out.map((r, i) => r ?? { node: nodes[i]!.gatewayId, status: 'BadInternalError' }));
  const good = results.filter((r) => r.status === 'Good').length;
  return { ok: true, result: { target: ctx.target, attribute, results }, text: `${good} of ${results.length} node(s) read` };
}

// ------------------------------------------------------------------ write

async function write(ctx: Ctx, args: Args): Promise<AgentToolResult> {
  const { call, gw, target } = ctx;
  const node = resolve(ctx, String(args.node));
  if (isFailure(node)) return node;
  if (node.nodeClass !== 'Variable') return fail('not_a_variable', `${node.browsePath} is a ${node.nodeClass}, not a variable`, { node: node.gatewayId });
  const type = (args.data_type as OpcuaAgentDataType | undefined) ?? builtInType(dataTypeOf(node));
  if (!type) return fail('data_type_required', `${node.browsePath} has no built-in data type: give data_type`, { node: node.gatewayId });
  let variant: Variant;
  try {
    variant = toVariant(args.value, type);
  } catch (err) {
    if (err instanceof AgentValueError) return fail('invalid_value', err.message, { node: node.gatewayId, data_type: type });
    throw err;
  }
  const at: Located = { ...ctx.located, node };
  const value = numericValue(variant);
  const action = gw.action(node, 'write', { attribute: 'Value', ...(value !== undefined ? { value } : {}) });
  const forwardable = node.writable;
  const verdict = await call.authorize(action, {
    evidence: async () => ({ new_values: [evidence(variant.value)], ...(forwardable ? await valueBefore(at) : {}) }),
  });
  if (!verdict.authorization) return refused(verdict);
  if (call.signal.aborted) {
    await call.outcome(action, { status: 'BadRequestCancelledByClient', forwarded: false, reason: 'the call was cancelled before the write was forwarded' });
    return fail('cancelled', 'the call was cancelled before the write was sent');
  }
  if (!forwardable) {
    await call.outcome(action, { status: 'BadNotWritable', forwarded: false });
    return fail('not_writable', `${target} does not let ${node.browsePath} be written`, { status: 'BadNotWritable', node: node.gatewayId });
  }
  const started = process.hrtime.bigint();
  const ms = () => Math.round((Number(process.hrtime.bigint() - started) / 1e6) * 10) / 10;
  try {
    const plantValue = await at.mirror.namespaces.variantToPlant(variant, (id) => at.upstream.structureConstructor(id));
    const [status] = await at.upstream.write(call.session.id, [{ nodeId: node.upstreamId, attributeId: AttributeIds.Value, value: { value: plantValue } }], [verdict.authorization]);
    const name = status?.name ?? 'BadCommunicationError';
    await call.outcome(action, { status: name, ms: ms() });
    if (!status?.isGood()) return deviceStatus(target, name, { node: node.gatewayId });
    return { ok: true, result: { target, node: node.gatewayId, status: name, data_type: type }, text: `wrote ${node.browsePath}` };
  } catch (err) {
    const status = failureStatus(err);
    await call.outcome(action, { status: status.name, ms: ms(), ...failureOutcome(err) });
    return deviceStatus(target, status, { node: node.gatewayId });
  }
}

// ------------------------------------------------------------------ call

async function call(ctx: Ctx, args: Args): Promise<AgentToolResult> {
  const { call: agent, gw, target } = ctx;
  const method = resolve(ctx, String(args.method));
  if (isFailure(method)) return method;
  if (method.nodeClass !== 'Method') return fail('not_a_method', `${method.browsePath} is a ${method.nodeClass}, not a method`, { node: method.gatewayId });
  const object = args.object === undefined ? method.parent : resolve(ctx, String(args.object));
  if (isFailure(object)) return object;
  if (!object || object.nodeClass === 'Method' || object.nodeClass === 'Variable') return fail('not_an_object', `a method is called on an object, not on ${object?.browsePath ?? 'nothing'}`);
  const declared = (method.local as UAMethod).getInputArguments?.() ?? [];
  const given = (args.arguments as unknown[] | undefined) ?? [];
  const expected = declared.map((a) => ({ name: a.name ?? '', data_type: typeName(a.dataType, ctx.uriOf) }));
  if (given.length !== declared.length) return fail('invalid_arguments', `${method.browsePath} takes ${declared.length} argument(s), ${given.length} given`, { expected });
  const inputs: Variant[] = [];
  for (const [i, a] of declared.entries()) {
    const type = builtInType(a.dataType);
    if (!type) return fail('unsupported_argument_type', `argument ${a.name ?? i} of ${method.browsePath} is not of a built-in type an agent may give`, { expected });
    try {
      inputs.push(toVariant(given[i], type));
    } catch (err) {
      if (err instanceof AgentValueError) return fail('invalid_arguments', `argument ${a.name ?? i}: ${err.message}`, { expected });
      throw err;
    }
  }
  const action = gw.action(method, 'call', { objectId: object.gatewayId });
  const verdict = await agent.authorize(action, { evidence: async () => ({ arguments: inputs.map((v) => evidence(v.value)) }) });
  if (!verdict.authorization) return refused(verdict);
  if (agent.signal.aborted) {
    await agent.outcome(action, { status: 'BadRequestCancelledByClient', forwarded: false, reason: 'the call was cancelled before the method was called' });
    return fail('cancelled', 'the call was cancelled before the method was called');
  }
  const { upstream, mirror } = ctx.located;
  let inputArguments: Variant[];
  try {
    inputArguments = await Promise.all(inputs.map((v) => mirror.namespaces.variantToPlant(v, (id) => upstream.structureConstructor(id))));
  } catch (err) {
    const status = translationStatus(err);
    await agent.outcome(action, { status: status.name, forwarded: false, reason: (err as Error).message });
    return deviceStatus(target, status);
  }
  try {
    const [r] = await upstream.call(agent.session.id, [{ objectId: object.upstreamId, methodId: method.upstreamId, inputArguments }], [verdict.authorization]);
    const outputs = (r?.outputArguments ?? []).map((v) => mirror.namespaces.variantToGateway(v));
    const status = r?.statusCode.name ?? 'BadCommunicationError';
    await agent.outcome(action, { status, outputs: outputs.map((v) => evidence(v.value)) });
    if (!r?.statusCode.isGood()) {
      const inputResults = (r?.inputArgumentResults ?? []).map((s) => s.name);
      return deviceStatus(target, status, { method: method.gatewayId, ...(inputResults.some((s) => s !== 'Good') ? { input_argument_results: inputResults } : {}) });
    }
    return { ok: true, result: { target, method: method.gatewayId, object: object.gatewayId, status, outputs: outputs.map((v) => fromVariant(v, ctx.uriOf)) }, text: `called ${method.browsePath}` };
  } catch (err) {
    const status = failureStatus(err);
    await agent.outcome(action, { status: status.name, ...failureOutcome(err) });
    return deviceStatus(target, status, { method: method.gatewayId });
  }
}
