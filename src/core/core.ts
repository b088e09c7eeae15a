// The core every adapter plugs into: current config, policy gate, journal, sessions, approvals,
// grants, vault. It knows no wire format.
import type { Logger } from 'pino';
import type { Clock } from '../common/clock.ts';
import type { LoadedConfig } from '../config/types.ts';
import type { Journal } from '../journal/types.ts';
import type { Action, Decision } from '../policy/types.ts';
import type { Session, SessionRegistry } from '../sessions/registry.ts';
import type { Approvals } from '../approvals/approvals.ts';
import type { GrantStore } from '../grants/store.ts';
import type { Vault } from '../vault/vault.ts';
import type { Operator } from '../grants/types.ts';
import type { Verdict } from './authorization.ts';
export type { Authorization, Verdict } from './authorization.ts';

export interface Refusal {
  /** A shared refusal event, or a front door's own `<protocol>.<what>_refused` (registered in journal/codes.ts). */
  event: 'auth.failed' | 'auth.rate_limited' | 'action.malformed' | 'alert.delegation_mismatch' | `${string}.${string}_refused`;
  listener: string;
  remote?: string;
  session?: Session;
  /** The principal claimed or identified, when there is one. */
  principal?: string;
  detail: Record<string, unknown>;
}

/**
 * The items of one request on the wire (a batch of reads, writes or calls) share it: the request takes
 * one rate-limit token however many items it carries, as a request of one item does.
 */
export interface WireRequest {
  /** Set by the core at the first item: admitted, or the limit refusal every item then gets. */
  rate?: 'admitted' | Decision;
}

export interface AuthorizeOptions {
  /** The wire request this action is one item of (one rate-limit token per request). */
  request?: WireRequest;
  /**
   * For a privileged action: what the record made before forwarding should also hold (the value about
   * to be overwritten, the arguments of a call). Called once the action is allowed — after any
   * approval — and before the durable record; its result goes into that record's detail.
   */
  evidence?: () => Promise<Record<string, unknown>>;
  /** Told the approval request's id once it is journaled and waiting for a person (to say so to the user). */
  onApprovalPending?: (approvalId: string) => void;
  /** When the client stops waiting for this request (clock ms): an approval cannot come later than this. */
  deadlineMs?: number;
  /**
   * Ties every event of one request (an agent's tool call) together: it goes into the detail of the
   * decision's, the approval's and the outcome's events, and each read is journaled on its own rather
   * than folded into the session's read aggregate.
   */
  correlation?: string;
  /**
   * Deferred approval, bound to these exact arguments (the SHA-256 of their canonical form): an approve
   * rule does not hold the request; the verdict says `approve` at once with the pending approval's id.
   * Once a person approves, the same principal's next action with the same binding runs on it, once.
   */
  approvalBinding?: string;
}

export interface Core {
  readonly clock: Clock;
  readonly log: Logger;
  /** The current config snapshot; a reload swaps it whole. Never cache it across requests. */
  config(): LoadedConfig;
  readonly journal: Journal;
  readonly sessions: SessionRegistry;
  readonly approvals: Approvals;
  readonly grants: GrantStore;
  readonly vault: Vault;
  /**
   * Verify a pre-authorised envelope offline and issue its grant (what `penstockctl grants import` does),
   * for an agent presenting one; absent when the gateway pins no envelope keys. Throws PS_ENVELOPE_*.
   */
  importEnvelope?(text: string, by: Operator): Promise<{ id: string; jti: string; iss: string; max_uses: number; expires: string }>;
  /**
   * The one path every action takes: decide, wait for a person if the rule says approve, journal
   * (durably before returning for anything but a read), count. An allow carries its Authorization,
   * the proof every forwarding function requires; nothing else does.
   */
  authorize(session: Session, action: Action, opts?: AuthorizeOptions): Promise<Verdict>;
  /**
   * authorize(), answered synchronously when nothing has to wait (an allowed read that goes into the
   * session's read aggregate), else the same promise: for a front door's per-request hot path. Optional:
   * a core without it is asked through authorize().
   */
  authorizeNow?(session: Session, action: Action, opts?: AuthorizeOptions): Verdict | Promise<Verdict>;
  /** A dry run of policy for `penstockctl policy check`: no journal, no counters, no approvals. */
  explain(principalId: string, action: Action): Decision;
  /**
   * Journal a refusal policy never saw: a failed or rate-limited login, a malformed frame. Never
   * throws (a journal failure is logged; the journal raises its own alert).
   */
  recordRefusal(refusal: Refusal): Promise<void>;
  /** Journal what happened upstream after an allowed privileged action (or an upstream failure). */
  recordOutcome(session: Session, action: Action, outcome: Record<string, unknown>, opts?: { correlation?: string }): Promise<void>;
  /**
   * Count values pushed to a session without a request of their own (a subscription's notifications
   * on the object `action` names, already allowed when the subscription was made). Goes into the
   * session's read aggregate, marked `kind: notification`; no decision, no journal write now.
   */
  recordDeliveries(session: Session, action: Action, count: number): void;
}
