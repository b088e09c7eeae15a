// What the admin socket needs from the daemon. The command handlers see only this narrow view of the
// core (`AdminCore`), so they can be tested with small in-test objects and so the admin part does not
// depend on how the core is built. The daemon passes its real Core, which satisfies AdminCore.
import type { z } from 'zod';
import type { PendingApproval } from '../approvals/approvals.ts';
import type { Clock } from '../common/clock.ts';
import type { ConfigIssue, FirmwareProfile, TargetConfig } from '../config/types.ts';
import type { GrantConfig } from '../config/schema.ts';
import type { HeldGrant, Operator } from '../grants/types.ts';
import type { Action, Decision } from '../policy/types.ts';
import type { SessionView } from '../sessions/types.ts';
import type { SessionEnd } from '../sessions/registry.ts';
import type { AlertRef } from '../alerts/types.ts';

export type { Operator } from '../grants/types.ts';

export interface AdminCore {
  readonly clock: Clock;
  readonly sessions: {
    list(): ReadonlyArray<{ view(): SessionView }>;
    kill(id: string, end: SessionEnd): SessionView;
  };
  readonly grants: {
    list(): readonly HeldGrant[];
    isActive(grant: HeldGrant, nowMs: number): boolean;
    /** Validates the grant against the current config (targets, principal) and issues it. */
    issue(grant: GrantConfig, by: Operator): unknown;
    revoke(id: string, by: Operator, reason: string): unknown;
  };
  readonly approvals: {
    list(): readonly PendingApproval[];
    approve(id: string, by: Operator, note?: string): unknown;
    deny(id: string, by: Operator, note?: string): unknown;
  };
  /** A dry run of policy: the principal's current grants, now; no journal, no counters, no approvals. */
  explain(principal: string, action: Action): Decision;
  /** Containment (alerts/containment.ts): lift a suspension, lift a grant's approval requirement, list those. */
  resumeSession?(id: string, by: Operator): Promise<SessionView>;
  releaseGrant?(id: string, by: Operator): Promise<{ grant: string; alert: AlertRef }>;
  grantHolds?(): { grant: string; alert: AlertRef; since: string }[];
  /** The running config's targets and firmware profiles (what `journal.observed` says of the targets it names). */
  config?(): { targets: ReadonlyMap<string, TargetConfig>; profiles: ReadonlyMap<string, FirmwareProfile> };
}

export interface AdminContext {
  core: AdminCore;
  /** Reload the config file the daemon runs on: swapped whole, or not at all. */
  reload(): Promise<{ ok: boolean; issues: ConfigIssue[] }>;
  /**
   * Validate config text sent by the operator, without applying it. `name` only labels the issues: the
   * daemon never opens a path an admin client names (it would read with the daemon's rights).
   */
  checkConfig(text: string, name: string): { issues: ConfigIssue[] };
  /** Verify a signed grant envelope offline against the pinned keys and issue its grant (grants/envelope.ts). */
  importEnvelope?(text: string, by: Operator): Promise<unknown>;
  /** Appliance id, version, uptime, listeners with bound addresses, counts. */
  status(): Record<string, unknown>;
  /** The journal, for the journal.* commands the daemon adds to the table. */
  journal?: unknown;
}

export interface CommandContext {
  operator: Operator;
  context: AdminContext;
}

export interface AdminCommand {
  /** True when the command changes state: it is audited (journaled) before it runs, or not run at all. */
  mutates: boolean;
  /** Strict schema of the params; a request that fails it is refused with the field named. */
  params: z.ZodType;
  handler: (params: never, ctx: CommandContext) => Promise<unknown>;
}

/** The allowlist: a command not in this table is refused (and audited). */
export type AdminCommandTable = Record<string, AdminCommand>;

/**
 * One audit record. A state-changing command produces `phase: 'before'` (ok: true — admitted, about to
 * run; the handler runs only if this audit resolved) and, if its handler then fails or it is refused
 * (bad params, unverified peer), `phase: 'after'` with ok: false — each on its own. Everything that
 * changes nothing (read-only commands, unknown commands, malformed or oversize requests, connections
 * refused as too many) is counted and comes as `phase: 'aggregate'` records, one per command, operator
 * and outcome per interval, with `count`, `first` and `last` (see read-audit.ts).
 */
export interface AdminAuditEntry {
  command: string;
  operator: Operator;
  params: unknown;
  ok: boolean;
  error?: string;
  phase: 'before' | 'after' | 'aggregate';
  /** Aggregates only: how many such requests, and when the first and last came (ISO 8601). */
  count?: number;
  first?: string;
  last?: string;
}

export type AdminAudit = (entry: AdminAuditEntry) => Promise<void>;

/** The few logger methods the admin server uses (a pino Logger satisfies it). */
export interface AdminLog {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
