// The core's implementation: the one path every action takes (design.md), shared by all front doors.
//   decide → (wait for a person) → journal, durably before anything privileged is forwarded → count.
// It knows no wire format; adapters turn frames into Actions and Decisions back into frames.
import type { Logger } from 'pino';
import type { Clock } from '../common/clock.ts';
import { PenstockError, isPenstockError } from '../common/errors.ts';
import type { LoadedConfig } from '../config/types.ts';
import type { PrincipalConfig } from '../config/schema.ts';
import type { Journal, JournalEventInput } from '../journal/types.ts';
import type { Action, Decision, Verb } from '../policy/types.ts';
import { decide } from '../policy/decide.ts';
import { GrantStore } from '../grants/store.ts';
import type { GrantChange, HeldGrant, Operator } from '../grants/types.ts';
import { grantsForTask } from '../grants/task-claims.ts';
import { Approvals, MAX_DEFERRED_PER_PRINCIPAL } from '../approvals/approvals.ts';
import type { Vault } from '../vault/vault.ts';
import { Session, SessionRegistry, type SessionEnd } from '../sessions/registry.ts';
import type { AuthorizeOptions, Core, Refusal, WireRequest } from './core.ts';
import { ReadAggregator } from './reads.ts';
import { mintAuthorization, type PendingApprovalRef, type Verdict } from './authorization.ts';
import type { AlertRef, ContainmentHold } from '../alerts/types.ts';
import type { SessionView } from '../sessions/types.ts';

/** Verbs whose evidence may be aggregated; everything else is privileged and journaled before forwarding. */
const READ_VERBS: ReadonlySet<Verb> = new Set(['read', 'browse', 'subscribe', 'history']);

/** The grants a session may use (grants/task-claims.ts: task-bound grants only under their task's claim). */
function grantsFor(session: Session, held: HeldGrant[]): HeldGrant[] {
  return grantsForTask(held, session.attributes.task);
}

/** Denials within this many ms that make a burst (probing) alert. */
const DENIAL_BURST = { count: 10, windowMs: 10_000, quietMs: 60_000 };

export interface DaemonCoreOptions {
  clock: Clock;
  log: Logger;
  config: LoadedConfig;
  journal: Journal;
  grants: GrantStore;
  approvals: Approvals;
  vault: Vault;
  /** Grants with a bounded number of uses (envelopes): false refuses this session's use of the grant. */
  takeGrantUse?: (grantId: string, sessionId: string) => boolean;
  /** Envelope import (the daemon's ledger and pinned keys): Core.importEnvelope. */
  importEnvelope?: Core['importEnvelope'];
}

export class DaemonCore implements Core {
  readonly clock: Clock;
  readonly log: Logger;
  readonly journal: Journal;
  readonly sessions: SessionRegistry;
  readonly approvals: Approvals;
  readonly grants: GrantStore;
  readonly vault: Vault;
  #config: LoadedConfig;
  readonly #reads = new ReadAggregator();
  #lastReadFlushMs: number;
  readonly #denials = new Map<string, { times: number[]; alertedAt: number }>();
  /** Records being written in the background (session records, outcomes, refusals); see recorded(). */
  readonly #recording = new Set<Promise<unknown>>();
  readonly #takeGrantUse: DaemonCoreOptions['takeGrantUse'];
  /** Grants containment put under approval (`require_approval`): allow → approve until staff release them. */
  readonly #grantHolds = new Map<string, ContainmentHold>();
  readonly importEnvelope?: Core['importEnvelope'];

  constructor(opts: DaemonCoreOptions) {
    this.clock = opts.clock;
    this.log = opts.log;
    this.journal = opts.journal;
    this.grants = opts.grants;
    this.approvals = opts.approvals;
    this.vault = opts.vault;
    this.#config = opts.config;
    this.#takeGrantUse = opts.takeGrantUse;
    if (opts.importEnvelope) this.importEnvelope = opts.importEnvelope;
    this.#lastReadFlushMs = this.clock.now();
    this.sessions = new SessionRegistry({
      clock: this.clock,
      onOpen: (s) => this.#record({ event: 'session.opened', ...who(s), detail: { protocol: s.protocol, remote: s.remote, ...(Object.keys(s.attributes).length ? { attributes: s.attributes } : {}) } }),
      onEnd: (s, end) => this.#onSessionEnd(s, end),
    });
    this.grants.onChange((c) => this.#onGrantChange(c));
  }

  config(): LoadedConfig {
    return this.#config;
  }

  /**
   * Swap in a new config snapshot (already fully validated). Config grants are replaced, runtime grants
   * survive, and live sessions whose principal is gone, or whose grants no longer hold, are ended.
   */
  swapConfig(next: LoadedConfig): void {
    this.#config = next;
    this.grants.replaceConfigGrants(next.grants);
    const now = this.clock.now();
    for (const s of this.sessions.list()) {
      const principal = next.principals.get(s.principal.id);
      if (!principal) {
        s.terminate({ reason: 'grant_revoked', detail: 'principal removed from the configuration' });
        continue;
      }
      const held = this.grants.forPrincipal(s.principal.id);
      for (const grantId of s.grantsUsed) {
        const g = held.find((x) => x.id === grantId);
        if (!g || !this.grants.isActive(g, now)) {
          s.terminate({ reason: 'grant_revoked', detail: `grant ${grantId} no longer holds after reload` });
          break;
        }
      }
    }
  }

  /** A dry run of policy for `penstockctl policy check`: no journal, no counters, no approvals. */
  explain(principalId: string, action: Action): Decision {
    const principal = this.#config.principals.get(principalId);
    if (!principal) {
      return { effect: 'deny', reason: 'no_grant', explanation: `no principal named ${principalId}` };
    }
    const decision = this.#decide(principal, action, this.clock.now());
    const contained = this.#containedBy(undefined, decision);
    return contained ? { ...decision, effect: 'approve', explanation: heldExplanation(decision, contained) } : decision;
  }

  async authorize(session: Session, action: Action, opts: AuthorizeOptions = {}): Promise<Verdict> {
    return this.authorizeNow(session, action, opts);
  }

  /**
   * authorize() without a promise where nothing waits: an allowed read that goes into the session's
   * aggregate is decided, counted and proven synchronously (the front doors' hot path); whatever waits
   * for the journal or a person, and every refusal (journaled before it is answered), is a promise.
   */
  authorizeNow(session: Session, action: Action, opts: AuthorizeOptions = {}): Verdict | Promise<Verdict> {
    const now = this.clock.now();
    session.lastActivityMs = now;
    // The principal's grants, looked up once for the limits and the decision of this one action.
    const held = grantsFor(session, this.grants.forPrincipal(session.principal.id));
    let decision = this.#decide(session.principal, action, now, held);
    // The limits come after the decision only so that the grant about to be used counts for the rate.
    const limit = this.#checkSessionLimits(session, now, held, decision.grant, opts.request);
    if (limit) return this.#deny(session, action, limit);
    // Containment: an allow of a suspended session, or by a grant under approval, waits for a person.
    const contained = this.#containedBy(session, decision);
    if (contained) decision = { ...decision, effect: 'approve', explanation: heldExplanation(decision, contained) };

    const correlation = opts.correlation !== undefined ? { correlation: opts.correlation } : undefined;
    if (decision.effect === 'approve') return this.#approveThenConclude(session, action, decision, opts, correlation, contained, now);
    return this.#conclude(session, action, decision, opts, correlation, now);
  }

  async #approveThenConclude(session: Session, action: Action, decision: Decision, opts: AuthorizeOptions, correlation: Record<string, unknown> | undefined, contained: AlertRef | undefined, now: number): Promise<Verdict> {
    if (opts.approvalBinding !== undefined) {
      const deferred = await this.#deferredApproval(session, action, decision, opts.approvalBinding, correlation, contained);
      if (deferred.effect === 'approve') return { ...deferred, effect: 'approve', authorization: undefined };
      decision = deferred;
    } else {
      decision = await this.#waitForApproval(session, action, decision, opts.onApprovalPending, opts.deadlineMs, contained);
    }
    return this.#conclude(session, action, decision, opts, correlation, now);
  }

  /** After the decision (and any person): refuse, or journal as the verb requires and mint the proof. */
  #conclude(session: Session, action: Action, decision: Decision, opts: AuthorizeOptions, correlation: Record<string, unknown> | undefined, now: number): Verdict | Promise<Verdict> {
    if (decision.effect !== 'allow') return this.#deny(session, action, decision, correlation);
    // Taken here, synchronously after the final decision, so two sessions cannot both take the last use.
    if (decision.grant && this.#takeGrantUse && !this.#takeGrantUse(decision.grant, session.id)) {
      return this.#deny(session, action, { effect: 'deny', reason: 'grant_not_active', grant: decision.grant, explanation: `grant ${decision.grant} has no uses left` }, correlation);
    }
    if (!READ_VERBS.has(action.verb)) return this.#journalThenAllow(session, action, decision, opts, correlation);
    const cfg = this.#config.raw.journal;
    if (cfg.every_read) return this.#journalReadThenAllow(session, action, decision, correlation, cfg.reads_when_full);
    // Reads gate nothing and ride the next commit, but are refused like anything else while the journal
    // cannot be written (unless reads_when_full says otherwise).
    if (!this.journal.writable && !cfg.reads_when_full) return this.#deny(session, action, journalDown(undefined), correlation);
    if (correlation) {
      // A read that is one step of a correlated request (an agent's tool call) is its own event, so the
      // call's events stay together; like any read it gates nothing, so it rides the next commit.
      void this.#record({ event: 'action.allowed', ...who(session), target: action.target, action, decision, detail: correlation });
    } else {
      this.#reads.add(session.id, action, now);
    }
    return this.#allowed(session, action, decision);
  }

  /** journal.every_read: each read is its own record, written before the read goes out. */
  async #journalReadThenAllow(session: Session, action: Action, decision: Decision, correlation: Record<string, unknown> | undefined, readsWhenFull: boolean): Promise<Verdict> {
    try {
      await this.journal.append({ event: 'action.allowed', ...who(session), target: action.target, action, decision, ...(correlation ? { detail: correlation } : {}) });
    } catch (err) {
      if (!readsWhenFull) return this.#deny(session, action, journalDown(err), correlation);
    }
    return this.#allowed(session, action, decision);
  }

  /** No record, no action: the caller forwards only after this append resolved. */
  async #journalThenAllow(session: Session, action: Action, decision: Decision, opts: AuthorizeOptions, correlation: Record<string, unknown> | undefined): Promise<Verdict> {
    try {
      const evidence = opts.evidence ? await gatherEvidence(opts.evidence) : undefined;
      const detail = evidence || correlation ? { ...evidence, ...correlation } : undefined;
      await this.journal.append({ event: 'action.allowed', ...who(session), target: action.target, action, decision, ...(detail ? { detail } : {}) });
    } catch (err) {
      return this.#deny(session, action, journalDown(err), correlation);
    }
    return this.#allowed(session, action, decision);
  }

  #allowed(session: Session, action: Action, decision: Decision): Verdict {
    session.counters.allowed++;
    if (decision.grant) session.grantsUsed.add(decision.grant);
    const allowed = decision as Decision & { effect: 'allow' };
    return Object.assign(allowed, { authorization: mintAuthorization(session.id, action, allowed) });
  }

  async recordRefusal(r: Refusal): Promise<void> {
    await this.#record({
      event: r.event,
      ...(r.session ? who(r.session) : {}),
      ...(r.principal && !r.session ? { principal: r.principal } : {}),
      listener: r.listener,
      detail: { ...(r.remote ? { remote: r.remote } : {}), ...r.detail },
    });
  }

  async recordOutcome(session: Session, action: Action, outcome: Record<string, unknown>, opts: { correlation?: string } = {}): Promise<void> {
    await this.#record({ event: 'action.outcome', ...who(session), target: action.target, action, outcome, ...(opts.correlation !== undefined ? { detail: { correlation: opts.correlation } } : {}) });
  }

  recordDeliveries(session: Session, action: Action, count: number): void {
    // Not activity: a subscription left open does not keep an idle session alive.
    if (count > 0) this.#reads.add(session.id, action, this.clock.now(), 'notification', count);
  }

  /** Housekeeping, called by the daemon every second (and by tests with a manual clock). */
  async tick(): Promise<void> {
    const now = this.clock.now();
    this.grants.tick(now);
    this.approvals.tick(now);
    for (const s of this.sessions.list()) {
      const limit = this.#sessionExpiry(s, now);
      if (limit) s.terminate(limit);
    }
    if (now - this.#lastReadFlushMs >= this.#config.raw.journal.aggregate_reads_seconds * 1000) {
      this.#lastReadFlushMs = now;
      await Promise.all(this.#reads.sessions().map((id) => this.#flushReads(id, this.sessions.get(id))));
    }
  }

  /**
   * Resolves once every record started so far, and any record those start in turn, is committed or has
   * failed: what shutdown and tests await instead of sleeping for fire-and-forget records to land.
   */
  async recorded(): Promise<void> {
    while (this.#recording.size > 0) await Promise.allSettled([...this.#recording]);
  }

  /** On shutdown: end every session and write what is left of the read aggregates. */
  async drain(): Promise<void> {
    for (const s of this.sessions.list()) s.terminate({ reason: 'shutdown' });
    await Promise.all(this.#reads.sessions().map((id) => this.#flushReads(id, undefined)));
  }

  // ------------------------------------------------------------------ containment (alerts/containment.ts)

  /** `suspend`: every further action of this live session waits for a person. False if it has ended. */
  suspendSession(session: Session, alert: AlertRef): boolean {
    if (!session.active) return false;
    session.suspended ??= { alert: { ...alert }, since: this.clock.now() };
    return true;
  }

  /** `require_approval`: every allow by this grant becomes approve until released. False if there is no such grant. */
  requireApproval(grantId: string, alert: AlertRef): boolean {
    if (!this.grants.get(grantId)) return false;
    if (!this.#grantHolds.has(grantId)) this.#grantHolds.set(grantId, { alert: { ...alert }, since: this.clock.now() });
    return true;
  }

  /** Grants under approval by containment, with the alert that put them there. */
  grantHolds(): { grant: string; alert: AlertRef; since: string }[] {
    return [...this.#grantHolds].map(([grant, h]) => ({ grant, alert: { ...h.alert }, since: new Date(h.since).toISOString() }));
  }

  /** Staff lift a suspension (penstockctl sessions resume); journaled before it takes effect. */
  async resumeSession(id: string, by: Operator): Promise<SessionView> {
    const session = this.sessions.get(id);
    if (!session) throw new PenstockError('PS_SESSION_UNKNOWN', `no session ${id}`);
    const hold = session.suspended;
    if (!hold) throw new PenstockError('PS_NOT_CONTAINED', `session ${id} is not suspended`);
    await this.journal.append({ event: 'containment.lifted', ...who(session), detail: { action: 'suspend', session: id, alert: hold.alert, by } });
    // Only the suspension that was lifted: one a new alert set meanwhile stays.
    if (session.suspended === hold) session.suspended = undefined;
    return session.view();
  }

  /** Staff lift a grant's approval requirement (penstockctl grants release); journaled before it takes effect. */
  async releaseGrant(id: string, by: Operator): Promise<{ grant: string; alert: AlertRef }> {
    const hold = this.#grantHolds.get(id);
    if (!hold) throw new PenstockError('PS_NOT_CONTAINED', `grant ${id} does not require approval by containment`);
    const principal = this.grants.get(id)?.principal;
    await this.journal.append({ event: 'containment.lifted', ...(principal ? { principal } : {}), detail: { action: 'require_approval', grant: id, alert: hold.alert, by } });
    if (this.#grantHolds.get(id) === hold) this.#grantHolds.delete(id);
    return { grant: id, alert: { ...hold.alert } };
  }

  /** The alert holding this allow for a person: the session's suspension, else the grant's. */
  #containedBy(session: Session | undefined, decision: Decision): AlertRef | undefined {
    if (decision.effect !== 'allow') return undefined;
    return (session?.suspended ?? (decision.grant ? this.#grantHolds.get(decision.grant) : undefined))?.alert;
  }

  // ------------------------------------------------------------------ internals

  #decide(principal: PrincipalConfig, action: Action, now: number, held: readonly HeldGrant[] = this.grants.forPrincipal(principal.id)): Decision {
    return decide(action, {
      principal,
      grants: held,
      now,
      profiles: this.#config.profiles,
      targets: this.#config.targets,
    });
  }

  async #waitForApproval(session: Session, action: Action, asked: Decision, onPending?: (approvalId: string) => void, deadlineMs?: number, alert?: AlertRef): Promise<Decision> {
    const request = this.approvals.request({
      ...(alert ? { alert } : {}),
      ...(deadlineMs !== undefined ? { deadlineMs } : {}),
      session: session.id,
      principal: session.principal.id,
      chain: session.chain,
      target: action.target,
      action,
      ...(asked.grant ? { grant: asked.grant } : {}),
      ...(asked.rule ? { rule: asked.rule } : {}),
    });
    try {
      await this.journal.append({ event: 'approval.requested', ...who(session), action, decision: asked, detail: { approval: request.id, ...(alert ? { alert } : {}) } });
    } catch (err) {
      this.approvals.cancel(session.id);
      return journalDown(err);
    }
    session.pendingApproval = request.id;
    onPending?.(request.id);
    const outcome = await request.outcome;
    session.pendingApproval = undefined;
    const detail = { approval: request.id, reason: outcome.reason, ...(outcome.note ? { note: outcome.note } : {}), ...(outcome.by ? { by: outcome.by } : {}) };
    if (!outcome.approved) {
      await this.#record({ event: outcome.reason === 'timed_out' ? 'approval.timed_out' : 'approval.refused', ...who(session), action, detail });
      return {
        effect: 'deny',
        reason: 'approval_refused',
        ...(asked.grant ? { grant: asked.grant } : {}),
        ...(asked.rule ? { rule: asked.rule } : {}),
        explanation: `approval ${request.id} ${outcome.reason === 'timed_out' ? 'timed out' : 'was refused'}`,
      };
    }
    await this.#record({ event: 'approval.granted', ...who(session), action, detail });
    // The world may have changed while a person decided: the grant must still hold now.
    const again = this.#decide(session.principal, action, this.clock.now(), grantsFor(session, this.grants.forPrincipal(session.principal.id)));
    if (again.effect === 'deny') return again;
    if (!session.active) return { effect: 'deny', reason: 'session_limit', explanation: 'the session ended while waiting for approval' };
    return { ...asked, effect: 'allow', explanation: `${asked.explanation}; approved by uid ${outcome.by?.uid ?? '?'} (${request.id})` };
  }

  /**
   * An approve rule, for a caller that cannot wait (AuthorizeOptions.approvalBinding): use an approval
   * of these exact arguments if a person gave one, else answer at once with the pending request (asked
   * now, or already waiting). The approval's answer is journaled when it comes.
   */
  async #deferredApproval(session: Session, action: Action, asked: Decision, binding: string, correlation: Record<string, unknown> | undefined, alert?: AlertRef): Promise<Decision & { approval?: PendingApprovalRef }> {
    const principal = session.principal.id;
    const used = this.approvals.takeApproved(principal, binding, action.target);
    if (used) {
      // The decision was made now (the grant still holds); the record of the allow names the approval.
      return { ...asked, effect: 'allow', explanation: `${asked.explanation}; approved by uid ${used.by?.uid ?? '?'} (${used.id}, bound to these arguments)` };
    }
    const base = { ...asked, effect: 'approve' as const };
    const waiting = this.approvals.pendingFor(principal, binding);
    if (waiting) {
      return { ...base, explanation: `approval ${waiting.id} is waiting for a person`, approval: { id: waiting.id, expiresAt: waiting.expiresAt, binding } };
    }
    if (this.approvals.deferredWaiting(principal) >= MAX_DEFERRED_PER_PRINCIPAL) {
      return { effect: 'deny', reason: 'session_limit', ...(asked.grant ? { grant: asked.grant } : {}), ...(asked.rule ? { rule: asked.rule } : {}), explanation: `${MAX_DEFERRED_PER_PRINCIPAL} approvals already wait for a person; ask again once some are answered` };
    }
    const request = this.approvals.request({
      session: session.id,
      principal,
      chain: session.chain,
      target: action.target,
      action,
      binding,
      ...(alert ? { alert } : {}),
      ...(asked.grant ? { grant: asked.grant } : {}),
      ...(asked.rule ? { rule: asked.rule } : {}),
    });
    try {
      await this.journal.append({ event: 'approval.requested', ...who(session), action, decision: asked, detail: { approval: request.id, binding, ...(alert ? { alert } : {}), ...correlation } });
    } catch (err) {
      this.approvals.withdraw(request.id);
      return journalDown(err);
    }
    // Not tracked while it waits (recorded() must not wait for a person); the record is, once answered.
    void request.outcome.then((outcome) => {
      const detail = { approval: request.id, binding, reason: outcome.reason, ...(outcome.note ? { note: outcome.note } : {}), ...(outcome.by ? { by: outcome.by } : {}), ...correlation };
      const event = outcome.approved ? 'approval.granted' : outcome.reason === 'timed_out' ? 'approval.timed_out' : 'approval.refused';
      return this.#record({ event, ...who(session), action, detail });
    });
    const pending = this.approvals.get(request.id);
    return { ...base, explanation: `approval ${request.id} asked of a person: call again with the same arguments once approved`, approval: { id: request.id, expiresAt: pending?.expiresAt ?? '', binding } };
  }

  #checkSessionLimits(session: Session, now: number, held: readonly HeldGrant[], grant: string | undefined, request?: WireRequest): Decision | undefined {
    if (!session.active) return { effect: 'deny', reason: 'session_limit', explanation: 'the session has ended' };
    const expiry = this.#sessionExpiry(session, now, held);
    if (expiry) {
      session.terminate(expiry);
      return { effect: 'deny', reason: 'session_limit', explanation: `session ended: ${expiry.detail}` };
    }
    if (request?.rate !== undefined) return request.rate === 'admitted' ? undefined : request.rate;
    const refusal = this.#takeToken(session, now, held, grant);
    if (request) request.rate = refusal ?? 'admitted';
    return refusal;
  }

  /**
   * Token bucket: a burst of one second's worth, refilled continuously, at the listed rate or the
   * lowest `limits.actions_per_second` of the grants this session has used or is about to use.
   */
  #takeToken(session: Session, now: number, held: readonly HeldGrant[], grant: string | undefined): Decision | undefined {
    let rate = this.#config.raw.sessions.actions_per_second;
    for (const g of held) {
      if ((g.id === grant || session.grantsUsed.has(g.id)) && g.limits?.actions_per_second) rate = Math.min(rate, g.limits.actions_per_second);
    }
    if (session.tokens === Number.POSITIVE_INFINITY) session.tokens = rate;
    session.tokens = Math.min(rate, session.tokens + ((now - session.tokensAtMs) / 1000) * rate);
    session.tokensAtMs = now;
    if (session.tokens < 1) return { effect: 'deny', reason: 'session_limit', explanation: `rate limit of ${rate} actions per second reached` };
    session.tokens -= 1;
    return undefined;
  }

  #sessionExpiry(session: Session, now: number, held: readonly HeldGrant[] = this.grants.forPrincipal(session.principal.id)): SessionEnd | undefined {
    const cfg = this.#config.raw.sessions;
    let maxSeconds = cfg.max_duration_seconds;
    for (const g of held) {
      if (session.grantsUsed.has(g.id) && g.limits?.max_session_seconds) maxSeconds = Math.min(maxSeconds, g.limits.max_session_seconds);
    }
    if (now - session.startedMs >= maxSeconds * 1000) return { reason: 'max_duration', detail: `maximum session duration of ${maxSeconds} s reached` };
    if (now - session.lastActivityMs >= cfg.idle_seconds * 1000 && session.pendingApproval === undefined) {
      return { reason: 'idle', detail: `idle for ${cfg.idle_seconds} s` };
    }
    return undefined;
  }

  async #deny(session: Session, action: Action, decision: Decision, detail?: Record<string, unknown>): Promise<Verdict> {
    session.counters.denied++;
    await this.#record({ event: 'action.denied', ...who(session), target: action.target, action, decision, ...(detail ? { detail } : {}) });
    this.#watchDenials(session);
    // Whatever the decision said, nothing refused carries a proof: an allow that failed afterwards
    // (the journal) was turned into a deny before it got here.
    return { ...decision, effect: decision.effect === 'allow' ? 'deny' : decision.effect, authorization: undefined };
  }

  #watchDenials(session: Session): void {
    const now = this.clock.now();
    const key = session.principal.id;
    const w = this.#denials.get(key) ?? { times: [], alertedAt: -Infinity };
    w.times = w.times.filter((t) => now - t < DENIAL_BURST.windowMs);
    w.times.push(now);
    this.#denials.set(key, w);
    if (w.times.length >= DENIAL_BURST.count && now - w.alertedAt >= DENIAL_BURST.quietMs) {
      w.alertedAt = now;
      this.log.warn({ principal: key, denials: w.times.length }, 'denial burst: possible probing');
      void this.#record({ event: 'alert.denial_burst', ...who(session), detail: { denials: w.times.length, window_seconds: DENIAL_BURST.windowMs / 1000 } });
    }
  }

  #onSessionEnd(session: Session, end: SessionEnd): void {
    this.approvals.cancel(session.id);
    void this.#track(this.#flushReads(session.id, session).then(() =>
      this.#record({
        event: end.reason === 'killed' ? 'session.killed' : 'session.closed',
        ...who(session),
        detail: { reason: end.reason, ...(end.detail ? { detail: end.detail } : {}), ...(end.by ? { by: end.by } : {}), counters: { ...session.counters } },
      }),
    ));
  }

  #onGrantChange(change: GrantChange): void {
    const g = change.grant;
    if (change.kind === 'issued') {
      void this.#record({ event: 'grant.issued', principal: g.principal, detail: { grant: g.id, ticket: g.task.ticket, targets: g.targets, by: g.issued?.by } });
      return;
    }
    // A revoked grant allows nothing again: its hold has nothing left to hold (an expired one may return).
    if (change.kind === 'revoked') this.#grantHolds.delete(g.id);
    const reason = change.kind === 'revoked' ? 'grant_revoked' : 'grant_expired';
    const ended = this.sessions.endSessionsUsingGrant(g.id, { reason, detail: `grant ${g.id} ${change.kind}` });
    void this.#record({
      event: change.kind === 'revoked' ? 'grant.revoked' : 'grant.expired',
      principal: g.principal,
      detail: { grant: g.id, sessions_ended: ended.map((s) => s.id), ...(g.revoked ? { by: g.revoked.by, reason: g.revoked.reason } : {}) },
    });
  }

  async #flushReads(sessionId: string, session: Session | undefined): Promise<void> {
    const reads = this.#reads.take(sessionId);
    if (reads.length === 0) return;
    await this.#record({ event: 'reads.aggregate', session: sessionId, ...(session ? who(session) : {}), detail: { reads } });
  }

  /**
   * Journal something that gates nothing (outcomes, session records, denials, aggregates): lazily, so it
   * rides with the next commit instead of costing an fsync of its own; a failure is logged (the journal
   * raises its own alert).
   */
  #record(input: JournalEventInput): Promise<void> {
    return this.#track(this.#append(input));
  }

  async #append(input: JournalEventInput): Promise<void> {
    try {
      await this.journal.append(input, { lazy: true });
    } catch (err) {
      this.log.error({ err, event: input.event }, 'journal append failed');
    }
  }

  #track<T>(work: Promise<T>): Promise<T> {
    this.#recording.add(work);
    const done = () => this.#recording.delete(work);
    work.then(done, done);
    return work;
  }
}

function who(s: Session): Pick<JournalEventInput, 'session' | 'principal' | 'chain' | 'target' | 'listener'> {
  return { session: s.id, principal: s.principal.id, chain: s.chain, ...(s.target ? { target: s.target } : {}), listener: s.listener };
}

function heldExplanation(decision: Decision, alert: AlertRef): string {
  return `${decision.explanation}; held for a person by containment of alert.${alert.kind} (journal seq ${alert.seq})`;
}

function journalDown(err: unknown): Decision {
  const why = isPenstockError(err) ? err.message : 'journal not writable';
  return { effect: 'deny', reason: 'journal_unavailable', explanation: `refused because the journal cannot be written (${why})` };
}

/** Evidence that could not be gathered is recorded as such: the action still goes on the record. */
async function gatherEvidence(fn: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
  try {
    return await fn();
  } catch (err) {
    return { evidence_unavailable: (err as Error).message.slice(0, 200) };
  }
}
