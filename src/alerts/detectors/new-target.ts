// New target: a principal reaches, or tries, a target outside every grant it holds. Policy denies such
// an action (`no_grant`), and a session opened to such a target is just as telling: either is someone
// looking beyond the task they were let in for. One alert per principal and target per quiet period.
import type { StoredEvent } from '../../journal/event.ts';
import type { Alert, Detector, DetectorContext } from '../types.ts';
import { about, QuietPeriods, type KindSettings } from './common.ts';

export function newTargetDetector(settings: KindSettings): Detector {
  const quiet = new QuietPeriods(settings.quiet_seconds * 1000);
  return {
    kind: 'new_target',
    observe(e: StoredEvent, ctx: DetectorContext): Alert[] {
      if (e.principal === undefined || e.target === undefined) return [];
      const denied = e.event === 'action.denied' && e.decision?.reason === 'no_grant';
      // A session's target is known when it opens; whether a grant names it, only the live grants say.
      const opened = e.event === 'session.opened' && ctx.env !== undefined && !ctx.env.grantsOf(e.principal).some((g) => g.targets.includes(e.target!));
      if (!denied && !opened) return [];
      if (!quiet.take(`${e.principal}\u0000${e.target}`, ctx.now)) return [];
      return [{
        kind: 'new_target',
        severity: 'warning',
        summary: `${e.principal} ${denied ? 'tried' : 'opened a session to'} target ${e.target}, which none of its grants names`,
        ...about(e),
        triggers: [e.seq],
        detail: { via: e.event },
      }];
    },
  };
}
