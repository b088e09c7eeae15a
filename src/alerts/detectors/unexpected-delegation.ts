// Unexpected delegation: the delegation chain a session carries differs from the principal's configured
// chain (itself, then `acting_for`), or changes within the session. A chain that goes on beyond the
// configured one agrees with it (an agent's token may name whom its `acting_for` acts for in turn).
// One alert per session per quiet period.
import type { StoredEvent } from '../../journal/event.ts';
import type { Alert, Detector, DetectorContext } from '../types.ts';
import { about, LiveSessions, QuietPeriods, type KindSettings } from './common.ts';

const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const startsWith = (chain: readonly string[], prefix: readonly string[]) => prefix.length <= chain.length && prefix.every((x, i) => x === chain[i]);

export function unexpectedDelegationDetector(settings: KindSettings): Detector {
  const quiet = new QuietPeriods(settings.quiet_seconds * 1000);
  const live = new LiveSessions();
  return {
    kind: 'unexpected_delegation',
    observe(e: StoredEvent, ctx: DetectorContext): Alert[] {
      const before = e.session !== undefined && e.event !== 'session.opened' ? live.get(e.session, ctx.now) : undefined;
      live.observe(e, ctx.now);
      if (e.chain === undefined || e.principal === undefined) return [];
      let expected: readonly string[] | undefined;
      let why: string;
      if (before && !same(before.chain, e.chain)) {
        expected = before.chain;
        why = 'changed within the session';
      } else if (e.event === 'session.opened' && ctx.env) {
        expected = ctx.env.chainOf(e.principal);
        why = 'differs from the configured chain';
        if (expected === undefined || startsWith(e.chain, expected)) return [];
      } else {
        return [];
      }
      if (!quiet.take(e.session ?? `principal:${e.principal}`, ctx.now)) return [];
      return [{
        kind: 'unexpected_delegation',
        severity: 'warning',
        summary: `the delegation chain of ${e.principal}${e.session ? ` in session ${e.session}` : ''} ${why}: ${e.chain.join(' → ')}`,
        ...about(e),
        triggers: [e.seq],
        detail: { expected: [...expected], seen: [...e.chain], ...(before ? { session_opened_seq: before.openedSeq } : {}) },
      }];
    },
  };
}
