// What `penstockctl watch` shows: one line per event (plain output and the scrolling part of the
// screen) and the whole screen (live sessions on top, recent events below), sized to the terminal.
// Pure text: the terminal handling is in watch.ts.
import type { StreamLine } from '../admin/event-stream.ts';
import type { StoredEvent } from '../journal/event.ts';
import type { SessionView } from '../sessions/types.ts';
import { localTime, when } from './render.ts';

/** A stream line as the CLI receives it. */
export type WatchLine = StreamLine;
type WatchedEvent = StoredEvent;

const SEVERITY_TAG: Record<string, string> = { info: 'info', warning: 'WARN', critical: 'CRIT' };

/** `P (for A > B)`: the principal and for whom it acts. */
export function whoText(principal: string | undefined, chain: readonly string[] | undefined): string {
  const p = principal ?? '-';
  const rest = (chain ?? []).slice(1);
  return rest.length > 0 ? `${p} (for ${rest.join(' > ')})` : p;
}

/** Scalars of an object as `k=v`, in order, skipping some keys. */
function pairs(o: Record<string, unknown> | undefined, skip: readonly string[] = []): string {
  if (!o) return '';
  const out: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    if (skip.includes(k) || v === undefined || v === null) continue;
    if (typeof v === 'object') {
      const inner = Array.isArray(v) ? (v.length <= 8 ? v.join(',') : `${v.slice(0, 8).join(',')},…`) : pairs(v as Record<string, unknown>, ['kind']);
      if (inner) out.push(Array.isArray(v) ? `${k}=${inner}` : inner);
    } else out.push(`${k}=${String(v)}`);
  }
  return out.join(' ');
}

function actionText(a: Record<string, unknown> | undefined): string {
  if (!a) return '';
  return [typeof a.verb === 'string' ? a.verb : '', pairs(a, ['verb', 'target'])].filter(Boolean).join(' ');
}

/** What happened, in a few words, for the event's kind. */
function eventText(e: WatchedEvent): string {
  const who = whoText(e.principal, e.chain);
  const where = e.target ? ` → ${e.target}` : '';
  if (e.event === 'action.allowed' || e.event === 'action.denied') {
    // The reason before the action: a long action is what the screen's width cuts.
    const reason = e.event === 'action.denied' && typeof e.decision?.reason === 'string' ? ` (${e.decision.reason})` : '';
    return `${e.event === 'action.denied' ? 'DENIED' : 'allowed'}${reason} ${who}${where}: ${actionText(e.action)}`;
  }
  if (e.event.startsWith('alert.')) {
    const summary = typeof e.detail?.summary === 'string' ? e.detail.summary : pairs(e.detail, ['severity', 'triggers']);
    return `${e.event} ${who}${where}${summary ? `: ${summary}` : ''}`;
  }
  const detail = [pairs(e.outcome), pairs(e.detail, ['counters', 'operator'])].filter(Boolean).join(' ');
  return `${e.event} ${who}${where}${detail ? ` ${detail}` : ''}`;
}

/** One line for an event or a lost notice (plain output, and the screen's scrolling part). */
export function lineText(line: WatchLine): string | undefined {
  if (line.type === 'lost') return `-- ${line.dropped} event(s) not shown: this view fell behind (seq ${line.first_seq}–${line.last_seq}) --`;
  if (line.type !== 'event') return undefined;
  const e = line.event;
  const time = localTime(Date.parse(e.time), true).slice(11);
  return `${time} #${e.seq} ${(SEVERITY_TAG[line.severity] ?? line.severity).padEnd(4)} ${eventText(e)}`;
}

/** Fit a line to `width` columns (characters; the view writes no wide characters of its own). */
export function clip(text: string, width: number): string {
  if (width <= 0) return '';
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

export interface ScreenState {
  sessions: SessionView[];
  /** Newest last. */
  events: string[];
  /** What the view follows, for the title line. */
  title: string;
  /** Set when the stream ended. */
  ended?: string;
}

function sessionRow(s: SessionView, nowMs: number): string[] {
  return [s.id, whoText(s.principal, s.chain), s.target ?? '-', `${s.listener}/${s.protocol}`, when(s.started, nowMs), String(s.counters.allowed), String(s.counters.denied)];
}

const SESSION_HEADERS = ['SESSION', 'WHO (FOR WHOM)', 'TARGET', 'DOOR', 'SINCE', 'ALLOWED', 'DENIED'];

function tableLines(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [fmt(headers), ...rows.map(fmt)];
}

/**
 * The screen's lines, exactly `rows` of them, none wider than `columns`: a title, the sessions table
 * (at most about a third of the screen; the rest counted), a rule, the newest events that fit, a help line.
 */
export function renderScreen(state: ScreenState, columns: number, rows: number, nowMs: number): string[] {
  const out: string[] = [];
  out.push(`penstock watch — ${state.title} — ${state.sessions.length} live session(s)  ${localTime(nowMs, true)}`);
  const maxSessionRows = Math.max(1, Math.floor((rows - 4) / 3));
  if (state.sessions.length === 0) out.push('no live sessions');
  else {
    const shown = state.sessions.length > maxSessionRows ? state.sessions.slice(0, maxSessionRows - 1) : state.sessions;
    out.push(...tableLines(SESSION_HEADERS, shown.map((s) => sessionRow(s, nowMs))));
    if (shown.length < state.sessions.length) out.push(`… and ${state.sessions.length - shown.length} more`);
  }
  out.push('─'.repeat(Math.max(0, columns)));
  const footer = state.ended ?? 'q or Ctrl-C: quit';
  const room = Math.max(0, rows - out.length - 1);
  const recent = state.events.slice(-room);
  out.push(...recent);
  while (out.length < rows - 1) out.push('');
  out.push(footer);
  return out.slice(0, rows).map((l) => clip(l, columns));
}
