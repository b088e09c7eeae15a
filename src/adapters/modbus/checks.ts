// What `penstockctl config check` says about Modbus beyond the schemas: rules that grant more than they
// seem to (warnings with stable W_… codes), and the fields and checks of a Modbus firmware-profile point.
import { z } from 'zod';
import type { FirmwareProfile } from '../../config/types.ts';
import type { ProfilePointIssue, RuleWarning } from '../types.ts';
import { MODBUS_LIMITS } from './functions.ts';
import { MODBUS_TABLE_WRITES } from './policy.ts';
import { modbusTables, type ModbusRuleConfig } from './rules.ts';

/** Stable codes of the Modbus rule warnings: tests and tools match on these, never on the message text. */
export const MODBUS_WARNING_CODES = {
  /** A rule allowing writes to every address 0-65535 (or naming no addresses at all). */
  writeEverywhere: 'W_MODBUS_WRITE_ALL_ADDRESSES',
} as const;

const LAST_ADDRESS = MODBUS_LIMITS.ADDRESS_SPACE - 1;

/** Writes to every address: `readwrite`/`write` (or write codes) over 0-65535, or with no addresses or points at all. */
export function modbusRuleWarnings(rule: ModbusRuleConfig): RuleWarning[] {
  if (rule.effect === 'deny') return []; // a deny rule that reaches everything is what its author meant
  const writes = rule.access === 'write' || rule.access === 'readwrite' || rule.preset === 'readwrite' || rule.preset === 'programming'
    || (rule.function_codes ?? []).some((fc) => MODBUS_TABLE_WRITES.has(fc));
  if (!writes || rule.points !== undefined) return [];
  if (rule.addresses !== undefined) {
    // The schema refuses overlapping ranges, so the covered count is the sum of the ranges' sizes
    // (clipped to the address space: a range may be written past its end).
    let covered = 0;
    for (const r of rule.addresses) covered += Math.min(r.to, LAST_ADDRESS) - r.from + 1;
    if (covered < MODBUS_LIMITS.ADDRESS_SPACE) return [];
  }
  const what = rule.addresses === undefined ? 'no addresses or points' : 'addresses 0-65535';
  return [{ path: rule.addresses === undefined ? [] : ['addresses'], code: MODBUS_WARNING_CODES.writeEverywhere, message: `allows writes to every address (${what}); name the registers and coils that may be written` }];
}

// ---------------------------------------------------------------- firmware-profile points

/** Where a Modbus point sits; the fields every point has (type, words, scales, access, bounds) are config/profiles.ts's. */
export const modbusPointFields = {
  /** Table and 0-based protocol address of the first register (required: see checkModbusPoint). */
  table: z.enum(modbusTables).optional(),
  address: z.number().int().min(0).max(LAST_ADDRESS).optional(),
} as const;

interface PointView {
  name?: unknown;
  table?: unknown;
  address?: unknown;
  type?: unknown;
  words?: unknown;
  access?: unknown;
  scale_exponent?: unknown;
  scale_factor?: unknown;
}

interface Span {
  index: number;
  name: string;
  table: string;
  from: number;
  to: number;
}

function spanOf(p: PointView, index: number): Span | undefined {
  if (typeof p.table !== 'string' || typeof p.address !== 'number' || typeof p.words !== 'number') return undefined;
  return { index, name: String(p.name), table: p.table, from: p.address, to: p.address + p.words - 1 };
}

/** Problems with one point of a Modbus profile: its fields, its scale factor, a register it shares with another point. */
export function checkModbusPoint(point: Record<string, unknown>, profile: FirmwareProfile): ProfilePointIssue[] {
  const p = point as PointView;
  const out: ProfilePointIssue[] = [];
  const issue = (path: ProfilePointIssue['path'], message: string) => out.push({ path, message });
  const words = typeof p.words === 'number' ? p.words : undefined;
  if (typeof p.address === 'number' && words !== undefined && p.address + words - 1 > LAST_ADDRESS) issue(['words'], `point runs past address ${LAST_ADDRESS}`);
  if ((p.table === 'coil' || p.table === 'discrete_input') && words !== undefined && words !== 1) issue(['words'], `a ${p.table} is one bit: words must be 1`);
  if ((p.table === 'discrete_input' || p.table === 'input_register') && p.access === 'RW') issue(['access'], `a ${p.table} cannot be written`);
  if (p.table === undefined) issue([], 'a modbus point needs `table`');
  if (p.address === undefined) issue([], 'a modbus point needs `address`');

  // A run-time scale factor is a one-register signed point of the same profile, read from the device
  // (config/profiles.ts has checked that the name names a point, and the words each type spans).
  if (typeof p.scale_factor === 'string') {
    const sf = profile.points.find((q) => q.name === p.scale_factor);
    if (sf && (sf.type !== 'int16' || sf.words !== 1 || sf.table !== 'holding_register')) issue(['scale_factor'], `${p.scale_factor} must be a modbus int16 holding register`);
  }

  // Two points sharing a register is a map error: a write to one would silently change the other. Reported
  // on the later of the two in address order (then in file order), naming the nearest earlier one.
  const points = profile.points as readonly PointView[];
  let index = points.indexOf(p);
  if (index < 0) index = points.findIndex((q) => q.name === p.name);
  const own = spanOf(p, index);
  if (own) {
    const before = (s: Span) => s.from < own.from || (s.from === own.from && s.index < own.index);
    const earlier = points
      .map((q, i) => (i === index ? undefined : spanOf(q, i)))
      .filter((s): s is Span => s !== undefined && s.table === own.table && before(s) && s.to >= own.from)
      .sort((a, b) => a.from - b.from || a.index - b.index)
      .at(-1);
    if (earlier) issue(['address'], `${own.table} ${own.from}-${own.to} (${own.name}) overlaps ${earlier.from}-${earlier.to} (${earlier.name})`);
  }
  return out;
}
