// Containment: what Penstock does on its own when an alert is raised. The engine calls apply() for each
// alert it journaled; config `alerts.<kind>.action` says what to do:
//   log               nothing beyond the alert itself;
//   suspend           every further action of the session waits for a person (the core turns allow
//                     into approve) until staff run `penstockctl sessions resume ID`;
//   kill              the session ends through its front door;
//   revoke            the grant is revoked (sessions that used it end, as with `grants revoke`);
//   require_approval  every allow by the grant becomes approve until `penstockctl grants release ID`.
// `revoke` and `require_approval` act on the grant the alert names or, when it names none, on the
// principal's only grant on the alert's target (never a guess between several).
// Each step is journaled (`containment.applied`, with the alert's seq), also when it could not be taken
// (the alert names no session or grant, the session already ended): apply() never throws.
import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/types.ts';
import type { HeldGrant, Operator } from '../grants/types.ts';
import type { Journal } from '../journal/types.ts';
import type { Session, SessionEnd } from '../sessions/registry.ts';
import type { Alert, AlertKind, AlertRef, ContainmentAction } from './types.ts';

/** What containment reads of the `alerts:` section: the action per kind (the detectors' settings beside it are theirs). */
export type ContainmentSettings = { readonly [K in AlertKind]?: { readonly action?: ContainmentAction } } | undefined;

/** What containment needs of the core (DaemonCore satisfies it). */
export interface ContainmentCore {
  readonly log: Logger;
  readonly journal: Journal;
  readonly sessions: { get(id: string): Session | undefined };
  readonly grants: { get(id: string): HeldGrant | undefined; forPrincipal(principal: string): HeldGrant[]; revoke(id: string, by: Operator, reason: string): unknown };
  config(): LoadedConfig;
  suspendSession(session: Session, alert: AlertRef): boolean;
  requireApproval(grantId: string, alert: AlertRef): boolean;
}

/** Who revokes a grant when containment does: the daemon itself, not a person on the admin socket. */
export const CONTAINMENT_OPERATOR: Operator = Object.freeze({ uid: process.getuid?.() ?? 0, user: 'penstock-containment', verified: true });

/** What one step did: taken or not, and why not, for the journal; the grant it acted on when the alert named none. */
interface StepResult {
  applied: boolean;
  note?: string;
  grant?: string;
}

export class Containment {
  readonly #core: ContainmentCore;
  readonly #alerts: () => ContainmentSettings;

  /** `alerts` is read at each alert, so a config reload changes what happens next. */
  constructor(core: ContainmentCore, alerts: () => ContainmentSettings = () => core.config().raw.alerts) {
    this.#core = core;
    this.#alerts = alerts;
  }

  /** The configured action for a kind (`log` when the config says nothing). */
  actionFor(kind: Alert['kind']): ContainmentAction {
    return this.#alerts()?.[kind]?.action ?? 'log';
  }

  /** Act on an alert the engine journaled as `seq`. Never throws. */
  async apply(alert: Alert, seq: number): Promise<void> {
    const action = this.actionFor(alert.kind);
    if (action === 'log') return;
    const ref: AlertRef = { kind: alert.kind, seq };
    let result: StepResult;
    try {
      result = this.#step(action, alert, ref);
    } catch (err) {
      this.#core.log.error({ err, alert: ref, action }, 'containment step failed');
      result = { applied: false, note: `failed: ${(err as Error)?.message ?? String(err)}`.slice(0, 300) };
    }
    try {
      await this.#core.journal.append({
        event: 'containment.applied',
        principal: alert.principal,
        ...(alert.session !== undefined ? { session: alert.session } : {}),
        ...(alert.chain ? { chain: alert.chain } : {}),
        ...(alert.target !== undefined ? { target: alert.target } : {}),
        detail: {
          alert: ref,
          action,
          applied: result.applied,
          ...(alert.session !== undefined ? { session: alert.session } : {}),
          ...(alert.grant !== undefined ? { grant: alert.grant } : {}),
          ...(result.grant !== undefined ? { grant: result.grant, grant_from: 'target' } : {}),
          ...(result.note !== undefined ? { note: result.note } : {}),
        },
      });
    } catch (err) {
      // The step stands (containment errs on the side of stopping); the journal raises its own alert.
      this.#core.log.error({ err, alert: ref, action }, 'containment.applied could not be journaled');
    }
  }

  /**
   * The grant an alert concerns: the one it names, else — detectors that judge behaviour (probing, a new
   * target) name a target, not a grant — the principal's one unrevoked grant on that target. Never a
   * guess: none or several is logged only.
   */
  #grantOf(alert: Alert, action: 'revoke' | 'require_approval'): { id: string; inferred: boolean } | { note: string } {
    if (alert.grant !== undefined) return { id: alert.grant, inferred: false };
    const what = action === 'revoke' ? 'revoke' : 'put under approval';
    if (alert.target === undefined) return { note: `the alert names no grant or target, so no grant to ${what}; logged only` };
    const target = alert.target;
    const held = this.#core.grants.forPrincipal(alert.principal).filter((g) => !g.revoked && g.targets.includes(target));
    if (held.length === 1) return { id: held[0]!.id, inferred: true };
    return { note: held.length === 0 ? `the alert names no grant and ${alert.principal} holds none on ${target}; logged only` : `the alert names no grant and ${alert.principal} holds ${held.length} on ${target} (${held.map((g) => g.id).join(', ')}); none ${action === 'revoke' ? 'revoked' : 'held'}, logged only` };
  }

  #step(action: Exclude<ContainmentAction, 'log'>, alert: Alert, ref: AlertRef): StepResult {
    const why = `containment of alert.${ref.kind} (journal seq ${ref.seq}): ${alert.summary}`.slice(0, 500);
    switch (action) {
      case 'suspend':
      case 'kill': {
        if (alert.session === undefined) return { applied: false, note: `the alert names no session to ${action}; logged only` };
        const session = this.#core.sessions.get(alert.session);
        if (!session) return { applied: false, note: `session ${alert.session} has already ended; logged only` };
        if (action === 'kill') {
          const end: SessionEnd = { reason: 'killed', detail: why };
          session.terminate(end);
          return { applied: true };
        }
        if (session.suspended) return { applied: false, note: `session ${alert.session} is already suspended by alert.${session.suspended.alert.kind} (journal seq ${session.suspended.alert.seq})` };
        return this.#core.suspendSession(session, ref) ? { applied: true } : { applied: false, note: `session ${alert.session} has already ended; logged only` };
      }
      case 'revoke':
      case 'require_approval': {
        const found = this.#grantOf(alert, action);
        if ('note' in found) return { applied: false, note: found.note };
        const { id, inferred } = found;
        const grant = this.#core.grants.get(id);
        if (!grant) return { applied: false, note: `no grant ${id}; logged only` };
        if (grant.revoked) return { applied: false, note: `grant ${id} is already revoked` };
        const taken = { applied: true, ...(inferred ? { grant: id } : {}) };
        if (action === 'revoke') {
          this.#core.grants.revoke(id, CONTAINMENT_OPERATOR, why);
          return taken;
        }
        return this.#core.requireApproval(id, ref) ? taken : { applied: false, note: `no grant ${id}; logged only` };
      }
    }
  }
}
