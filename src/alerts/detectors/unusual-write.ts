// Write outside the usual band: a value written to a point far outside the values seen written to it.
// The band of a point is the [min, max] of the allowed writes observed (learnt from recent journal
// history at start, then live), widened by `band_factor` times its width (at least 1) on each side;
// a point needs `min_samples` writes before its band is trusted. A value outside is not learnt (one
// odd write must not widen the band for the next). The protocol's module says which values a write
// puts where (ProtocolModule.writtenValues). One alert per point per quiet period.
import type { StoredEvent } from '../../journal/event.ts';
import type { Alert, Detector, DetectorContext } from '../types.ts';
import { about, actionBlock, ExpiringMap, grantOf, QuietPeriods, type KindSettings } from './common.ts';

export interface UnusualWriteSettings extends KindSettings {
  band_factor: number;
  min_samples: number;
  max_points: number;
}

interface Band { min: number; max: number; n: number }

/** A band not written for this long is forgotten (learnt again from scratch). */
const BAND_MEMORY_MS = 90 * 86_400_000;

export function unusualWriteDetector(settings: UnusualWriteSettings): Detector {
  const quiet = new QuietPeriods(settings.quiet_seconds * 1000);
  const bands = new ExpiringMap<string, Band>(BAND_MEMORY_MS, settings.max_points);
  let learnClock = 0;

  function writes(e: StoredEvent) {
    if (e.event !== 'action.allowed') return [];
    const a = actionBlock(e);
    if (!a?.module?.writtenValues) return [];
    return a.module.writtenValues(a.block, a.verb).map((w) => ({ key: `${a.target}\u0000${a.protocol}\u0000${w.point}`, ...w }));
  }
  function learn(key: string, value: number, now: number): void {
    const b = bands.get(key, now);
    bands.set(key, b ? { min: Math.min(b.min, value), max: Math.max(b.max, value), n: b.n + 1 } : { min: value, max: value, n: 1 }, now);
  }

  return {
    kind: 'unusual_write',
    learn(e: StoredEvent): void {
      // History is learnt in order; its own time stamps keep the memory's order right.
      learnClock = Math.max(learnClock, Date.parse(e.time) || learnClock);
      for (const w of writes(e)) learn(w.key, w.value, learnClock);
    },
    observe(e: StoredEvent, ctx: DetectorContext): Alert[] {
      const out: Alert[] = [];
      for (const w of writes(e)) {
        const b = bands.get(w.key, ctx.now);
        if (b && b.n >= settings.min_samples) {
          const margin = settings.band_factor * Math.max(b.max - b.min, 1);
          if (w.value < b.min - margin || w.value > b.max + margin) {
            if (out.length === 0 && quiet.take(w.key, ctx.now)) {
              out.push({
                kind: 'unusual_write',
                severity: 'warning',
                summary: `${e.principal ?? 'someone'} wrote ${w.value} to ${w.point} on ${e.target ?? '?'}; usually ${b.min}..${b.max} (${b.n} writes)`,
                ...about(e),
                ...grantOf(e),
                triggers: [e.seq],
                detail: { point: w.point, value: w.value, usual_min: b.min, usual_max: b.max, samples: b.n, band_factor: settings.band_factor },
              });
            }
            bands.set(w.key, b, ctx.now);
            continue;
          }
        }
        learn(w.key, w.value, ctx.now);
      }
      return out;
    },
  };
}
