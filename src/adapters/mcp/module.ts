// MCP (the Model Context Protocol, for AI agents) as the rest of Penstock sees it: the listener schema,
// what a principal's token names, and the gateway's own tools as action objects. MCP has no targets and
// no rules of its own: a tool that acts on a target is decided by that target's protocol. Light on purpose:
// the SDK and the HTTPS server are loaded by load() only when a listener uses them.
import { DECISION_REASONS, type DecisionReason } from '../../policy/types.ts';
import { miss } from '../../policy/matcher.ts';
import type { ProtocolModule } from '../types.ts';
import { mcpCredentialSchemas, mcpListenerSchema, mcpObjectSchema, mcpRuleSchema, mcpTargetSchema, type McpObject } from './schema.ts';

/** The gateway's own tools (no other protocol's): each discloses only what concerns the caller. */
export const GATEWAY_TOOLS = ['my_access', 'request_access', 'task_done', 'present_envelope'] as const;

/**
 * How a refusal reads to the agent: the text of a tool result with `isError: true` (MCP's way of saying
 * a tool call failed without failing the JSON-RPC request), led by the stable reason code.
 */
const MCP_REFUSALS = Object.fromEntries(
  (Object.keys(DECISION_REASONS) as DecisionReason[]).map((r) => [r, `${r}: ${DECISION_REASONS[r]}`]),
) as Record<DecisionReason, string>;

export const mcpModule: ProtocolModule<McpObject, never> = {
  name: 'mcp',
  title: 'MCP',
  listenerSchema: mcpListenerSchema,
  targetSchema: mcpTargetSchema,
  ruleSchema: mcpRuleSchema,
  objectSchema: mcpObjectSchema,
  credentialSchemas: mcpCredentialSchemas,
  matcher: {
    kind: 'mcp',
    validate: (_action, object) => ((GATEWAY_TOOLS as readonly string[]).includes(object.tool) ? undefined : `no gateway tool ${object.tool}`),
    // No rule can be an mcp rule (the schema refuses every one), so nothing here ever fits.
    match: () => miss('function_not_granted', 'MCP tools are granted by the rules of the protocol they act on'),
    describe: () => 'no mcp rule exists',
  },
  renderObject: (o) => ({ tool: o.tool }),
  describeAction: (a) => {
    // An agent's access request (request_access) carries the grant it would make: staff see what they approve.
    const g = (a.object as { grant?: { task?: { ticket?: string }; targets?: string[]; window?: { to?: string }; rules?: unknown[] } }).grant;
    if (!g) return `${a.verb} tool ${a.object.tool}`;
    return `access for task ${g.task?.ticket ?? '?'} on ${(g.targets ?? []).join(', ')} until ${g.window?.to ?? '?'}: ${JSON.stringify(g.rules ?? []).slice(0, 300)}`;
  },
  refusals: MCP_REFUSALS,
  events: {
    /** An agent's tool call as it arrived (arguments, secrets replaced); its decision and outcome carry the same correlation id. */
    'mcp.tool_called': 'PS3007I',
    /** A tool call refused before any policy decision (the task's call budget spent). */
    'mcp.tool_refused': 'PS3008W',
    /** An MCP session refused before it opened (the door's max_sessions). */
    'mcp.session_refused': 'PS2006W',
    /** An envelope an agent presented was refused (replayed, expired, foreign-signed, for someone else). */
    'mcp.envelope_refused': 'PS4008W',
  },
  // SIEM export: OCSF has no agent class yet (docs/siem.md), so API Activity (6003) with the ai_operation profile.
  ocsf: {
    agent: true,
    events: {
      'mcp.tool_called': { class: 6003, activity: 99, status: 'success', operation: 'tools/call', fields: 'api.operation = tools/call, resources = [tool], metadata.correlation_uid, profile ai_operation' },
      'mcp.tool_refused': { class: 6003, activity: 99, status: 'failure', operation: 'tools/call', fields: 'api.operation = tools/call, status_detail = reason, profile ai_operation' },
      'mcp.session_refused': { class: 6003, activity: 99, status: 'failure', operation: 'initialize', fields: 'api.operation = initialize, status_detail = reason, profile ai_operation' },
      'mcp.envelope_refused': { class: 6003, activity: 99, status: 'failure', operation: 'present_envelope', fields: 'api.operation = present_envelope, status_detail = reason, profile ai_operation' },
    },
  },
  load: async () => (await import('./adapter.ts')).mcpAdapter,
};
