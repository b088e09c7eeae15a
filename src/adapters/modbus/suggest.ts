// `penstockctl grants suggest` for Modbus: the smallest rules that would have allowed what a principal
// was seen doing. One rule per table and direction (read or write) naming the function codes used, the
// units, and the registers touched (adjacent and overlapping ranges merged, gaps kept); a write rule
// bounds values by the least and greatest value written. When the target has a firmware profile and the
// registers touched are whole points, the rule names the points instead (bounds in engineering units).
import { scaled } from '../../policy/matcher.ts';
import { coverageText } from '../../grants/observed.ts';
import type { ObservedAction, SuggestContext, SuggestedRule } from '../types.ts';
import { FUNCTIONS_BY_CODE } from './functions.ts';
import { rawPointValue } from './point-values.ts';
import { modbusPoints, modbusTables, type ModbusPoint, type ModbusRuleConfig, type ModbusTable } from './rules.ts';

type Direction = 'read' | 'write';

/** What one journaled Modbus action is, read back from its block (render.ts). */
interface Seen {
  dir: Direction;
  unit: number;
  fc: number;
  table: ModbusTable | null;
  from: number;
  to: number;
  values: number[] | undefined;
  count: number;
  first: string;
  last: string;
}

interface Span {
  from: number;
  to: number;
}

function readBlock(a: ObservedAction): Seen | undefined {
  const o = a.object;
  const fc = o.func_code;
  const unit = o.unit;
  if (typeof fc !== 'number' || typeof unit !== 'number') return undefined;
  const table = typeof o.table === 'string' && (modbusTables as readonly string[]).includes(o.table) ? (o.table as ModbusTable) : null;
  const address = typeof o.address === 'number' ? o.address : 0;
  const quantity = typeof o.quantity === 'number' ? o.quantity : 0;
  const values = Array.isArray(o.values) && o.values.every((v) => typeof v === 'number') ? (o.values as number[]) : undefined;
  return { dir: a.verb === 'write' ? 'write' : 'read', unit, fc, table, from: address, to: address + Math.max(1, quantity) - 1, values, count: a.count, first: a.first, last: a.last };
}

/** The union of spans, adjacent ones joined: the same registers, in as few ranges as possible. */
export function mergeSpans(spans: readonly Span[]): Span[] {
  const out: Span[] = [];
  for (const s of [...spans].sort((a, b) => a.from - b.from)) {
    const last = out[out.length - 1];
    if (last && s.from <= last.to + 1) last.to = Math.max(last.to, s.to);
    else out.push({ ...s });
  }
  return out;
}

function rangeText(s: Span): string {
  return s.from === s.to ? `${s.from}` : `${s.from}-${s.to}`;
}

function pointSpan(p: ModbusPoint): Span {
  return { from: p.address!, to: p.address! + Math.max(1, p.words) - 1 };
}

/** Writes whose values land as written (FC 22 carries masks, so no bound can be read from it). */
function writesValues(fc: number): boolean {
  return FUNCTIONS_BY_CODE.get(fc)?.writesValues === true || fc === 23;
}

function bounds(values: readonly number[]): { min: number; max: number } | undefined {
  if (values.length === 0) return undefined;
  // A loop, not Math.min(...values): a long session writes more values than a call may take arguments.
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/**
 * The profile points that cover a group's actions exactly: every register touched lies in a point of
 * the table, and a write covers each point it touches whole (as the matcher demands), on a writable
 * point with a fixed scale (a run-time scale factor is unknown here). With the engineering values written.
 */
function asPoints(group: readonly Seen[], table: ModbusTable, profile: SuggestContext['profile']): { names: string[]; written: number[] } | undefined {
  if (!profile) return undefined;
  const pts = modbusPoints(profile).filter((p) => p.table === table && p.address !== undefined);
  const names = new Set<string>();
  const written: number[] = [];
  for (const s of group) {
    const hit = pts.filter((p) => pointSpan(p).from <= s.to && pointSpan(p).to >= s.from);
    let next = s.from;
    for (const sp of mergeSpans(hit.map(pointSpan))) if (sp.from <= next && sp.to >= next) next = sp.to + 1;
    if (next <= s.to) return undefined; // a register outside every point
    for (const p of hit) {
      if (s.dir === 'write') {
        const sp = pointSpan(p);
        if (p.access !== 'RW' || sp.from < s.from || sp.to > s.to || p.scale_factor !== undefined) return undefined;
        if (s.values) {
          const raw = rawPointValue(p, s.values.slice(sp.from - s.from, sp.to - s.from + 1), profile.word_order);
          if (raw === undefined) return undefined;
          written.push(scaled(raw, p.scale_exponent));
        }
      }
      names.add(p.name);
    }
  }
  return { names: [...names].sort(), written };
}


function ruleFor(group: readonly Seen[], ctx: SuggestContext): SuggestedRule<ModbusRuleConfig> {
  const { dir, table } = group[0]!;
  const units = [...new Set(group.map((s) => s.unit))].sort((a, b) => a - b);
  const fcs = [...new Set(group.map((s) => s.fc))].sort((a, b) => a - b);
  // `function_codes: [23]` would grant both halves of FC 23; `access` grants only the half seen.
  const functions: Pick<ModbusRuleConfig, 'access' | 'function_codes'> = fcs.includes(23) && table ? { access: dir } : { function_codes: fcs };
  const rule = { effect: 'allow', ...functions, units } as ModbusRuleConfig;
  const what: string[] = [`${dir}s`, `FC ${fcs.join(', ')}`, `unit${units.length > 1 ? 's' : ''} ${units.join(', ')}`];
  if (table) {
    rule.tables = [table];
    const points = asPoints(group, table, ctx.profile);
    let written: number[];
    if (points) {
      rule.points = points.names;
      written = points.written;
      what.push(`${table} points ${points.names.join(', ')}`);
    } else {
      const spans = mergeSpans(group.map((s) => ({ from: s.from, to: s.to })));
      rule.addresses = spans;
      written = group.flatMap((s) => s.values ?? []);
      what.push(`${table} ${spans.map(rangeText).join(', ')}`);
    }
    // A bound is suggested only when every write carried values it can be checked against.
    const b = dir === 'write' && group.every((s) => writesValues(s.fc) && s.values) ? bounds(written) : undefined;
    if (b) {
      rule.min = b.min;
      rule.max = b.max;
      what.push(`values ${b.min}..${b.max} as written`);
    }
  } else {
    what.push('(no table)');
  }
  return { rule, comment: `${what.join('; ')}: ${coverageText(group)}` };
}

export function suggestModbusRules(actions: readonly ObservedAction[], ctx: SuggestContext): SuggestedRule<ModbusRuleConfig>[] {
  const groups = new Map<string, Seen[]>();
  for (const a of actions) {
    if (a.effect !== 'allowed') continue;
    const s = readBlock(a);
    if (!s) continue;
    // Per table and direction; a function on no table is a group of its own (granted only by name).
    const key = s.table ? `${s.table}/${s.dir}` : `fc${s.fc}/${s.dir}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(s);
  }
  // Reads first, then writes; by table within each.
  return [...groups.entries()]
    .sort(([a], [b]) => Number(a.endsWith('/write')) - Number(b.endsWith('/write')) || a.localeCompare(b))
    .map(([, g]) => ruleFor(g, ctx));
}
