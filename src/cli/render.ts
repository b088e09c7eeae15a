// Rendering admin results for a person: aligned columns, times in local time with a relative hint.
// `--json` bypasses all of this and prints the raw result.
import type { PendingApproval } from '../approvals/approvals.ts';
import type { ConfigIssue } from '../config/types.ts';
import type { HeldGrant } from '../grants/types.ts';
import type { Action, Decision } from '../policy/types.ts';
import type { SessionView } from '../sessions/types.ts';
import { protocols } from '../adapters/registry.ts';

/** Columns separated by two spaces, each as wide as its widest cell. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** `3m ago`, `in 2h 5m`, `just now`. */
export function relative(targetMs: number, nowMs: number): string {
  const diff = targetMs - nowMs;
  const abs = Math.abs(diff);
  if (abs < 5_000) return 'just now';
  const s = Math.round(abs / 1000);
  const parts: string[] = [];
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) parts.push(`${d}d`);
  if (h && parts.length < 2) parts.push(`${h}h`);
  if (m && parts.length < 2 && !d) parts.push(`${m}m`);
  if (parts.length === 0) parts.push(`${s % 60}s`);
  const span = parts.join(' ');
  return diff < 0 ? `${span} ago` : `in ${span}`;
}

/** Local wall time `2026-11-25 09:00` (seconds when they matter). */
export function localTime(ms: number, withSeconds = false): string {
  const t = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  const base = `${t.getFullYear()}-${p(t.getMonth() + 1)}-${p(t.getDate())} ${p(t.getHours())}:${p(t.getMinutes())}`;
  return withSeconds ? `${base}:${p(t.getSeconds())}` : base;
}

/** `2026-11-25 09:00 (3m ago)`, or the input unchanged when it is not a time. */
export function when(iso: unknown, nowMs: number): string {
  if (typeof iso !== 'string' && typeof iso !== 'number') return '-';
  const ms = typeof iso === 'number' ? iso : Date.parse(iso);
  if (Number.isNaN(ms)) return String(iso);
  return `${localTime(ms)} (${relative(ms, nowMs)})`;
}

export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  return relative(s * 1000, 0).replace(/^in /, '');
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

// ------------------------------------------------------------------ per command

export function renderStatus(status: Record<string, unknown>): string {
  const out: string[] = [];
  const listeners = Array.isArray(status.listeners) ? (status.listeners as Record<string, unknown>[]) : [];
  for (const [key, value] of Object.entries(status)) {
    if (key === 'listeners') continue;
    if (key === 'journal' && value !== null && typeof value === 'object') {
      out.push(...renderJournalHealth(value as Record<string, unknown>));
      continue;
    }
    if (key === 'push' && value !== null && typeof value === 'object') {
      out.push(...renderPushStatus(value as Record<string, unknown>));
      continue;
    }
    if (key === 'siem' && Array.isArray(value)) {
      out.push(...(value as Record<string, unknown>[]).map(renderSiemExport));
      continue;
    }
    // `uptime_seconds: 3725` reads as `uptime: 1h 2m`; `rss_bytes` as `rss: 81.2 MiB`.
    const label = typeof value === 'number' ? key.replace(/_(seconds|bytes)$/, '') : key;
    out.push(`${`${label.replaceAll('_', ' ')}:`.padEnd(20)} ${scalarOrNested(key, value)}`);
  }
  out.push('');
  out.push(listeners.length ? table(['LISTENER', 'PROTOCOL', 'ADDRESS'], listeners.map((l) => [str(l.id), str(l.protocol), address(l)])) : 'no front doors listening');
  // Front doors that keep their own upstream links say how each target is doing.
  const targets = listeners.flatMap((l) => (Array.isArray(l.targets) ? (l.targets as Record<string, unknown>[]).map((t) => [str(l.id), str(t.id), str(t.upstream), t.mirrored_at ? `${str(t.mirrored_nodes)} nodes at ${str(t.mirrored_at)}` : 'not yet']) : []));
  if (targets.length) out.push('', table(['LISTENER', 'TARGET', 'UPSTREAM', 'MIRRORED'], targets));
  return out.join('\n');
}

/** The journal's health as plant staff read it: size, space, last checkpoint, what upstream holds. */
function renderJournalHealth(j: Record<string, unknown>): string[] {
  const size = typeof j.size === 'number' ? j.size : 0;
  const acked = typeof j.acknowledgedUpTo === 'number' ? j.acknowledgedUpTo : -1;
  const cp = j.lastCheckpoint as { size?: number; time?: string; rootHash?: string } | undefined;
  const state = j.writable === false ? `NOT WRITABLE (${str(j.failure)}): privileged actions are refused` : 'writable';
  return [
    `${'journal:'.padEnd(20)} ${size} events, ${bytes(Number(j.bytes ?? 0))} stored, ${bytes(Number(j.freeBytes ?? 0))} free, ${state}`,
    `${'  last checkpoint:'.padEnd(20)} ${cp?.size !== undefined ? `size ${cp.size}, ${cp.time ?? ''}, root ${cp.rootHash ?? ''}` : 'none yet'}`,
    `${'  upstream has:'.padEnd(20)} ${acked < 0 ? `nothing acknowledged (${size} events waiting)` : `up to seq ${acked} (${Math.max(0, size - acked - 1)} events not yet acknowledged)`}`,
  ];
}

/** The evidence push (src/push): link, what JetStream holds, what waits, the last failure. */
function renderPushStatus(p: Record<string, unknown>): string[] {
  const link = p.state === 'stopped' ? 'STOPPED (see last error)' : p.connected === true ? 'connected' : p.in_window === false ? 'outside the send windows (disconnected)' : 'not connected';
  const cursor = typeof p.cursor === 'number' ? p.cursor : -1;
  const err = p.last_error as { code?: string; message?: string; time?: string } | null | undefined;
  return [
    `${'push:'.padEnd(20)} ${link} to ${str(p.subject)}, ${bytes(Number(p.bytes_per_second ?? 0))}/s`,
    `${'  jetstream has:'.padEnd(20)} ${cursor < 0 ? 'nothing yet' : `up to seq ${cursor}`} (${str(p.lag_events)} events waiting), checkpoint ${Number(p.checkpoint_pushed ?? 0) > 0 ? `at size ${str(p.checkpoint_pushed)}` : 'none yet'}, last ack ${str(p.last_ack_time ?? 'never')}`,
    `${'  last error:'.padEnd(20)} ${err ? `${str(err.code)} ${str(err.message)} (${str(err.time)})` : '-'}`,
  ];
}

/** One SIEM export (src/siem): where to, what it delivered, what waits, why it is not getting through. */
function renderSiemExport(x: Record<string, unknown>): string {
  const cursor = typeof x.cursor === 'number' ? x.cursor : -1;
  const err = x.last_error as { code?: string; message?: string; at?: string } | undefined;
  return `${`siem ${str(x.id)}:`.padEnd(20)} ${str(x.state)} to ${str(x.receiver)}, ${cursor < 0 ? 'nothing delivered yet' : `delivered up to ${cursor}`} (${str(x.lag)} waiting)${err ? `, last error ${str(err.code)} ${str(err.message)} (${str(err.at)})` : ''}`;
}

function address(l: Record<string, unknown>): string {
  if (typeof l.host === 'string' && typeof l.port === 'number') return l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
  return str(l.address);
}

function scalarOrNested(key: string, value: unknown): string {
  if (key.endsWith('_seconds') && typeof value === 'number') return duration(value);
  if (key.endsWith('bytes') && typeof value === 'number') return bytes(value);
  if (value === null || value === undefined) return '-';
  if (typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(', ') || '-';
  return Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => `${k}=${v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
}

export function renderSessions(sessions: SessionView[], nowMs: number): string {
  if (sessions.length === 0) return 'no live sessions';
  return table(
    ['ID', 'PRINCIPAL', 'CHAIN', 'TARGET', 'FRONT DOOR', 'REMOTE', 'STARTED', 'ALLOWED', 'DENIED'],
    sessions.map((s) => [
      s.suspended ? `${s.id} (suspended: alert.${s.suspended.alert.kind} #${s.suspended.alert.seq})` : s.id,
      `${s.principal} (${s.kind})`,
      s.chain.slice(1).join(' > ') || '-',
      s.target ?? '-',
      `${s.listener}/${s.protocol}`,
      s.remote,
      when(s.started, nowMs),
      String(s.counters.allowed),
      String(s.counters.denied),
    ]),
  );
}

export type GrantRow = HeldGrant & { active: boolean; approval_required?: { alert: { kind: string; seq: number }; since: string } };

export function grantState(g: GrantRow, nowMs: number): string {
  if (g.revoked) return 'revoked';
  if (g.active) return 'active';
  if (g.window && Date.parse(g.window.to) <= nowMs) return 'expired';
  if (g.window && Date.parse(g.window.from) > nowMs) return 'pending';
  return 'inactive';
}

export function renderGrants(grants: GrantRow[], nowMs: number): string {
  if (grants.length === 0) return 'no grants';
  return table(
    ['ID', 'STATE', 'PRINCIPAL', 'TARGETS', 'TICKET', 'WINDOW', 'RULES', 'SOURCE'],
    grants.map((g) => [
      g.id,
      g.approval_required && !g.revoked ? `${grantState(g, nowMs)}, approval required (alert.${g.approval_required.alert.kind} #${g.approval_required.alert.seq})` : grantState(g, nowMs),
      g.principal,
      g.targets.join(','),
      g.task.ticket,
      windowText(g, nowMs),
      String(g.rules.length),
      g.source === 'runtime' && g.issued ? `issued by ${operatorText(g.issued.by)}` : g.source,
    ]),
  );
}

function windowText(g: HeldGrant, nowMs: number): string {
  const parts: string[] = [];
  if (g.window) parts.push(`${localTime(Date.parse(g.window.from))} → ${localTime(Date.parse(g.window.to))} (ends ${relative(Date.parse(g.window.to), nowMs)})`);
  for (const s of g.schedule ?? []) parts.push(`${s.days.join(',')} ${s.from}-${s.to} ${s.tz}`);
  return parts.join('; ') || 'always';
}

export function operatorText(op: { uid: number; user?: string; verified?: boolean } | undefined): string {
  if (!op) return '-';
  return `${op.user ?? '?'}(uid ${op.uid}${op.verified === false ? ', unverified' : ''})`;
}

export function renderApprovals(approvals: PendingApproval[], nowMs: number): string {
  if (approvals.length === 0) return 'no pending approvals';
  return table(
    ['ID', 'PRINCIPAL', 'TARGET', 'ACTION', 'RULE', 'SESSION', 'ASKED', 'TIMES OUT'],
    approvals.map((a) => [
      a.id,
      [a.principal, ...a.chain.slice(1)].join(' > '),
      a.target,
      // A deferred approval runs only the call with exactly these arguments: show which.
      a.binding ? `${actionText(a.action)} [args sha256 ${a.binding.slice(0, 12)}…]` : actionText(a.action),
      // Asked only because containment holds the session or grant: say which alert.
      a.alert ? `${a.rule ?? '-'} (held by alert.${a.alert.kind} #${a.alert.seq})` : a.rule ?? '-',
      a.session,
      when(a.since, nowMs),
      when(a.expiresAt, nowMs),
    ]),
  );
}

/** One line for an action, in its protocol's words (its module's describeAction). */
export function actionText(a: Action): string {
  const m = protocols.get(a.object.kind);
  return m ? m.describeAction(a) : `${a.verb} ${a.object.kind}`;
}

export function renderDecision(r: { principal: string; action: Action; at: string; decision: Decision }): string {
  const d = r.decision;
  const lines = [
    `${d.effect.toUpperCase()}  ${r.principal} → ${r.action.target}: ${actionText(r.action)}`,
    `  reason:      ${d.reason}`,
    `  grant:       ${d.grant ?? '-'}`,
    `  rule:        ${d.rule ?? '-'}`,
    `  explanation: ${d.explanation}`,
    `  evaluated:   ${localTime(Date.parse(r.at), true)}`,
  ];
  return lines.join('\n');
}

export function renderIssues(issues: ConfigIssue[], format: (i: ConfigIssue) => string): { text: string; errors: number } {
  const errors = issues.filter((i) => i.severity === 'error');
  const warnings = issues.filter((i) => i.severity !== 'error');
  const out = [...errors, ...warnings].map(format);
  if (errors.length === 0) out.push(warnings.length ? `configuration OK (${warnings.length} warning${warnings.length === 1 ? '' : 's'})` : 'configuration OK');
  else out.push(`${errors.length} error${errors.length === 1 ? '' : 's'}${warnings.length ? `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}` : ''}`);
  return { text: out.join('\n'), errors: errors.length };
}

function str(v: unknown): string {
  if (v === undefined || v === null || v === '') return '-';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}
