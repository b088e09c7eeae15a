// Programming activity: any action of the programming class, even an allowed one (a logic download, a
// legacy programming function code). The protocol's module says what its programming class is
// (ProtocolModule.isProgramming); the verb `program` counts for every protocol. One alert per session
// (or principal, outside a session) per quiet period; denied attempts count as well.
import type { StoredEvent } from '../../journal/event.ts';
import type { Alert, Detector, DetectorContext } from '../types.ts';
import { about, actionBlock, grantOf, QuietPeriods, type KindSettings } from './common.ts';

export function programmingDetector(settings: KindSettings): Detector {
  const quiet = new QuietPeriods(settings.quiet_seconds * 1000);
  return {
    kind: 'programming',
    observe(e: StoredEvent, ctx: DetectorContext): Alert[] {
      if (e.event !== 'action.allowed' && e.event !== 'action.denied' && e.event !== 'approval.requested') return [];
      const a = actionBlock(e);
      if (!a || !(a.verb === 'program' || a.module?.isProgramming?.(a.block, a.verb) === true)) return [];
      if (!quiet.take(e.session ?? `principal:${e.principal ?? ''}`, ctx.now)) return [];
      const allowed = e.event === 'action.allowed';
      return [{
        kind: 'programming',
        severity: allowed ? 'critical' : 'warning',
        summary: `${e.principal ?? 'someone'} ${allowed ? 'ran' : e.event === 'action.denied' ? 'tried' : 'asked to run'} a ${a.protocol} programming action on ${a.target}`,
        ...about(e),
        ...grantOf(e),
        triggers: [e.seq],
        detail: { via: e.event, protocol: a.protocol, verb: a.verb, object: a.block },
      }];
    },
  };
}
