// The gateway's own tools: they act on the agent's access, never on a target.
//   my_access        what the caller may do now (my-access.ts)
//   request_access   just-in-time access for a task: a pending request a person approves with
//                    `penstockctl approvals approve ID`, which becomes a runtime grant bound to the task
//                    and the principal, ending at the requested duration or the token's expiry
//   task_done        the task is over: its just-in-time grants are revoked now
//   present_envelope a pre-authorised grant signed by central PAM, verified offline (as `penstockctl
//                    grants import` does); only for the presenting principal
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Core } from '../../core/core.ts';
import { MAX_DEFERRED_PER_PRINCIPAL } from '../../approvals/approvals.ts';
import type { Operator } from '../../grants/types.ts';
import { validateRuntimeGrant } from '../../grants/validate.ts';
import { describeEnvelope, MAX_ENVELOPE_BYTES } from '../../grants/envelope.ts';
import { isPenstockError } from '../../common/errors.ts';
import type { Session } from '../../sessions/registry.ts';
import type { AgentToolResult } from '../types.ts';
import { protocols } from '../registry.ts';
import type { GatewayTool, ToolContext } from './tools.ts';
import { myAccess, myAccessOutput } from './my-access.ts';

/** Longest just-in-time grant an agent may ask for. */
export const MAX_ACCESS_SECONDS = 12 * 3600;

/** What request_access and task_done need from the listener: the just-in-time grants it issued. */
export interface AccessLedger {
  /** Grant id → the principal and task it was issued for, and the MCP session that asked. */
  readonly issued: Map<string, { principal: string; task: string; session: string }>;
  /** When the session's token expires (ms): a just-in-time grant never outlives the token that asked. */
  tokenExpiryMs(session: Session): number;
}

/** The daemon acting on an agent's word (task_done, token end): the daemon's uid, the agent named. */
export function agentOperator(principal: string): Operator {
  return { uid: process.getuid?.() ?? 0, user: `penstock for agent ${principal}`, verified: true };
}

const ruleShape = z.record(z.string(), z.unknown());

export function gatewayTools(ledger: AccessLedger): GatewayTool[] {
  const myAccessTool: GatewayTool = {
    name: 'my_access',
    title: 'My access',
    description: 'Your active grants (targets, task, window end, limits) and your approvals waiting for a person.',
    input: z.strictObject({}),
    output: z.object(myAccessOutput),
    readOnly: true,
    run: async (_args, ctx) => ({ ok: true, result: myAccess(ctx.core, ctx.session) }),
  };

  const requestAccess: GatewayTool = {
    name: 'request_access',
    title: 'Request access for a task',
    description: [
      'Ask plant staff for just-in-time access for one task. Answers at once with status pending_approval and a request id;',
      'a person approves it on the gateway, and the grant then appears in my_access (bound to this task and to you, for',
      'duration_seconds or until your token expires, whichever is first). `rules` are grant rules as the gateway config writes',
      `them: [{"<protocol>": {"effect": "allow", ...}}], <protocol> one of ${[...protocols.values()].filter((m) => m.agentTools?.length).map((m) => m.name).join(', ') || 'the target\'s protocol'}.`,
    ].join(' '),
    input: z.strictObject({
      task: z.string().min(1).max(128).describe('The task id (work order, ticket); must equal your token\'s task claim if it has one'),
      purpose: z.string().min(1).max(500),
      targets: z.array(z.string().min(1).max(128)).min(1).max(16),
      rules: z.array(ruleShape).min(1).max(32),
      duration_seconds: z.number().int().min(60).max(MAX_ACCESS_SECONDS),
    }),
    output: z.object({ status: z.literal('pending_approval'), request: z.string(), grant: z.string(), expires_at: z.string() }),
    readOnly: false,
    run: (args, ctx) => requestAccessRun(args as unknown as RequestArgs, ctx, ledger),
  };

  const taskDone: GatewayTool = {
    name: 'task_done',
    title: 'Task done',
    description: 'End a task: every just-in-time grant it was given is revoked now (open sessions using them end).',
    input: z.strictObject({ task: z.string().min(1).max(128) }),
    output: z.object({ revoked: z.array(z.string()) }),
    readOnly: false,
    run: async (args, ctx) => {
      const task = String(args.task);
      const grants = [...ledger.issued].filter(([, g]) => g.principal === ctx.session.principal.id && g.task === task).map(([id]) => id);
      // Revoking ends the sessions that used the grants, this one perhaps: after the agent has the answer.
      ctx.afterAnswer(() => endTask(ctx.core, ledger, ctx.session.principal.id, task, 'task_done called by the agent'));
      return { ok: true, result: { revoked: grants } };
    },
  };

  const presentEnvelope: GatewayTool = {
    name: 'present_envelope',
    title: 'Present a pre-authorised envelope',
    description: 'Present a grant envelope signed by central PAM (a compact JWS, typ penstock-grant+jws) for yourself. It is verified offline against the keys pinned on this gateway; a replayed, expired or foreign-signed envelope is refused.',
    input: z.strictObject({ envelope: z.string().min(1).max(MAX_ENVELOPE_BYTES) }),
    output: z.object({ grant: z.string(), jti: z.string(), max_uses: z.number(), expires: z.string() }),
    readOnly: false,
    secretArgs: ['envelope'],
    available: (core) => core.importEnvelope !== undefined && core.config().raw.envelopes !== undefined,
    run: (args, ctx) => presentEnvelopeRun(String(args.envelope), ctx),
  };

  return [myAccessTool, requestAccess, taskDone, presentEnvelope];
}

interface RequestArgs {
  task: string;
  purpose: string;
  targets: string[];
  rules: Record<string, unknown>[];
  duration_seconds: number;
}

async function requestAccessRun(args: RequestArgs, ctx: ToolContext, ledger: AccessLedger): Promise<AgentToolResult> {
  const { core, session } = ctx;
  const claim = session.attributes.task;
  if (claim !== undefined && claim !== args.task) {
    return { ok: false, error: { code: 'task_mismatch', message: `your token is for task ${claim}; access can be asked only for that task` } };
  }
  if (core.approvals.deferredWaiting(session.principal.id) >= MAX_DEFERRED_PER_PRINCIPAL) {
    return { ok: false, error: { code: 'too_many_pending', message: `${MAX_DEFERRED_PER_PRINCIPAL} of your requests already wait for a person` } };
  }
  const id = `jit-${randomBytes(6).toString('hex')}`;
  const now = core.clock.now();
  const tokenExpiresMs = ledger.tokenExpiryMs(session); // the token that asks: the grant never outlives it
  const until = Math.min(now + args.duration_seconds * 1000, tokenExpiresMs);
  const proposed = {
    id,
    principal: session.principal.id,
    targets: args.targets,
    // Bound to the token's task claim when it has one; otherwise to this principal and the token's lifetime.
    task: { ticket: args.task, purpose: args.purpose, ...(claim !== undefined ? { require_claim: true } : {}) },
    window: { from: new Date(now).toISOString(), to: new Date(until).toISOString() },
    rules: args.rules,
  };
  try {
    validateRuntimeGrant(core.config(), proposed); // staff are never asked to approve what could not be issued
  } catch (err) {
    if (isPenstockError(err)) return { ok: false, error: { code: 'invalid_request', message: err.message } };
    throw err;
  }
  const request = core.approvals.request({
    session: session.id,
    principal: session.principal.id,
    chain: session.chain,
    target: args.targets.join(' '),
    action: { target: args.targets[0]!, verb: 'other', object: { kind: 'mcp', tool: 'request_access', grant: proposed } },
    binding: ctx.binding,
  });
  const who = { session: session.id, principal: session.principal.id, chain: session.chain, listener: session.listener };
  try {
    await core.journal.append({ event: 'approval.requested', ...who, detail: { approval: request.id, kind: 'access_request', grant: proposed, correlation: ctx.correlation, binding: ctx.binding } });
  } catch {
    core.approvals.withdraw(request.id);
    return { ok: false, error: { code: 'journal_unavailable', message: 'the journal cannot be written, so no request can be made' } };
  }
  void request.outcome.then(async (outcome) => {
    const detail = { approval: request.id, kind: 'access_request', grant: id, reason: outcome.reason, ...(outcome.by ? { by: outcome.by } : {}), ...(outcome.note ? { note: outcome.note } : {}), correlation: ctx.correlation };
    if (!outcome.approved) {
      await core.journal.append({ event: outcome.reason === 'timed_out' ? 'approval.timed_out' : 'approval.refused', ...who, detail }).catch(() => {});
      return;
    }
    await core.journal.append({ event: 'approval.granted', ...who, detail }).catch(() => {});
    // The grant runs from the approval, for the time asked, and never past the token's expiry.
    const at = core.clock.now();
    const to = Math.min(at + args.duration_seconds * 1000, tokenExpiresMs);
    try {
      core.grants.issue({ ...proposed, window: { from: new Date(at).toISOString(), to: new Date(to).toISOString() } }, outcome.by!);
      // Forget grants that have ended on their own (window over, revoked by staff): the ledger stays small.
      for (const [other] of ledger.issued) {
        const g = core.grants.get(other);
        if (!g || g.revoked || !core.grants.isActive(g)) ledger.issued.delete(other);
      }
      ledger.issued.set(id, { principal: session.principal.id, task: args.task, session: session.id });
    } catch (err) {
      core.log.error({ err, grant: id }, 'approved access request could not be issued');
    }
  });
  const pending = core.approvals.get(request.id);
  return {
    ok: true,
    result: { status: 'pending_approval', request: request.id, grant: id, expires_at: pending?.expiresAt ?? '' },
    text: `pending_approval: request ${request.id} waits for a person on the gateway; grant ${id} appears in my_access once approved`,
  };
}

/** Revoke the just-in-time grants of one principal's task; the ids revoked. */
export function endTask(core: Core, ledger: AccessLedger, principal: string, task: string, reason: string): string[] {
  return revokeWhere(core, ledger, (g) => g.principal === principal && g.task === task, reason);
}

/** Revoke the just-in-time grants one MCP session asked for (its token has expired). */
export function endSessionAccess(core: Core, ledger: AccessLedger, sessionId: string, reason: string): string[] {
  return revokeWhere(core, ledger, (g) => g.session === sessionId, reason);
}

function revokeWhere(core: Core, ledger: AccessLedger, which: (g: { principal: string; task: string; session: string }) => boolean, reason: string): string[] {
  const revoked: string[] = [];
  for (const [id, g] of ledger.issued) {
    if (!which(g)) continue;
    ledger.issued.delete(id);
    const held = core.grants.get(id);
    if (!held || held.revoked) continue;
    core.grants.revoke(id, agentOperator(g.principal), reason);
    revoked.push(id);
  }
  return revoked;
}

async function presentEnvelopeRun(text: string, ctx: ToolContext): Promise<AgentToolResult> {
  const { core, session } = ctx;
  const refuse = async (code: string, message: string, extra: Record<string, unknown> = {}) => {
    await core.recordRefusal({ event: 'mcp.envelope_refused', listener: session.listener, session, detail: { reason: code, correlation: ctx.correlation, ...extra } });
    return { ok: false as const, error: { code, message } };
  };
  if (!core.importEnvelope) return refuse('PS_ENVELOPE_DISABLED', 'this gateway takes no envelopes');
  // Unverified, only to refuse early an envelope for someone else; the signature is checked on import.
  const claimed = describeEnvelope(text);
  if (claimed?.principal !== undefined && claimed.principal !== session.principal.id) {
    return refuse('envelope_not_yours', `the envelope is for ${claimed.principal.slice(0, 128)}, not for you`, { ...(claimed.jti ? { jti: claimed.jti } : {}) });
  }
  try {
    const imported = await core.importEnvelope(text, agentOperator(session.principal.id));
    return { ok: true, result: { grant: imported.id, jti: imported.jti, max_uses: imported.max_uses, expires: imported.expires } };
  } catch (err) {
    if (isPenstockError(err)) return refuse(err.code, err.message, { ...(claimed?.jti ? { jti: claimed.jti } : {}) });
    throw err;
  }
}
