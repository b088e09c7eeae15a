// Out of window: activity, or an attempt, outside the grant's window or schedule. Policy denies it as
// `grant_not_active` and its explanation names each grant and why (window not open yet, ended,
// outside the schedule); that sentence goes into the alert. One alert per principal and target per quiet period.
import type { StoredEvent } from '../../journal/event.ts';
import type { Alert, Detector, DetectorContext } from '../types.ts';
import { about, grantOf, QuietPeriods, type KindSettings } from './common.ts';

export function outOfWindowDetector(settings: KindSettings): Detector {
  const quiet = new QuietPeriods(settings.quiet_seconds * 1000);
  return {
    kind: 'out_of_window',
    observe(e: StoredEvent, ctx: DetectorContext): Alert[] {
      if (e.event !== 'action.denied' || e.decision?.reason !== 'grant_not_active' || e.principal === undefined) return [];
      if (!quiet.take(`${e.principal}\u0000${e.target ?? ''}`, ctx.now)) return [];
      return [{
        kind: 'out_of_window',
        severity: 'warning',
        summary: `${e.principal} acted on ${e.target ?? 'a target'} outside the window of its grant`,
        ...about(e),
        ...grantOf(e),
        triggers: [e.seq],
        detail: { explanation: e.decision.explanation },
      }];
    },
  };
}
