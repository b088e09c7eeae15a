// Probing: someone feeling for what the gateway lets through. Two signs, one alert per principal per
// quiet period:
// - a burst: `denials` denials of one principal within `window_seconds` (what core's
//   `alert.denial_burst` counts, here with the events that made it);
// - retries: after a denial, `retries` different objects that each differ only slightly from a denied
//   one (the next register, a sibling node, an argv with one word changed), within `retry_window_seconds`.
// "Slightly" is judged on the journal's protocol block alone (near()), so no protocol is named here.
import type { StoredEvent } from '../../journal/event.ts';
import type { Alert, Detector, DetectorContext } from '../types.ts';
import { about, actionBlock, ExpiringMap, QuietPeriods, type ActionBlock, type KindSettings } from './common.ts';

export interface ProbingSettings extends KindSettings {
  denials: number;
  window_seconds: number;
  retries: number;
  retry_window_seconds: number;
}

/** Denied objects remembered per principal, to compare retries with. */
const DENIED_KEPT = 8;
/** Most trigger seqs one alert lists. */
const MAX_TRIGGERS = 50;

interface Denied { seq: number; at: number; a: ActionBlock; text: string }
interface Retries { seqs: number[]; objects: Set<string>; denied: Set<number> }

export function probingDetector(settings: ProbingSettings): Detector {
  const windowMs = settings.window_seconds * 1000;
  const retryMs = settings.retry_window_seconds * 1000;
  const quiet = new QuietPeriods(settings.quiet_seconds * 1000);
  const bursts = new ExpiringMap<string, { at: number; seq: number }[]>(windowMs);
  const denied = new ExpiringMap<string, Denied[]>(retryMs);
  const retries = new ExpiringMap<string, Retries>(retryMs);

  function raise(e: StoredEvent, now: number, sign: 'burst' | 'retries', triggers: number[], detail: Record<string, unknown>): Alert[] {
    // Counting starts afresh either way: what an alert (or its quiet period) covers is not counted twice,
    // and the retry sets stay as small as the threshold.
    bursts.delete(e.principal!);
    retries.delete(e.principal!);
    if (!quiet.take(e.principal!, now)) return [];
    return [{
      kind: 'probing',
      severity: 'warning',
      summary: sign === 'burst'
        ? `${e.principal} was denied ${triggers.length} times within ${settings.window_seconds} s: possible probing`
        : `${e.principal} retried ${detail.retries} slightly different objects after a denial: possible probing`,
      ...about(e),
      triggers: [...new Set(triggers)].sort((a, b) => a - b).slice(-MAX_TRIGGERS),
      detail: { sign, ...detail },
    }];
  }

  return {
    kind: 'probing',
    observe(e: StoredEvent, ctx: DetectorContext): Alert[] {
      if ((e.event !== 'action.denied' && e.event !== 'action.allowed') || e.principal === undefined) return [];
      const now = ctx.now;
      const p = e.principal;
      const isDenial = e.event === 'action.denied' && e.decision?.reason !== 'journal_unavailable';
      // A retry: a new object, next to one denied recently (most actions follow no denial: nothing to compare).
      const recent = (denied.get(p, now) ?? []).filter((d) => now - d.at < retryMs);
      if (!isDenial && recent.length === 0) return [];
      const a = actionBlock(e);
      const text = a ? JSON.stringify(a.block) : '';
      let out: Alert[] = [];
      const nearDenied = a ? recent.filter((d) => d.a.target === a.target && d.a.verb === a.verb && d.a.protocol === a.protocol && d.text !== text && near(d.a.block, a.block)) : [];
      if (nearDenied.length > 0) {
        const r = retries.get(p, now) ?? { seqs: [], objects: new Set(), denied: new Set() };
        if (!r.objects.has(text)) {
          r.objects.add(text);
          r.seqs.push(e.seq);
          for (const d of nearDenied) r.denied.add(d.seq);
        }
        retries.set(p, r, now);
        if (r.objects.size >= settings.retries) {
          out = raise(e, now, 'retries', [...r.denied, ...r.seqs], { retries: r.objects.size, window_seconds: settings.retry_window_seconds });
        }
      }
      if (!isDenial) return out;

      if (a) denied.set(p, [...recent, { seq: e.seq, at: now, a, text }].slice(-DENIED_KEPT), now);
      const burst = [...(bursts.get(p, now) ?? []).filter((d) => now - d.at < windowMs), { at: now, seq: e.seq }].slice(-Math.max(settings.denials, MAX_TRIGGERS));
      bursts.set(p, burst, now);
      if (out.length === 0 && burst.length >= settings.denials) out = raise(e, now, 'burst', burst.map((d) => d.seq), { denials: burst.length, window_seconds: settings.window_seconds });
      return out;
    },
  };
}

/**
 * Two protocol blocks that differ only slightly: at most two fields differ, and each differs as a
 * retry would — a number (another address, another value), one item of a list (one argv word), or one
 * word of a name (`…/Setpoint1` → `…/Setpoint2`, `ns=1;i=2253` → `ns=1;i=2254`). Two fields, because
 * some blocks say one thing twice (a command line and its argv).
 */
export function near(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const differing = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  return differing.length > 0 && differing.length <= 2 && differing.every((k) => slight(a[k], b[k]));
}

function slight(x: unknown, y: unknown): boolean {
  if (typeof x === 'number' && typeof y === 'number') return true;
  if (typeof x === 'string' && typeof y === 'string') return oneDiffers(x.split(/[\s/;.,=:]+/), y.split(/[\s/;.,=:]+/), (p, q) => p === q);
  if (Array.isArray(x) && Array.isArray(y)) return oneDiffers(x, y, (p, q) => JSON.stringify(p) === JSON.stringify(q));
  return false;
}

function oneDiffers<T>(x: readonly T[], y: readonly T[], eq: (p: T, q: T) => boolean): boolean {
  if (x.length !== y.length) return false;
  let differ = 0;
  for (let i = 0; i < x.length; i++) if (!eq(x[i]!, y[i]!)) differ++;
  return differ === 1;
}
