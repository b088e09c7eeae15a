// Which of a principal's grants a session may use at all: a grant bound to a task (`task.require_claim`)
// only in a session whose credential names that task (the session's `task` attribute, e.g. an agent
// token's task claim). Policy (core) and what the agents' door lists both ask this one rule.
import type { HeldGrant } from './types.ts';

export function grantsForTask(held: HeldGrant[], task: string | undefined): HeldGrant[] {
  if (!held.some((g) => g.task.require_claim)) return held;
  return held.filter((g) => !g.task.require_claim || task === g.task.ticket);
}
