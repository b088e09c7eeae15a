// Privilege expansion: a session's effective rights grow while it runs — a grant issued for its
// principal (by staff, or an agent's request_access), or a person approving one of its actions. The
// grant itself may be proper; what staff should see is that the rights changed under a live session.
// One alert per session per quiet period.
import type { StoredEvent } from '../../journal/event.ts';
import type { Alert, Detector, DetectorContext } from '../types.ts';
import { LiveSessions, QuietPeriods, type KindSettings, type LiveSession } from './common.ts';

/** Most sessions one grant's alert names (a principal with hundreds of sessions open is an alert already). */
const MAX_SESSIONS_PER_GRANT = 16;

export function privilegeExpansionDetector(settings: KindSettings): Detector {
  const quiet = new QuietPeriods(settings.quiet_seconds * 1000);
  const live = new LiveSessions();
  const alert = (s: LiveSession, e: StoredEvent, severity: Alert['severity'], summary: string, grant: string | undefined, detail: Record<string, unknown>): Alert => ({
    kind: 'privilege_expansion',
    severity,
    summary,
    principal: s.principal,
    session: s.id,
    chain: [...s.chain],
    ...(s.target !== undefined ? { target: s.target } : {}),
    ...(grant !== undefined ? { grant } : {}),
    triggers: [e.seq],
    detail: { via: e.event, session_opened_seq: s.openedSeq, ...detail },
  });
  return {
    kind: 'privilege_expansion',
    observe(e: StoredEvent, ctx: DetectorContext): Alert[] {
      const session = live.observe(e, ctx.now);
      if (e.event === 'grant.issued' && e.principal !== undefined) {
        const grant = typeof e.detail?.grant === 'string' ? e.detail.grant : undefined;
        const targets = Array.isArray(e.detail?.targets) ? (e.detail.targets as unknown[]).map(String) : [];
        // A session bound to one target gains nothing from a grant for other targets.
        const reached = live.ofPrincipal(e.principal, ctx.now).filter((s) => s.target === undefined || targets.includes(s.target));
        return reached.slice(0, MAX_SESSIONS_PER_GRANT).filter((s) => quiet.take(s.id, ctx.now)).map((s) =>
          alert(s, e, 'warning', `grant ${grant ?? '?'} was issued to ${s.principal} while session ${s.id} runs`, grant, { targets }));
      }
      if (e.event === 'approval.granted' && session && quiet.take(session.id, ctx.now)) {
        return [alert(session, e, 'info', `a person approved an action beyond ${session.principal}'s standing rights in session ${session.id}`, undefined, { approval: e.detail?.approval })];
      }
      return [];
    },
  };
}
