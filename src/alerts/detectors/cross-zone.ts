// Cross-zone movement: one principal touching targets in different zones (config `targets[].zone`)
// within `window_seconds`, when no grant of that principal names both targets (a grant that pairs
// them is staff saying the hop is intended). The IT→OT pivot a bastion exists to stop. One alert per
// principal and pair of zones per quiet period. Needs the engine's environment (zones, grants).
import type { StoredEvent } from '../../journal/event.ts';
import type { Alert, Detector, DetectorContext } from '../types.ts';
import { about, ExpiringMap, QuietPeriods, type KindSettings } from './common.ts';

export interface CrossZoneSettings extends KindSettings {
  window_seconds: number;
}

/** Targets remembered per principal (the most recently touched). */
const TARGETS_KEPT = 32;
const TOUCHING = new Set(['session.opened', 'action.allowed', 'action.denied']);

interface Touch { target: string; zone: string; at: number; seq: number }

export function crossZoneDetector(settings: CrossZoneSettings): Detector {
  const windowMs = settings.window_seconds * 1000;
  const quiet = new QuietPeriods(settings.quiet_seconds * 1000);
  const touched = new ExpiringMap<string, Touch[]>(windowMs);
  return {
    kind: 'cross_zone',
    observe(e: StoredEvent, ctx: DetectorContext): Alert[] {
      const env = ctx.env;
      if (!env || !TOUCHING.has(e.event) || e.principal === undefined || e.target === undefined) return [];
      const zone = env.zoneOf(e.target);
      if (zone === undefined) return [];
      const p = e.principal;
      const target = e.target;
      const now = ctx.now;
      const before = (touched.get(p, now) ?? []).filter((t) => now - t.at < windowMs && t.target !== target);
      touched.set(p, [...before, { target, zone, at: now, seq: e.seq }].slice(-TARGETS_KEPT), now);
      const grants = env.grantsOf(p);
      const other = before.filter((t) => t.zone !== zone).find((t) => !grants.some((g) => g.targets.includes(t.target) && g.targets.includes(target)));
      if (!other || !quiet.take(`${p}\u0000${[other.zone, zone].sort().join('\u0000')}`, now)) return [];
      return [{
        kind: 'cross_zone',
        severity: 'critical',
        summary: `${p} went from ${other.target} (zone ${other.zone}) to ${target} (zone ${zone}) within ${Math.round((now - other.at) / 1000)} s; no grant pairs them`,
        ...about(e),
        triggers: [other.seq, e.seq],
        detail: { from: { target: other.target, zone: other.zone }, to: { target, zone }, window_seconds: settings.window_seconds },
      }];
    },
  };
}
