// The `my_access` tool: what the calling principal may do now — its grants, their limits and windows, and
// its approvals waiting for a person. It names no target's protocol and acts on nothing.
//
// It is answered without a policy decision, on purpose: it discloses only the caller's own grants (as
// `penstockctl grants list` would to staff), and there is no rule that could grant or deny reading them.
// Every later tool that acts on a target goes through core.authorize.
import { z } from 'zod';
import type { Core } from '../../core/core.ts';
import type { Session } from '../../sessions/registry.ts';

const grantShape = z.object({
  id: z.string(),
  targets: z.array(z.string()),
  task: z.object({ ticket: z.string(), purpose: z.string().optional(), require_claim: z.boolean().optional() }),
  active: z.boolean(),
  window_end: z.string().optional(),
  limits: z.object({ max_session_seconds: z.number().optional(), actions_per_second: z.number().optional() }).optional(),
});

/** The structured result, declared to the client as the tool's outputSchema. */
export const myAccessOutput = {
  principal: z.string(),
  chain: z.array(z.string()),
  grants: z.array(grantShape),
  pending_approvals: z.array(z.object({ id: z.string(), target: z.string(), since: z.string(), expires_at: z.string(), arguments_sha256: z.string().optional() })),
};

export function myAccess(core: Core, session: Session): { [K in keyof typeof myAccessOutput]: z.output<(typeof myAccessOutput)[K]> } {
  const now = core.clock.now();
  const principal = session.principal.id;
  return {
    principal,
    chain: [...session.chain],
    grants: core.grants.forPrincipal(principal).filter((g) => !g.revoked).map((g) => ({
      id: g.id,
      targets: [...g.targets],
      task: { ticket: g.task.ticket, ...(g.task.purpose !== undefined ? { purpose: g.task.purpose } : {}), ...(g.task.require_claim ? { require_claim: true } : {}) },
      active: core.grants.isActive(g, now),
      ...(g.window ? { window_end: g.window.to } : {}),
      ...(g.limits ? { limits: { ...g.limits } } : {}),
    })),
    pending_approvals: core.approvals.list().filter((a) => a.principal === principal).map((a) => ({ id: a.id, target: a.target, since: a.since, expires_at: a.expiresAt, ...(a.binding ? { arguments_sha256: a.binding } : {}) })),
  };
}
