// The tools of one agent session: which it sees (tools/list) and what happens when it calls one
// (tools/call). Two kinds, one path:
//   - the gateway's own tools (gateway-tools.ts): the caller's access, asking for more, ending a task,
//     presenting an envelope;
//   - the protocols' agent tools (each module's `agentTools`, run by its front door's callAgentTool):
//     every action they take on a target goes through core.authorize, like a request on that door.
// Nothing here names a protocol: the module table says which tools exist and who runs them.
//
// A call is journaled as `mcp.tool_called` (the arguments, secrets replaced), then its decision
// (action.allowed / action.denied / approval.*) and its side effect (action.outcome): every event of the
// call carries the same `correlation` id. A refusal is a tool result with isError and a structured reason.
import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Core, Verdict } from '../../core/core.ts';
import type { Session } from '../../sessions/registry.ts';
import type { RuleConfig } from '../../config/schema.ts';
import type { HeldGrant } from '../../grants/types.ts';
import { grantsForTask } from '../../grants/task-claims.ts';
import { canonicalJson } from '../../journal/canonical.ts';
import { explainRule } from '../../policy/decide.ts';
import { ruleParts } from '../../policy/matchers.ts';
import { DECISION_REASONS } from '../../policy/types.ts';
import { loadFrontDoor, protocols } from '../registry.ts';
import type { AgentCall, AgentToolResult, AgentToolSpec } from '../types.ts';

/** A tool as tools/list shows it. */
export interface ListedTool {
  name: string;
  title: string;
  description: string;
  inputSchema: Record<string, unknown> & { type: 'object' };
  outputSchema?: Record<string, unknown> & { type: 'object' };
  annotations: { title: string; readOnlyHint: boolean; destructiveHint: boolean; openWorldHint: boolean };
}

/** What a tools/call answers (MCP's CallToolResult). */
export interface ToolAnswer {
  [key: string]: unknown;
  content: { type: 'text'; text: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
  _meta?: Record<string, unknown>;
}

/**
 * Where a failed call's machine-readable reason goes. Not structuredContent: a client checks that against
 * the tool's outputSchema, which describes the result, so a refusal there fails in the client (the
 * official SDK's does) instead of reaching the agent. It is also the second text item, as JSON.
 */
export const FAILURE_META_KEY = 'penstock.dev/failure';

/** A failed call: a line for the model, the same as JSON, and the structured reason in _meta. */
function failed(line: string, out: Record<string, unknown>): ToolAnswer {
  return { content: [{ type: 'text', text: line }, { type: 'text', text: JSON.stringify(out) }], isError: true, _meta: { [FAILURE_META_KEY]: out } };
}

/** A tool of the gateway's own (gateway-tools.ts): described like a protocol's, and run here. */
export interface GatewayTool extends Omit<AgentToolSpec, 'listedBy'> {
  /** Whether this gateway offers the tool at all (default: yes). */
  available?(core: Core): boolean;
  run(args: Record<string, unknown>, ctx: ToolContext): Promise<AgentToolResult>;
}

/** What a gateway tool may use. */
export interface ToolContext {
  readonly core: Core;
  readonly session: Session;
  readonly correlation: string;
  /** The SHA-256 of the call's canonical arguments. */
  readonly binding: string;
  /**
   * Run `fn` once the call's answer has been handed to the client: for what would end the caller's own
   * session (task_done revokes a grant the session used), so that the agent still hears the answer.
   */
  afterAnswer(fn: () => void): void;
}

interface AgentToolEntry {
  protocol: string;
  spec: AgentToolSpec;
}

/** Every protocol's agent tools, by name (the table is fixed at start-up). */
const agentTools: ReadonlyMap<string, AgentToolEntry> = new Map(
  [...protocols.values()].flatMap((m) => (m.agentTools ?? []).map((spec) => [spec.name, { protocol: m.name, spec }] as const)),
);

/** The SHA-256 (hex) of a tool call's canonical form: what an approval is bound to. */
export function callBinding(tool: string, args: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson({ tool, arguments: args })).digest('hex');
}

/** The grants a session may use now (task-bound grants only under their task's claim). */
function usableGrants(core: Core, session: Session): HeldGrant[] {
  const now = core.clock.now();
  return grantsForTask(core.grants.forPrincipal(session.principal.id), session.attributes.task).filter((g) => !g.revoked && core.grants.isActive(g, now));
}

/** The targets of `protocol` for which an allow or approve rule of a usable grant lets `spec` do something. */
function grantedTargets(core: Core, grants: readonly HeldGrant[], protocol: string, spec: AgentToolSpec): string[] {
  const targets = core.config().targets;
  const out = new Set<string>();
  for (const g of grants) {
    const lets = g.rules.some((r) => {
      const { kind, body } = ruleParts(r as RuleConfig);
      return kind === protocol && body.effect !== 'deny' && spec.listedBy(body);
    });
    if (!lets) continue;
    for (const t of g.targets) if (targets.get(t)?.protocol === protocol) out.add(t);
  }
  return [...out].sort();
}

function jsonSchemaOf(schema: z.ZodObject): Record<string, unknown> & { type: 'object' } {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...rest, type: 'object' };
}

// Converted once per tool: the schemas are fixed; only the target list changes per call.
const schemaCache = new WeakMap<z.ZodObject, Record<string, unknown> & { type: 'object' }>();
function cachedSchema(schema: z.ZodObject): Record<string, unknown> & { type: 'object' } {
  let s = schemaCache.get(schema);
  if (!s) schemaCache.set(schema, (s = jsonSchemaOf(schema)));
  return s;
}

function listed(t: { name: string; title: string; description: string; input: z.ZodObject; output?: z.ZodObject | undefined; readOnly: boolean }, targets?: string[]): ListedTool {
  let inputSchema = cachedSchema(t.input);
  if (targets) {
    const props = inputSchema.properties as Record<string, Record<string, unknown>>;
    inputSchema = { ...inputSchema, properties: { ...props, target: { ...props.target, enum: targets } } };
  }
  return {
    name: t.name,
    title: t.title,
    description: t.description,
    inputSchema,
    ...(t.output ? { outputSchema: cachedSchema(t.output) } : {}),
    annotations: { title: t.title, readOnlyHint: t.readOnly, destructiveHint: !t.readOnly, openWorldHint: false },
  };
}

/** tools/list: the gateway's tools, and each agent tool a usable grant lets this principal use now, `target` narrowed to its granted targets. */
export function listTools(core: Core, session: Session, gatewayTools: readonly GatewayTool[]): ListedTool[] {
  const grants = usableGrants(core, session);
  const out = gatewayTools.filter((t) => t.available?.(core) ?? true).map((t) => listed(t));
  for (const [, { protocol, spec }] of agentTools) {
    const targets = grantedTargets(core, grants, protocol, spec);
    if (targets.length > 0) out.push(listed({ ...spec, input: spec.input }, targets));
  }
  return out;
}

/** Arguments as journaled: a tool's secret arguments replaced, never kept. */
function journaledArgs(args: Record<string, unknown>, secret: readonly string[] | undefined): Record<string, unknown> {
  if (!secret?.length) return args;
  return Object.fromEntries(Object.entries(args).map(([k, v]) => [k, secret.includes(k) ? '[secret]' : v]));
}

export interface CallOptions {
  core: Core;
  session: Session;
  listener: string;
  gatewayTools: ReadonlyMap<string, GatewayTool>;
  /**
   * Admits the call before anything else is done for it: undefined, or why not (`rate_limited`: the
   * session's calls per second; `call_budget_spent`: the task's maximum number of calls).
   */
  admit: () => 'rate_limited' | 'call_budget_spent' | undefined;
  /** Journal a refusal of the door's own (rate-limited per kind: a flood of refusals is not a journal flood). */
  refuse: (detail: Record<string, unknown> & { reason: string }) => void;
  /** See ToolContext.afterAnswer. */
  afterAnswer: (fn: () => void) => void;
  signal: AbortSignal;
}

/** tools/call: validate, journal, run, answer. Never throws for anything the agent did. */
export async function callTool(name: string, rawArgs: unknown, o: CallOptions): Promise<ToolAnswer> {
  const { core, session } = o;
  const correlation = randomUUID();
  const who = { session: session.id, principal: session.principal.id, chain: session.chain, listener: o.listener };
  const turnedAway = o.admit();
  if (turnedAway) {
    o.refuse({ reason: turnedAway, tool: name.slice(0, 128), correlation });
    return failure(turnedAway, turnedAway === 'rate_limited' ? 'too many tool calls per second on this session; slow down' : 'the maximum number of tool calls for this task has been reached', { correlation });
  }
  const gateway = o.gatewayTools.get(name);
  const agent = agentTools.get(name);
  const tool = gateway ?? agent?.spec;
  const note = (detail: Record<string, unknown>) =>
    void core.journal.append({ event: 'mcp.tool_called', ...who, detail: { tool: name.slice(0, 128), correlation, ...(session.attributes.task ? { task: session.attributes.task } : {}), ...detail } }, { lazy: true })
      .catch((err: unknown) => core.log.error({ err }, 'journaling a tool call failed'));
  if (!tool) {
    note({ refused: 'unknown_tool' });
    return failure('unknown_tool', `there is no tool ${name.slice(0, 128)}`, { correlation });
  }
  const parsed = tool.input.safeParse(rawArgs ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message }));
    note({ refused: 'invalid_arguments', issues });
    return failure('invalid_arguments', `the arguments do not fit ${name}'s input schema`, { correlation, issues });
  }
  const args = parsed.data as Record<string, unknown>;
  const binding = callBinding(name, args);
  note({ arguments: journaledArgs(args, tool.secretArgs), binding });

  let result: AgentToolResult;
  let targetProtocol: string | undefined;
  try {
    if (gateway) {
      result = await gateway.run(args, { core, session, correlation, binding, afterAnswer: o.afterAnswer });
    } else {
      const { protocol } = agent!;
      const target = String(args.target);
      if (core.config().targets.get(target)?.protocol !== protocol) {
        return failure('unknown_target', `${target.slice(0, 128)} is not a target ${name} can act on`, { correlation });
      }
      targetProtocol = protocol;
      const door = await loadFrontDoor(protocol);
      if (!door?.callAgentTool) return failure('unknown_tool', `${name} has no runner`, { correlation });
      const call: AgentCall = {
        core,
        session,
        authorize: (action, opts = {}) => core.authorize(session, action, { ...opts, correlation, approvalBinding: binding }),
        outcome: (action, outcome) => core.recordOutcome(session, action, outcome, { correlation }),
        signal: o.signal,
      };
      result = await door.callAgentTool(name, args, call);
    }
  } catch (err) {
    core.log.error({ err, tool: name, correlation }, 'tool call failed');
    return failure('internal_error', 'the gateway failed to run the tool; the journal holds what happened', { correlation });
  }
  if (result.ok) {
    return { content: [{ type: 'text', text: result.text ?? JSON.stringify(result.result) }], structuredContent: result.result };
  }
  if ('error' in result) return failure(result.error.code, result.error.message, { correlation, ...(result.error.detail ? { detail: result.error.detail } : {}) });
  return refusal(result.refused, { core, session, correlation, ...(targetProtocol ? { protocol: targetProtocol, target: String(args.target) } : {}) });
}

/** A policy refusal or a pending approval, for the agent: the reason code, what decided, what would be allowed. */
function refusal(v: Verdict, o: { core: Core; session: Session; correlation: string; protocol?: string; target?: string }): ToolAnswer {
  if (v.effect === 'approve' && v.approval) {
    const out = {
      status: 'pending_approval',
      reason: v.reason,
      approval: v.approval.id,
      expires_at: v.approval.expiresAt,
      arguments_sha256: v.approval.binding,
      ...(v.grant ? { grant: v.grant } : {}),
      ...(v.rule ? { rule: v.rule } : {}),
      explanation: v.explanation,
      correlation: o.correlation,
    };
    return failed(`pending_approval: ${v.approval.id} waits for a person on the gateway (until ${v.approval.expiresAt}); call again with exactly the same arguments once it is approved`, out);
  }
  const allowed = o.protocol ? allowedRules(o.core, o.session, o.protocol, o.target) : [];
  const out = {
    status: 'refused',
    reason: v.reason,
    ...(v.grant ? { grant: v.grant } : {}),
    ...(v.rule ? { rule: v.rule } : {}),
    explanation: v.explanation,
    allowed,
    correlation: o.correlation,
  };
  return failed(`${v.reason}: ${DECISION_REASONS[v.reason]} (${v.explanation})`, out);
}

/** What the principal's usable grants allow on this protocol's targets, one line per rule: the agent's way forward. */
function allowedRules(core: Core, session: Session, protocol: string, target: string | undefined): string[] {
  const out: string[] = [];
  for (const g of usableGrants(core, session)) {
    if (target !== undefined && !g.targets.includes(target)) continue;
    g.rules.forEach((r, i) => {
      if (ruleParts(r as RuleConfig).kind === protocol) out.push(`${g.id}#${i} on ${g.targets.join(', ')}: ${explainRule(r as RuleConfig)}`);
    });
  }
  return out.slice(0, 50);
}

function failure(code: string, message: string, detail: Record<string, unknown>): ToolAnswer {
  return failed(`${code}: ${message}`, { status: 'error', error: code, message, ...detail });
}
