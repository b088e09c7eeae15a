// Step-up approvals: an `approve` decision parks the action until a person on the gateway says yes
// or no (`penstockctl approvals approve|deny ID`), the session ends, or the time-out passes. Each
// request resolves exactly once; its outcome promise never rejects. Given a scheduler, each request
// times out on a timer of its own, at its expiry, so a client waiting with a deadline hears the refusal
// before it gives up; tick() (the daemon's one-second housekeeping, or a test) catches anything else.
import { randomBytes } from 'node:crypto';
import type { Clock, Scheduler, TimerHandle } from '../common/clock.ts';
import { PenstockError } from '../common/errors.ts';
import type { Operator } from '../grants/types.ts';
import type { Action } from '../policy/types.ts';
import type { AlertRef } from '../alerts/types.ts';

export interface ApprovalOutcome {
  approved: boolean;
  /** The person who approved or refused (absent for time-outs and cancellations). */
  by?: Operator;
  reason: 'approved' | 'refused' | 'timed_out' | 'cancelled';
  note?: string;
  /** When it was resolved (ISO 8601). */
  at: string;
}

export interface ApprovalRequest {
  session: string;
  principal: string;
  chain: string[];
  target: string;
  action: Action;
  grant?: string;
  rule?: string;
  /**
   * The latest the request that asked may still be answered (clock ms): a client's own time-out. An
   * approval is for a request that is still waiting; past this it times out like any unanswered one.
   */
  deadlineMs?: number;
  /**
   * Deferred: nobody waits on the outcome. The request is bound to the SHA-256 of the call's canonical
   * arguments; once approved, the same principal's call with the same binding may run on it, once
   * (takeApproved), until it lapses a time-out after the approval.
   */
  binding?: string;
  /** Asked only because containment holds the session or grant (alerts/containment.ts): the alert that did. */
  alert?: AlertRef;
}

export interface PendingApproval extends Omit<ApprovalRequest, 'deadlineMs'> {
  id: string;
  /** When it was asked (ISO 8601). */
  since: string;
  /** When it times out unless someone answers (ISO 8601). */
  expiresAt: string;
}

export interface ApprovalsOptions {
  /** With setTimeout (a Scheduler), each request gets a timer at its expiry. */
  clock: Clock | Scheduler;
  timeoutMs: number;
  newId?: () => string;
}

interface Approved {
  id: string;
  principal: string;
  target: string;
  by?: Operator;
  expiresMs: number;
}

interface Entry {
  pending: PendingApproval;
  expiresMs: number;
  resolve: (o: ApprovalOutcome) => void;
  timer?: TimerHandle;
}

/**
 * Deferred requests (bound to arguments) one principal may have waiting at once: an agent that asks and
 * asks cannot bury plant staff's list.
 */
export const MAX_DEFERRED_PER_PRINCIPAL = 16;

/** How many resolved ids are remembered, so a late second answer gets a clear message. */
const REMEMBERED = 256;

function defaultId(): string {
  return `ap-${randomBytes(5).toString('hex')}`;
}

export class Approvals {
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #newId: () => string;
  readonly #pending = new Map<string, Entry>();
  readonly #resolved = new Map<string, ApprovalOutcome>();
  /** Deferred approvals approved and not yet used, by `principal binding`. */
  readonly #approved = new Map<string, Approved>();

  constructor(options: ApprovalsOptions) {
    if (!(options.timeoutMs > 0)) throw new PenstockError('PS_INTERNAL', `approval time-out must be positive, not ${options.timeoutMs}`);
    this.#clock = options.clock;
    this.#timeoutMs = options.timeoutMs;
    this.#newId = options.newId ?? defaultId;
  }

  request(p: ApprovalRequest): { id: string; outcome: Promise<ApprovalOutcome> } {
    let id = this.#newId();
    for (let tries = 0; this.#pending.has(id) || this.#resolved.has(id); tries++) {
      if (tries > 16) throw new PenstockError('PS_INTERNAL', 'approval id generator keeps repeating ids');
      id = this.#newId();
    }
    const now = this.#clock.now();
    const expiresMs = Math.min(now + this.#timeoutMs, p.deadlineMs ?? Infinity);
    let resolve!: (o: ApprovalOutcome) => void;
    const outcome = new Promise<ApprovalOutcome>((r) => (resolve = r));
    const pending: PendingApproval = {
      id,
      session: p.session,
      principal: p.principal,
      chain: [...p.chain],
      target: p.target,
      action: structuredClone(p.action),
      ...(p.grant !== undefined ? { grant: p.grant } : {}),
      ...(p.rule !== undefined ? { rule: p.rule } : {}),
      ...(p.binding !== undefined ? { binding: p.binding } : {}),
      ...(p.alert !== undefined ? { alert: { ...p.alert } } : {}),
      since: new Date(now).toISOString(),
      expiresAt: new Date(expiresMs).toISOString(),
    };
    const entry: Entry = { pending, expiresMs, resolve };
    const scheduler = this.#clock as Partial<Scheduler>;
    if (typeof scheduler.setTimeout === 'function') {
      entry.timer = scheduler.setTimeout(() => {
        if (this.#pending.get(id) === entry) this.#settle(id, entry, { approved: false, reason: 'timed_out' });
      }, expiresMs - now);
      entry.timer.unref();
    }
    this.#pending.set(id, entry);
    return { id, outcome };
  }

  /** Pending requests, oldest first. */
  list(): PendingApproval[] {
    return [...this.#pending.values()].map((e) => structuredClone(e.pending));
  }

  get(id: string): PendingApproval | undefined {
    const e = this.#pending.get(id);
    return e && structuredClone(e.pending);
  }

  /** How many deferred requests of this principal wait for a person. */
  deferredWaiting(principal: string): number {
    let n = 0;
    for (const e of this.#pending.values()) if (e.pending.principal === principal && e.pending.binding !== undefined) n++;
    return n;
  }

  /** The deferred request still waiting for a person for this principal and binding, if any. */
  pendingFor(principal: string, binding: string): PendingApproval | undefined {
    for (const e of this.#pending.values()) {
      if (e.pending.binding === binding && e.pending.principal === principal) return structuredClone(e.pending);
    }
    return undefined;
  }

  /**
   * Use a deferred approval: the approved, unused, unexpired one for this principal, binding and target,
   * which is then gone (one approval, one run).
   */
  takeApproved(principal: string, binding: string, target: string, nowMs: number = this.#clock.now()): { id: string; by?: Operator } | undefined {
    const key = `${principal} ${binding}`;
    const a = this.#approved.get(key);
    if (!a || a.target !== target) return undefined;
    this.#approved.delete(key);
    if (a.expiresMs <= nowMs) return undefined;
    return { id: a.id, ...(a.by ? { by: a.by } : {}) };
  }

  approve(id: string, by: Operator, note?: string): ApprovalOutcome {
    return this.#answer(id, { approved: true, by: { ...by }, reason: 'approved', ...(note !== undefined ? { note } : {}) });
  }

  deny(id: string, by: Operator, note?: string): ApprovalOutcome {
    return this.#answer(id, { approved: false, by: { ...by }, reason: 'refused', ...(note !== undefined ? { note } : {}) });
  }

  /**
   * The session ended: the requests it was waiting on resolve as cancelled. Returns how many. Deferred
   * requests (bound to arguments) nobody waits on: they stay for the principal's next session, until
   * answered or timed out.
   */
  cancel(sessionId: string): number {
    let n = 0;
    for (const [id, e] of this.#pending) {
      if (e.pending.session !== sessionId || e.pending.binding !== undefined) continue;
      this.#settle(id, e, { approved: false, reason: 'cancelled' });
      n++;
    }
    return n;
  }

  /** Withdraw one request nobody can act on (its record could not be written): it resolves as cancelled. */
  withdraw(id: string): void {
    const e = this.#pending.get(id);
    if (e) this.#settle(id, e, { approved: false, reason: 'cancelled' });
  }

  /** Time out every request whose time is up; returns the ids timed out. */
  tick(nowMs: number = this.#clock.now()): string[] {
    const out: string[] = [];
    for (const [id, e] of this.#pending) {
      if (e.expiresMs > nowMs) continue;
      this.#settle(id, e, { approved: false, reason: 'timed_out' });
      out.push(id);
    }
    return out;
  }

  /** When tick() should run next: the earliest time-out, if anything is pending. */
  nextTimeout(): number | undefined {
    let best: number | undefined;
    for (const e of this.#pending.values()) if (best === undefined || e.expiresMs < best) best = e.expiresMs;
    return best;
  }

  #answer(id: string, outcome: Omit<ApprovalOutcome, 'at'>): ApprovalOutcome {
    const e = this.#pending.get(id);
    if (!e) {
      const done = this.#resolved.get(id);
      const msg = done ? `approval ${id} was already resolved (${done.reason}${done.by ? ` by uid ${done.by.uid}` : ''} at ${done.at})` : `no pending approval ${id}`;
      throw new PenstockError('PS_APPROVAL_UNKNOWN', msg, { id });
    }
    // A request whose time is up is no longer answerable, even if tick() has not run yet.
    if (e.expiresMs <= this.#clock.now()) {
      const timedOut = this.#settle(id, e, { approved: false, reason: 'timed_out' });
      throw new PenstockError('PS_APPROVAL_UNKNOWN', `approval ${id} timed out at ${timedOut.at}`, { id });
    }
    return this.#settle(id, e, outcome);
  }

  #settle(id: string, e: Entry, outcome: Omit<ApprovalOutcome, 'at'>): ApprovalOutcome {
    const final: ApprovalOutcome = { ...outcome, at: new Date(this.#clock.now()).toISOString() };
    this.#pending.delete(id);
    if (e.timer) (this.#clock as Scheduler).clearTimeout(e.timer);
    this.#resolved.set(id, final);
    const p = e.pending;
    if (final.approved && p.binding !== undefined) {
      // Usable for as long again as a request may wait: the agent asks again when it learns of the approval.
      const approved: Approved = { id, principal: p.principal, target: p.target, expiresMs: this.#clock.now() + this.#timeoutMs, ...(final.by ? { by: final.by } : {}) };
      this.#approved.set(`${p.principal} ${p.binding}`, approved);
      if (this.#approved.size > REMEMBERED) this.#approved.delete(this.#approved.keys().next().value!);
    }
    if (this.#resolved.size > REMEMBERED) this.#resolved.delete(this.#resolved.keys().next().value!);
    e.resolve(final);
    return final;
  }
}
