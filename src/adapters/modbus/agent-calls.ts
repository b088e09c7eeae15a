// Runs the Modbus agent tools (agent-tools.ts) for the agent front door: one tool call becomes exactly the Modbus
// request a vendor's tool would send for it (FC 1-4 to read; 5/6/15/16 to write), hence the same Actions
// (requestToActions), the same scale factors read into policy before a write is decided, the same
// read-back of the values a write replaces, the same shared upstream link and the same forwarding with
// the Authorization the verdict carries. The front door's stream server does the same steps per frame;
// only the arguments (engineering values, point names) and the answer (a structured result) differ.
//
// Order per call: arguments → point and value checks (refused with a code, nothing decided or sent) →
// call.authorize for the request's action (any other verdict than allow ends the call, nothing sent)
// → read-back (targets with read_back_before_write) → forward → call.outcome for a write → result, or the
// device's exception / the link's failure as an error with a stable code.
import type { FirmwareProfile } from '../../config/types.ts';
import type { Authorization } from '../../core/core.ts';
import type { AgentCall, AgentToolResult } from '../types.ts';
import { AGENT_READ_MAX, AGENT_TABLES, AGENT_WRITE_MAX, type AgentTable, type ModbusReadArgs, type ModbusWriteArgs } from './agent-tools.ts';
import { encodeRequest, exceptionName, requestToActions, type ModbusRequest, type ModbusResponse } from './codec.ts';
import { encodePointValue, pointValue } from './point-values.ts';
import { upstreamsFor } from './pool.ts';
import { modbusPoints, type ModbusPoint, type ModbusTable } from './rules.ts';
import { addScaleFactors, scaleExponent } from './scale-factors.ts';
import type { ModbusTargetConfig } from './schema.ts';
import { parsedTarget, readBack, writeOutcome } from './stream.ts';
import type { Upstream, UpstreamFailureCode } from './upstream.ts';

type Failure = Extract<AgentToolResult, { error: unknown }>;

/** Stable error codes of the Modbus agent tools (beside PointValueRefusal's value codes). */
export type ModbusAgentErrorCode =
  | 'unknown_tool' | 'unknown_target' | 'no_profile' | 'unknown_point' | 'point_read_only' | 'invalid_arguments'
  | 'count_too_large' | 'address_out_of_range' | 'scale_factor_unavailable' | 'broadcast_unconfirmable' | 'cancelled'
  | 'device_exception' | 'device_timeout' | 'device_bad_response' | 'device_busy' | 'device_unavailable';

function isFailure(x: object): x is Failure {
  return (x as { ok?: unknown }).ok === false;
}

function fail(code: string, message: string, detail?: Record<string, unknown>): Failure {
  return { ok: false, error: { code, message, ...(detail ? { detail } : {}) } };
}

/** How the shared link's failures read to an agent. */
const LINK_FAILURES: Record<UpstreamFailureCode, ModbusAgentErrorCode> = {
  UPSTREAM_TIMEOUT: 'device_timeout',
  UPSTREAM_BAD_RESPONSE: 'device_bad_response',
  UPSTREAM_QUEUE_FULL: 'device_busy',
  UPSTREAM_UNAVAILABLE: 'device_unavailable',
  UPSTREAM_CLOSED: 'device_unavailable',
};

const TOOL_TABLE = Object.fromEntries(Object.entries(AGENT_TABLES).map(([k, v]) => [v, k])) as Record<ModbusTable, AgentTable>;

/** What one call works with: its target, unit, profile and the target's shared link. */
interface CallContext {
  readonly call: AgentCall;
  readonly target: ModbusTargetConfig;
  readonly unit: number;
  readonly profile: FirmwareProfile | undefined;
  readonly upstream: Upstream;
}

/** FrontDoor.callAgentTool for Modbus. */
export async function callModbusAgentTool(name: string, args: Record<string, unknown>, call: AgentCall): Promise<AgentToolResult> {
  if (name !== 'modbus_read' && name !== 'modbus_write') return fail('unknown_tool', `Modbus has no tool ${name}`);
  const target = parsedTarget(call.core, String(args.target));
  if (!target) return fail('unknown_target', `${String(args.target)} is not a Modbus target`);
  const pool = upstreamsFor(call.core);
  // A user of the pool for the call's length: the link is shared with the listeners, and closed when no one holds the pool.
  const release = pool.acquire();
  try {
    const ctx: CallContext = {
      call,
      target,
      unit: typeof args.unit === 'number' ? args.unit : target.unit,
      profile: target.profile ? call.core.config().profiles.get(target.profile) : undefined,
      upstream: pool.get(target),
    };
    return name === 'modbus_read' ? await runRead(args as ModbusReadArgs, ctx) : await runWrite(args as ModbusWriteArgs, ctx);
  } finally {
    release();
  }
}

// ------------------------------------------------------------------ modbus_read

async function runRead(args: ModbusReadArgs, ctx: CallContext): Promise<AgentToolResult> {
  let point: ModbusPoint | undefined;
  let table: ModbusTable;
  let address: number;
  let count: number;
  if (args.point !== undefined) {
    if (args.table !== undefined || args.address !== undefined || args.count !== undefined) return fail('invalid_arguments', 'give point, or table, address and count; not both');
    const found = findPoint(ctx, args.point);
    if (isFailure(found)) return found;
    point = found;
    [table, address, count] = [point.table!, point.address!, point.words];
  } else {
    if (args.table === undefined || args.address === undefined) return fail('invalid_arguments', 'give point, or table and address (and count)');
    [table, address, count] = [AGENT_TABLES[args.table], args.address, args.count ?? 1];
  }
  const bits = table === 'coil' || table === 'discrete_input';
  const bad = spanProblem(address, count, bits ? AGENT_READ_MAX.bits : AGENT_READ_MAX.registers, bits ? 'bits' : 'registers');
  if (bad) return bad;
  const req: ModbusRequest = bits
    ? { kind: 'read_bits', fc: table === 'coil' ? 1 : 2, address, quantity: count }
    : { kind: 'read_registers', fc: table === 'holding_register' ? 3 : 4, address, quantity: count };
  const sent = await decideAndForward(ctx, req);
  if (!sent.ok) return sent.result;
  const values = 'values' in sent.response && Array.isArray(sent.response.values) ? sent.response.values : [];
  const result: Record<string, unknown> = { target: ctx.target.id, unit: ctx.unit, table: TOOL_TABLE[table], address, count, values };
  if (!point) return { ok: true, result, text: `${TOOL_TABLE[table]} ${address}${count > 1 ? `-${address + count - 1}` : ''}: ${values.join(', ')}` };
  const scale = await scaleOf(ctx, point);
  const value = pointValue(point, values, ctx.profile!.word_order, scale.exponent);
  result.point = {
    name: point.name,
    type: point.type,
    access: point.access,
    ...(point.units !== undefined ? { units: point.units } : {}),
    ...(point.description !== undefined ? { description: point.description } : {}),
    value,
    ...scale.fields,
  };
  const said = value === null ? `unknown (scale factor ${point.scale_factor} unreadable; raw ${values.join(', ')})` : `${value}${point.units ? ` ${point.units}` : ''}`;
  return { ok: true, result, text: `${point.name} = ${said}` };
}

// ------------------------------------------------------------------ modbus_write

async function runWrite(args: ModbusWriteArgs, ctx: CallContext): Promise<AgentToolResult> {
  let req: ModbusRequest;
  let pointFields: Record<string, unknown> | undefined;
  if (args.point !== undefined) {
    if (args.table !== undefined || args.address !== undefined || args.values !== undefined) return fail('invalid_arguments', 'give point and value, or table, address and values; not both');
    if (args.value === undefined) return fail('invalid_arguments', 'a write by point needs value');
    const found = findPoint(ctx, args.point);
    if (isFailure(found)) return found;
    const p = found;
    if (p.access !== 'RW' || (p.table !== 'holding_register' && p.table !== 'coil')) return fail('point_read_only', `${p.name} is read-only in profile ${ctx.profile!.name}`, { point: p.name });
    if (typeof args.value === 'boolean' && p.table !== 'coil') return fail('invalid_arguments', `${p.name} is a register: value must be a number`);
    const value = typeof args.value === 'boolean' ? Number(args.value) : args.value;
    const scale = await scaleOf(ctx, p);
    if (p.scale_factor !== undefined && scale.exponent === undefined) {
      return fail('scale_factor_unavailable', `the scale factor ${p.scale_factor} of ${p.name} cannot be read from the device, so ${value} cannot be converted`, { point: p.name, scale_factor: p.scale_factor });
    }
    const encoded = encodePointValue(p, value, ctx.profile!.word_order, scale.exponent);
    if (!encoded.ok) return fail(encoded.code, encoded.message, { point: p.name, value });
    const regs = encoded.registers;
    req = p.table === 'coil'
      ? { kind: 'write_single_coil', fc: 5, address: p.address!, value: regs[0] as 0 | 1 }
      : regs.length === 1
        ? { kind: 'write_single_register', fc: 6, address: p.address!, value: regs[0]! }
        : { kind: 'write_multiple_registers', fc: 16, address: p.address!, values: regs };
    pointFields = { name: p.name, type: p.type, ...(p.units !== undefined ? { units: p.units } : {}), value, ...scale.fields };
  } else {
    if (args.value !== undefined) return fail('invalid_arguments', 'value goes with point; by address, give values');
    if (args.table === undefined || args.address === undefined || args.values === undefined) return fail('invalid_arguments', 'give point and value, or table, address and values');
    const built = rawWrite(args.table, args.address, args.values);
    if (isFailure(built)) return built;
    req = built;
  }
  if (ctx.target.serial && ctx.unit === 0) return fail('broadcast_unconfirmable', 'unit 0 on a serial line is a broadcast, which no device answers: its effect cannot be confirmed');
  const sent = await decideAndForward(ctx, req);
  if (!sent.ok) return sent.result;
  const action = sent.writes[0]!.object;
  const old = sent.before?.[`${action.table}:${action.address}`];
  const result: Record<string, unknown> = {
    target: ctx.target.id,
    unit: ctx.unit,
    table: TOOL_TABLE[action.table!],
    address: action.address,
    count: action.quantity,
    function_code: req.fc,
    written: action.values ?? [],
    ...(pointFields ? { point: pointFields } : {}),
    ...(Array.isArray(old) ? { old_values: old } : {}),
  };
  const what = pointFields ? `${String(pointFields.name)} = ${String(pointFields.value)}${pointFields.units ? ` ${String(pointFields.units)}` : ''}` : `${TOOL_TABLE[action.table!]} ${action.address}`;
  return { ok: true, result, text: `wrote ${what} (raw ${(action.values ?? []).join(', ')})` };
}

/** The request of a write by address: FC 6/16 for registers, 5/15 for coils, as a vendor's tool sends them. */
function rawWrite(table: 'holding' | 'coil', address: number, values: readonly (number | boolean)[]): ModbusRequest | Failure {
  if (table === 'coil') {
    if (values.some((v) => typeof v === 'number' && v !== 0 && v !== 1)) return fail('invalid_arguments', 'coil values are true/false or 1/0');
    const bits = values.map((v) => (v === true || v === 1 ? 1 : 0) as 0 | 1);
    const bad = spanProblem(address, bits.length, AGENT_WRITE_MAX.coils, 'coils');
    if (bad) return bad;
    return bits.length === 1 ? { kind: 'write_single_coil', fc: 5, address, value: bits[0]! } : { kind: 'write_multiple_coils', fc: 15, address, values: bits };
  }
  if (values.some((v) => typeof v !== 'number')) return fail('invalid_arguments', 'register values are numbers 0-65535');
  const regs = values as number[];
  const bad = spanProblem(address, regs.length, AGENT_WRITE_MAX.registers, 'registers');
  if (bad) return bad;
  return regs.length === 1 ? { kind: 'write_single_register', fc: 6, address, value: regs[0]! } : { kind: 'write_multiple_registers', fc: 16, address, values: [...regs] };
}

// ------------------------------------------------------------------ shared steps

function findPoint(ctx: CallContext, name: string): ModbusPoint | Failure {
  if (!ctx.profile) return fail('no_profile', `target ${ctx.target.id} has no firmware profile: name the table and address instead`);
  const p = modbusPoints(ctx.profile).find((q) => q.name === name);
  if (!p || p.table === undefined || p.address === undefined) return fail('unknown_point', `profile ${ctx.profile.name} has no point ${name}`, { point: name, profile: ctx.profile.name });
  return p;
}

function spanProblem(address: number, count: number, max: number, what: string): Failure | undefined {
  if (count > max) return fail('count_too_large', `at most ${max} ${what} per call, not ${count}`, { max });
  if (address + count > 0x10000) return fail('address_out_of_range', `${count} ${what} from ${address} run past address 65535`);
  return undefined;
}

/** The scale in force for a point: its fixed exponent, or its factor register's value (the link's cached read, as before a write is decided). */
async function scaleOf(ctx: CallContext, p: ModbusPoint): Promise<{ exponent: number | undefined; fields: Record<string, unknown> }> {
  if (p.scale_factor === undefined) return { exponent: p.scale_exponent, fields: p.scale_exponent !== undefined ? { scale_exponent: p.scale_exponent } : {} };
  const exponent = await scaleExponent(ctx.profile!, p.scale_factor, ctx.unit, ctx.upstream, ctx.call.session.id, Date.now());
  return { exponent, fields: { scale_exponent: exponent ?? null, scale_factor: p.scale_factor } };
}

type Sent =
  | { ok: true; response: ModbusResponse; writes: ReturnType<typeof requestToActions>; before: Record<string, unknown> | undefined }
  | { ok: false; result: AgentToolResult };

/** Decide the request's actions, then (all allowed) read back, forward with their Authorizations and journal each write's outcome. */
async function decideAndForward(ctx: CallContext, req: ModbusRequest): Promise<Sent> {
  const { call, upstream, unit } = ctx;
  const session = call.session.id;
  const actions = requestToActions(req, ctx.target.id, unit);
  await addScaleFactors(actions, ctx.profile, upstream, session);
  const authorizations: Authorization[] = [];
  for (const action of actions) {
    const verdict = await call.authorize(action);
    if (!verdict.authorization) return { ok: false, result: { ok: false, refused: verdict } };
    authorizations.push(verdict.authorization);
  }
  const cancelled = { ok: false as const, result: fail('cancelled', 'the call was cancelled before the device answered') };
  const writes = actions.filter((a) => a.verb !== 'read');
  if (call.signal.aborted) {
    // Allowed and journaled, then never sent: the outcome says so.
    await Promise.all(writes.map((a) => call.outcome(a, { function_code: req.fc, ok: false, sent: false, reason: 'cancelled' })));
    return cancelled;
  }
  const before = writes.length > 0 && ctx.target.read_back_before_write ? await readBack(upstream, session, unit, writes) : undefined;
  const replied = upstream.forward(authorizations, session, unit, req, encodeRequest(req));
  // The outcome is journaled when the device answers, even if the agent stopped waiting.
  const recorded = replied.then((reply) => Promise.all(writes.map((a) => call.outcome(a, writeOutcome(a, reply, before, undefined)))));
  const reply = await unlessAborted(replied, call.signal);
  if (reply === undefined) return cancelled;
  await recorded;
  if (!reply.ok) return { ok: false, result: fail(LINK_FAILURES[reply.code], reply.message, { upstream: reply.code, exception: reply.exception }) };
  if (reply.response.kind === 'exception') {
    const code = reply.response.exception;
    return { ok: false, result: fail('device_exception', `${ctx.target.id} answered with Modbus exception ${code}${exceptionName(code) ? ` (${exceptionName(code)})` : ''}`, { exception: code, ...(exceptionName(code) ? { exception_name: exceptionName(code) } : {}), function_code: req.fc }) };
  }
  return { ok: true, response: reply.response, writes, before };
}

function unlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    void p.then((v) => {
      signal.removeEventListener('abort', onAbort);
      resolve(v);
    });
  });
}
