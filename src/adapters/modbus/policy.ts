// Modbus rules: which function codes, on which unit, table and registers, with which values.
//
// A rule grants a set of operations — the union of its `preset`, its `access` (the read or write
// functions of its tables) and its `function_codes` — on the objects its `units`, `tables`,
// `addresses` or `points` name. Diagnostics (8), file records (20, 21) and vendor/programming codes
// are only ever granted by name: a preset that lists them or `function_codes`, never by `access`.
// FC 23 (read/write multiple registers) reaches policy as two actions, a read and a write; each is
// the operation `23/read` or `23/write`, so `access: read` grants the first and `access: write` the
// second, while a preset or `function_codes: [23]` grants both.
import type { Range } from '../../config/schema-parts.ts';
import type { FirmwareProfile } from '../../config/types.ts';
import type { Action } from '../../policy/types.ts';
import { boundsText, fit, miss, scaled, withinBounds, type MatchEnv, type MatchMode, type ProtocolMatcher, type RuleFit } from '../../policy/matcher.ts';
import { matchDotted } from '../../policy/glob.ts';
import { FUNCTIONS_BY_CODE, type ModbusFunction } from './functions.ts';
import { rawPointValue } from './point-values.ts';
import { modbusPoints, modbusTables, type ModbusObject, type ModbusPoint, type ModbusRuleConfig, type ModbusTable } from './rules.ts';

export { FUNCTION_CODES as MODBUS_FUNCTION_CODES } from './functions.ts';

type Direction = 'read' | 'write';

// What each function code is (tables, direction, whether its values land as written) comes from the
// one table, functions.ts: a pure module of numbers from the spec, no wire code.
const ALL_TABLES: readonly ModbusTable[] = modbusTables;

/** The operations `access` grants on a table: its functions, by direction (FC 23 in both). */
function accessOf(table: ModbusTable): Record<Direction, readonly number[]> {
  const fs = [...FUNCTIONS_BY_CODE.values()].filter((f) => f.tables?.includes(table));
  return { read: fs.filter((f) => f.direction !== 'write').map((f) => f.code), write: fs.filter((f) => f.direction !== 'read').map((f) => f.code) };
}
const ACCESS_FUNCTIONS: Record<ModbusTable, Record<Direction, readonly number[]>> = {
  coil: accessOf('coil'),
  discrete_input: accessOf('discrete_input'),
  input_register: accessOf('input_register'),
  holding_register: accessOf('holding_register'),
};

/** Function codes that write to a data table: 5, 6, 15, 16 (coils and registers), 22 (mask write), 23 (read/write). */
export const MODBUS_TABLE_WRITES: ReadonlySet<number> = new Set(ALL_TABLES.flatMap((t) => ACCESS_FUNCTIONS[t].write));

/** Writes whose `values` are exactly the raw values that will land in the registers (FC 22's are masks). */
const VALUE_CARRYING_WRITES: ReadonlySet<number> = new Set([...FUNCTIONS_BY_CODE.values()].filter((f) => f.writesValues).map((f) => f.code));

export const MODBUS_PRESETS: Readonly<Record<NonNullable<ModbusRuleConfig['preset']>, readonly number[]>> = {
  readonly: [1, 2, 3, 4, 7, 11, 12, 20, 24, 43],
  readwrite: [1, 2, 3, 4, 7, 11, 12, 20, 24, 43, 5, 6, 15, 16, 22, 23],
  programming: [8, 21, 90, 125, 126],
};

function functionOf(fc: number): ModbusFunction {
  // An unknown code is treated as one that changes the device and addresses no table.
  return FUNCTIONS_BY_CODE.get(fc) ?? { code: fc, name: `function code ${fc}`, tables: null, direction: 'write' };
}

function directionOf(action: Action, o: ModbusObject): Direction {
  const d = functionOf(o.functionCode).direction;
  return d === 'by_verb' ? (action.verb === 'write' ? 'write' : 'read') : d;
}

export function ruleGrantsFunction(rule: ModbusRuleConfig, fc: number, dir: Direction): boolean {
  if (rule.preset && MODBUS_PRESETS[rule.preset].includes(fc)) return true;
  if (rule.function_codes?.includes(fc)) return true;
  if (rule.access) {
    const dirs: Direction[] = rule.access === 'readwrite' ? ['read', 'write'] : [rule.access];
    for (const t of rule.tables ?? ALL_TABLES) {
      // FC 23's direction is the action's, so `access: read` covers only its read half.
      if (dirs.includes(dir) && ACCESS_FUNCTIONS[t][dir].includes(fc)) return true;
    }
  }
  return false;
}

/** An operation as one number: function code and direction. */
function opKey(fc: number, dir: Direction): number {
  return fc * 2 + (dir === 'write' ? 1 : 0);
}

// Rules are immutable once loaded, so what match() derives from a rule (the operations it grants, its
// address spans in order, the profile points its globs name) is computed once per rule object, and per
// profile object for points (a reload brings new profile objects, and with them new entries).
interface RuleIndex {
  /** opKey of every (function code, direction) ruleGrantsFunction says yes to. */
  ops: ReadonlySet<number>;
  /** rule.addresses sorted by start, for coveredBy. */
  spans: readonly Span[] | undefined;
  /** rule.points resolved per profile and table. */
  points: WeakMap<FirmwareProfile, Map<ModbusTable, ModbusPoint[]>>;
}
const ruleIndexes = new WeakMap<ModbusRuleConfig, RuleIndex>();
function ruleIndex(rule: ModbusRuleConfig): RuleIndex {
  let ix = ruleIndexes.get(rule);
  if (!ix) {
    const ops = new Set<number>();
    for (let fc = 1; fc <= 127; fc++) {
      for (const dir of ['read', 'write'] as const) if (ruleGrantsFunction(rule, fc, dir)) ops.add(opKey(fc, dir));
    }
    const spans = rule.addresses ? [...rule.addresses].sort((a, b) => a.from - b.from) : undefined;
    ix = { ops, spans, points: new WeakMap() };
    ruleIndexes.set(rule, ix);
  }
  return ix;
}

/** Points of the profile in this table named by the rule's globs (resolved once per rule, profile and table). */
function rulePoints(rule: ModbusRuleConfig, globs: readonly string[], profile: FirmwareProfile, table: ModbusTable): ModbusPoint[] {
  const ix = ruleIndex(rule);
  let byTable = ix.points.get(profile);
  if (!byTable) {
    byTable = new Map();
    ix.points.set(profile, byTable);
  }
  let pts = byTable.get(table);
  if (!pts) {
    pts = resolvePoints(globs, profile, table);
    byTable.set(table, pts);
  }
  return pts;
}

/** A profile's read-only points per table (what no rule can make writable), indexed once per profile. */
const readOnlyIndexes = new WeakMap<FirmwareProfile, Map<ModbusTable, ModbusPoint[]>>();
function readOnlyPoints(profile: FirmwareProfile, table: ModbusTable): ModbusPoint[] {
  let byTable = readOnlyIndexes.get(profile);
  if (!byTable) {
    byTable = new Map();
    for (const p of modbusPoints(profile)) {
      if (p.access !== 'R' || p.table === undefined || p.address === undefined) continue;
      let list = byTable.get(p.table);
      if (!list) byTable.set(p.table, (list = []));
      list.push(p);
    }
    readOnlyIndexes.set(profile, byTable);
  }
  return byTable.get(table) ?? [];
}

// ------------------------------------------------------------------ ranges and points

interface Span {
  from: number;
  to: number;
}

/** Whether every register of [from, to] lies in the union of spans. */
export function coveredBy(from: number, to: number, spans: readonly Span[]): boolean {
  return coveredBySorted(from, to, [...spans].sort((a, b) => a.from - b.from));
}

/** coveredBy for spans already sorted by start. */
function coveredBySorted(from: number, to: number, spans: readonly Span[]): boolean {
  let next = from; // first register not yet known to be covered
  for (const s of spans) {
    if (s.from > next) break;
    if (s.to >= next) next = s.to + 1;
    if (next > to) return true;
  }
  return next > to;
}

export function overlapsAny(from: number, to: number, spans: readonly Span[]): boolean {
  return spans.some((s) => s.from <= to && s.to >= from);
}

function pointSpan(p: ModbusPoint): Span {
  return { from: p.address!, to: p.address! + Math.max(1, p.words) - 1 };
}

/** Points of the profile in this table whose names one of the globs matches. */
function resolvePoints(globs: readonly string[], profile: FirmwareProfile, table: ModbusTable): ModbusPoint[] {
  return modbusPoints(profile).filter((p) => p.table === table && p.address !== undefined && globs.some((g) => matchDotted(g, p.name)));
}

/** The engineering value of a point written by this request, or undefined when it cannot be known. */
function decodePoint(p: ModbusPoint, o: ModbusObject, profile: FirmwareProfile): number | undefined {
  if (!o.values || !VALUE_CARRYING_WRITES.has(o.functionCode)) return undefined;
  const off = p.address! - o.address;
  const regs = o.values.slice(off, off + p.words);
  const raw = off < 0 ? undefined : rawPointValue(p, regs, profile.word_order);
  if (raw === undefined) return undefined; // strings, or a type and width that disagree
  if (p.scale_factor === undefined) return scaled(raw, p.scale_exponent);
  // Scaled by a register of the device: unknown until the gateway has read it (then refused if bounded).
  const exponent = o.scaleFactors?.[p.scale_factor];
  return exponent === undefined ? undefined : scaled(raw, exponent);
}

function hasBounds(min: number | undefined, max: number | undefined): boolean {
  return min !== undefined || max !== undefined;
}

function rangeText(from: number, to: number): string {
  return from === to ? `${from}` : `${from}-${to}`;
}

// ------------------------------------------------------------------ the matcher

function validate(action: Action, o: ModbusObject): string | undefined {
  if (!Number.isInteger(o.unit) || o.unit < 0 || o.unit > 255) return `unit ${o.unit} is not 0-255`;
  if (!Number.isInteger(o.functionCode) || o.functionCode < 1 || o.functionCode > 127) return `function code ${o.functionCode} is not 1-127`;
  const f = functionOf(o.functionCode);
  if (!f.tables) {
    if (o.table !== null) return `${f.name} addresses no table, but the request names ${o.table}`;
    return undefined;
  }
  if (o.table === null || !f.tables.includes(o.table)) return `${f.name} addresses ${f.tables.join('/')}, not ${o.table ?? 'no table'}`;
  if (f.direction === 'by_verb' ? action.verb !== 'read' && action.verb !== 'write' : action.verb !== f.direction) {
    return `${f.name} cannot be a ${action.verb}`;
  }
  if (!Number.isInteger(o.address) || o.address < 0 || o.address > 0xffff) return `address ${o.address} is not 0-65535`;
  if (!Number.isInteger(o.quantity) || o.quantity < 1 || o.address + o.quantity > 0x10000) return `quantity ${o.quantity} at address ${o.address} runs outside 0-65535`;
  if (o.scaleFactors !== undefined && Object.values(o.scaleFactors).some((e) => !Number.isInteger(e) || e < -10 || e > 10)) {
    return 'scale factors must be integers -10..10';
  }
  if (o.values !== undefined && o.functionCode !== 22) {
    if (directionOf(action, o) === 'read') return 'a read carries no values';
    if (o.values.length !== o.quantity) return `${o.values.length} values for a quantity of ${o.quantity}`;
    const top = o.table === 'coil' ? 1 : 0xffff;
    if (o.values.some((v) => !Number.isInteger(v) || v < 0 || v > top)) return `values must be integers 0-${top}`;
  }
  return undefined;
}

function match(rule: ModbusRuleConfig, action: Action, o: ModbusObject, env: MatchEnv, mode: MatchMode): RuleFit {
  const f = functionOf(o.functionCode);
  const dir = directionOf(action, o);
  const contain = mode === 'contain';
  // Texts only a miss needs are built only on a miss: an allowed read must not pay for them.
  const op = () => (o.functionCode === 23 ? `FC 23 (${dir} half)` : `FC ${o.functionCode} (${f.name})`);
  const ix = ruleIndex(rule);

  const granted = o.functionCode >= 1 && o.functionCode <= 127 ? ix.ops.has(opKey(o.functionCode, dir)) : ruleGrantsFunction(rule, o.functionCode, dir);
  if (!granted) return miss('function_not_granted', `${op()} is not granted`);
  if (rule.units && !rule.units.includes(o.unit)) return miss('object_not_granted', `unit ${o.unit} is not among units ${rule.units.join(', ')}`);

  if (o.table === null) {
    // A function on no table: a rule narrowed to tables, addresses or points does not grant it (it
    // was written for those objects), but a deny rule so narrowed still refuses it (unknown = yes).
    if (rule.tables || rule.addresses || rule.points) {
      return contain ? miss('object_not_granted', `${op()} addresses no table; the rule is limited to ${rule.tables ? 'tables' : rule.addresses ? 'addresses' : 'points'}`) : fit;
    }
    if (dir === 'write' && hasBounds(rule.min, rule.max)) {
      return contain ? miss('value_out_of_bounds', `the rule bounds values, and ${op()} carries none that can be checked`) : fit;
    }
    return fit;
  }

  const table = o.table;
  if (rule.tables && !rule.tables.includes(table)) return miss('object_not_granted', `${table} is not among tables ${rule.tables.join(', ')}`);

  const from = o.address;
  const to = o.address + o.quantity - 1;
  const what = () => `${table} ${rangeText(from, to)}`;
  const writing = dir === 'write';
  const knownValues = writing && VALUE_CARRYING_WRITES.has(o.functionCode) && o.values !== undefined ? o.values : undefined;

  if (contain && writing && env.profile) {
    // The device map says these registers are read-only: no rule can make them writable.
    const ro = readOnlyPoints(env.profile, table).find((p) => overlapsAny(from, to, [pointSpan(p)]));
    if (ro) return miss('object_not_granted', `${what()} touches read-only point ${ro.name}`);
  }

  if (rule.points) {
    if (!env.profile) return miss('object_not_granted', `the rule names points, and target ${action.target} has no firmware profile`);
    const profile = env.profile;
    const hit = rulePoints(rule, rule.points, profile, table).filter((p) => overlapsAny(from, to, [pointSpan(p)]));
    if (contain) {
      const usable = writing ? hit.filter((p) => p.access === 'RW') : hit;
      if (!coveredBy(from, to, usable.map(pointSpan))) return miss('object_not_granted', `${what()} is not covered by points ${rule.points.join(', ')}`);
      if (writing) {
        for (const p of usable) {
          const s = pointSpan(p);
          if (s.from < from || s.to > to) return miss('object_not_granted', `the write covers only part of point ${p.name} (${rangeText(s.from, s.to)})`);
          const min = rule.min;
          const max = rule.max;
          if (!hasBounds(min, max) && !hasBounds(p.min, p.max)) continue;
          const v = decodePoint(p, o, profile);
          if (v === undefined) return miss('value_out_of_bounds', p.scale_factor !== undefined && o.scaleFactors?.[p.scale_factor] === undefined
            ? `point ${p.name} is bounded, and its scale factor ${p.scale_factor} could not be read from the device`
            : `point ${p.name} is bounded, and the value written to it cannot be read from the request`);
          if (!withinBounds(v, min, max)) return miss('value_out_of_bounds', `point ${p.name} = ${v}${p.units ? ' ' + p.units : ''} is outside the rule's ${boundsText(min, max)}`);
          if (!withinBounds(v, p.min, p.max)) return miss('value_out_of_bounds', `point ${p.name} = ${v}${p.units ? ' ' + p.units : ''} is outside its safe range ${boundsText(p.min, p.max)}`);
        }
      }
      return fit;
    }
    if (hit.length === 0) return miss('object_not_granted', `${what()} touches none of points ${rule.points.join(', ')}`);
    if (!writing || !hasBounds(rule.min, rule.max)) return fit;
    // A deny rule with bounds refuses a write when any point it names may take a value inside them.
    for (const p of hit) {
      const s = pointSpan(p);
      const v = s.from >= from && s.to <= to ? decodePoint(p, o, profile) : undefined;
      if (v === undefined || withinBounds(v, rule.min, rule.max)) return fit;
    }
    return miss('value_out_of_bounds', `no value written to points ${rule.points.join(', ')} is inside ${boundsText(rule.min, rule.max)}`);
  }

  if (rule.addresses) {
    const ok = contain ? coveredBySorted(from, to, ix.spans!) : overlapsAny(from, to, rule.addresses);
    if (!ok) return miss('object_not_granted', `${what()} is ${contain ? 'not inside' : 'outside'} addresses ${rule.addresses.map((r: Range) => rangeText(r.from, r.to)).join(', ')}`);
  }

  if (!writing || !hasBounds(rule.min, rule.max)) return fit;
  if (contain) {
    if (!knownValues) return miss('value_out_of_bounds', `the rule bounds values, and ${op()} carries none that can be checked`);
    const bad = knownValues.findIndex((v) => !withinBounds(v, rule.min, rule.max));
    if (bad >= 0) return miss('value_out_of_bounds', `value ${knownValues[bad]} at ${table} ${from + bad} is outside ${boundsText(rule.min, rule.max)}`);
    return fit;
  }
  if (!knownValues || knownValues.some((v) => withinBounds(v, rule.min, rule.max))) return fit;
  return miss('value_out_of_bounds', `no value written is inside ${boundsText(rule.min, rule.max)}`);
}

function describe(rule: ModbusRuleConfig): string {
  const parts: string[] = [];
  if (rule.preset) parts.push(`preset ${rule.preset}`);
  if (rule.access) parts.push(`${rule.access} access`);
  if (rule.function_codes) parts.push(`function codes ${rule.function_codes.join(', ')}`);
  parts.push(rule.units ? `unit${rule.units.length > 1 ? 's' : ''} ${rule.units.join(', ')}` : 'any unit');
  if (rule.tables) parts.push(rule.tables.join(', '));
  if (rule.addresses) parts.push(`addresses ${rule.addresses.map((r: Range) => rangeText(r.from, r.to)).join(', ')}`);
  if (rule.points) parts.push(`points ${rule.points.join(', ')}`);
  if (hasBounds(rule.min, rule.max)) parts.push(`values ${boundsText(rule.min, rule.max)}${rule.points ? ' (engineering units)' : ''}`);
  return `modbus: ${parts.join('; ')}`;
}

export const modbusMatcher: ProtocolMatcher<ModbusObject, ModbusRuleConfig> = { kind: 'modbus', validate, match, describe };
