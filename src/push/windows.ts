// Send windows for metered or scheduled links: `"22:00-06:00"` (every day) or `"mon-fri 22:00-06:00"`,
// `"sat,sun 00:00-24:00"`. A window whose end is before its start runs past midnight into the next day;
// its days name the day it starts. Times are wall time in a time zone (default: the gateway's own).

export const WINDOW_SYNTAX = 'write [DAYS ]HH:MM-HH:MM, DAYS like mon-fri or sat,sun, e.g. "mon-fri 22:00-06:00"';

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

export interface SendWindow {
  /** Days (0 = Sunday) the window starts on. */
  days: ReadonlySet<number>;
  /** Minutes after midnight. */
  from: number;
  to: number;
}

function minutes(hhmm: string): number | undefined {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$|^24:00$/.exec(hhmm);
  if (!m) return undefined;
  return m[1] === undefined ? 24 * 60 : Number(m[1]) * 60 + Number(m[2]);
}

function parseDays(text: string): Set<number> | string {
  const days = new Set<number>();
  for (const part of text.split(',')) {
    const [a, b] = part.split('-');
    const from = DAYS.indexOf(a as (typeof DAYS)[number]);
    const to = b === undefined ? from : DAYS.indexOf(b as (typeof DAYS)[number]);
    if (from < 0 || to < 0) return `unknown day in "${text}" (use ${DAYS.join(', ')})`;
    for (let d = from; ; d = (d + 1) % 7) {
      days.add(d);
      if (d === to) break;
    }
  }
  return days;
}

/** The window, or what is wrong with it. */
export function parseWindow(text: string): SendWindow | string {
  const m = /^\s*(?:([a-z,-]+)\s+)?(\S+)-(\S+)\s*$/.exec(text);
  if (!m) return `"${text}" is not a window`;
  const days = m[1] === undefined ? new Set([0, 1, 2, 3, 4, 5, 6]) : parseDays(m[1]);
  if (typeof days === 'string') return days;
  const from = minutes(m[2]!);
  const to = minutes(m[3]!);
  if (from === undefined || to === undefined || from === 24 * 60) return `"${text}": times must be HH:MM (24-hour; 24:00 only as an end)`;
  if (from === to) return `"${text}" is an empty window (start equals end)`;
  return { days, from, to };
}

/** One formatter per zone: building one costs more than the check (the pusher checks per message). */
const formats = new Map<string, Intl.DateTimeFormat>();

/** Day of week (0 = Sunday) and minute of day of `ms` in `tz` (undefined: the process's local zone). */
function localTime(ms: number, tz: string | undefined): { day: number; minute: number } {
  if (tz === undefined) {
    const d = new Date(ms);
    return { day: d.getDay(), minute: d.getHours() * 60 + d.getMinutes() };
  }
  let format = formats.get(tz);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone: tz, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formats.set(tz, format);
  }
  const parts = format.formatToParts(new Date(ms));
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
  return { day: DAYS.indexOf(get('weekday').toLowerCase() as (typeof DAYS)[number]), minute: Number(get('hour')) * 60 + Number(get('minute')) };
}

/** True when `ms` falls in one of the windows (no windows: always). */
export function inWindow(windows: readonly SendWindow[] | undefined, ms: number, tz?: string): boolean {
  if (!windows || windows.length === 0) return true;
  const { day, minute } = localTime(ms, tz);
  const yesterday = (day + 6) % 7;
  return windows.some((w) => (w.from < w.to
    ? w.days.has(day) && minute >= w.from && minute < w.to
    : (w.days.has(day) && minute >= w.from) || (w.days.has(yesterday) && minute < w.to)));
}

export function parseWindows(texts: readonly string[] | undefined): SendWindow[] | undefined {
  if (!texts) return undefined;
  return texts.map((t) => {
    const w = parseWindow(t);
    if (typeof w === 'string') throw new Error(w);
    return w;
  });
}
