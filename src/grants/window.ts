// When a grant holds: its absolute `window`, its recurring `schedule` (maintenance windows in local
// time), and whether it was revoked.
//
// Recurring windows are wall-clock windows: `08:00-17:00 Europe/Berlin` holds while a clock on a
// Berlin wall reads 08:00 to 16:59:59, so it is 06:00-15:00Z in summer and 07:00-16:00Z in winter.
// On DST days this means, deliberately and predictably:
// - spring forward: a window across the gap is an hour shorter in real time (01:30-03:30 on
//   2026-03-29 in Berlin lasts one hour), and a window wholly inside the gap (02:00-02:30) does not
//   happen that day;
// - fall back: a window over the repeated hour holds during both occurrences of it (02:00-03:00 on
//   2026-10-25 in Berlin holds for two real hours).
// `to` before `from` spans midnight; the day listed is the day the window starts. `to` may be 24:00.
import type { GrantConfig } from '../config/schema.ts';
import type { HeldGrant } from './types.ts';

export type ScheduleEntry = NonNullable<GrantConfig['schedule']>[number];
type Weekday = ScheduleEntry['days'][number];

const DAY: Record<Weekday, number> = { mon: 0, tue: 1, wed: 2, thu: 3, fri: 4, sat: 5, sun: 6 };
const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(tz, f);
  }
  return f;
}

/** The wall-clock reading in tz at instant ms, expressed as if that reading were UTC. */
function wallMs(ms: number, tz: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatter(tz).formatToParts(ms)) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const sub = ((ms % 1000) + 1000) % 1000; // offsets are whole seconds, so sub-second time is the same
  return Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!) + sub;
}

function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h! * 60 + m!;
}

/** Monday = 0 of a wall-clock day (given as UTC-shaped ms). */
function weekdayOf(wall: number): number {
  return (new Date(wall).getUTCDay() + 6) % 7;
}

export function isWithinScheduleEntry(entry: ScheduleEntry, nowMs: number): boolean {
  const wall = wallMs(nowMs, entry.tz);
  const dayStart = Math.floor(wall / DAY_MS) * DAY_MS;
  const t = wall - dayStart;
  const from = minutesOf(entry.from) * MINUTE_MS;
  const to = minutesOf(entry.to) * MINUTE_MS;
  const wd = weekdayOf(dayStart);
  const listed = (d: number): boolean => entry.days.some((x) => DAY[x] === d);
  if (from < to) return listed(wd) && t >= from && t < to;
  if (from === to) return false; // refused by the schema; an empty window holds never
  // Spans midnight: the evening part belongs to today's entry, the morning part to yesterday's.
  return (listed(wd) && t >= from) || (listed((wd + 6) % 7) && t < to);
}

/** Whether nowMs falls inside any of the recurring windows. */
export function isWithinSchedule(schedule: readonly ScheduleEntry[], nowMs: number): boolean {
  return schedule.some((e) => isWithinScheduleEntry(e, nowMs));
}

export function isGrantActive(grant: HeldGrant, nowMs: number): boolean {
  if (grant.revoked) return false;
  if (grant.window && !(nowMs >= Date.parse(grant.window.from) && nowMs < Date.parse(grant.window.to))) return false;
  if (grant.schedule && !isWithinSchedule(grant.schedule, nowMs)) return false;
  return true;
}

/** Why a grant is not active now, in words (undefined when it is active). */
export function inactiveBecause(grant: HeldGrant, nowMs: number): string | undefined {
  if (grant.revoked) return `revoked by uid ${grant.revoked.by.uid} at ${grant.revoked.at}: ${grant.revoked.reason}`;
  if (grant.window) {
    if (nowMs < Date.parse(grant.window.from)) return `its window opens at ${grant.window.from}`;
    if (nowMs >= Date.parse(grant.window.to)) return `its window closed at ${grant.window.to}`;
  }
  if (grant.schedule && !isWithinSchedule(grant.schedule, nowMs)) {
    return `outside its maintenance windows (${grant.schedule.map((e) => `${e.days.join(',')} ${e.from}-${e.to} ${e.tz}`).join('; ')})`;
  }
  return undefined;
}

// ------------------------------------------------------------------ when activity may change next

/** UTC offset of tz at instant ms, in ms. */
function offsetAt(ms: number, tz: string): number {
  return wallMs(ms, tz) - ms;
}

/**
 * The instants at which the wall clock of tz reads `wall` (UTC-shaped). Both readings of the offsets
 * around it are returned, so a repeated time gives both instants and a skipped one gives instants on
 * either side of the gap (the gap itself is covered by offsetChanges).
 */
function instantsOfWall(wall: number, tz: string): number[] {
  const before = offsetAt(wall - DAY_MS, tz);
  const after = offsetAt(wall + DAY_MS, tz);
  return [wall - before, wall - after];
}

/** Instants in (fromMs, toMs] where tz's offset changes (DST transitions), found to the millisecond. */
function offsetChanges(tz: string, fromMs: number, toMs: number): number[] {
  const out: number[] = [];
  const step = 6 * 3_600_000; // no zone changes its offset twice within six hours
  let a = fromMs;
  let offA = offsetAt(a, tz);
  while (a < toMs) {
    const b = Math.min(a + step, toMs);
    const offB = offsetAt(b, tz);
    if (offB !== offA) {
      let lo = a;
      let hi = b; // offset(lo) = offA, offset(hi) = offB; find the first ms with offB
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (offsetAt(mid, tz) === offA) lo = mid;
        else hi = mid;
      }
      out.push(hi);
    }
    a = b;
    offA = offB;
  }
  return out;
}

function scheduleBoundaries(entry: ScheduleEntry, nowMs: number): number[] {
  const out: number[] = [];
  const today = Math.floor(wallMs(nowMs, entry.tz) / DAY_MS) * DAY_MS;
  const from = minutesOf(entry.from) * MINUTE_MS;
  const to = minutesOf(entry.to) * MINUTE_MS;
  // Yesterday's window may still be open (midnight span); a weekly schedule recurs within 8 days.
  for (let k = -1; k <= 8; k++) {
    const day = today + k * DAY_MS;
    if (!entry.days.some((x) => DAY[x] === weekdayOf(day))) continue;
    out.push(...instantsOfWall(day + from, entry.tz));
    out.push(...instantsOfWall(day + to + (to < from ? DAY_MS : 0), entry.tz));
  }
  out.push(...offsetChanges(entry.tz, nowMs, nowMs + 9 * DAY_MS));
  return out;
}

/**
 * The next instant after nowMs at which the grant's activity may change (window start or end,
 * schedule boundary, DST shift in a schedule's zone), or undefined when it never will (revoked, or
 * past its window). It may name an instant at which nothing changes — callers re-check then — but
 * never skips a change, so a timer set to it catches every expiry on time.
 */
export function nextChange(grant: HeldGrant, nowMs: number): number | undefined {
  if (grant.revoked) return undefined;
  const from = grant.window ? Date.parse(grant.window.from) : -Infinity;
  const to = grant.window ? Date.parse(grant.window.to) : Infinity;
  if (nowMs >= to) return undefined;
  const candidates: number[] = [from, to];
  for (const e of grant.schedule ?? []) {
    for (const t of scheduleBoundaries(e, nowMs)) if (t >= from && t <= to) candidates.push(t);
  }
  let best: number | undefined;
  for (const t of candidates) if (t > nowMs && Number.isFinite(t) && (best === undefined || t < best)) best = t;
  return best;
}
