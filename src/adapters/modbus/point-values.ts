// A firmware-profile point's registers ↔ its value. Policy decodes the value a write carries to compare it
// with bounds in engineering units; the agent tools decode what a read returned and encode what an agent
// asks to write. One place, so the three agree on word order, signedness and scaling.
// Engineering value = raw × 10^exponent (the point's fixed `scale_exponent`, or the run-time factor).
import type { FirmwareProfile } from '../../config/types.ts';
import { scaled, withinBounds } from '../../policy/matcher.ts';
import type { ModbusPoint } from './rules.ts';

type WordOrder = FirmwareProfile['word_order'];

/** The number a point's registers (or bit) hold, before scaling; undefined for strings and for a type its width disagrees with. */
export function rawPointValue(p: ModbusPoint, regs: readonly number[], order: WordOrder): number | undefined {
  if (regs.length !== p.words) return undefined;
  if (p.table === 'coil' || p.table === 'discrete_input') return regs[0]!;
  if ((p.type === 'uint16' || p.type === 'int16') && p.words === 1) return p.type === 'int16' && regs[0]! >= 0x8000 ? regs[0]! - 0x10000 : regs[0]!;
  if ((p.type === 'uint32' || p.type === 'int32' || p.type === 'float32') && p.words === 2) {
    const [hi, lo] = order === 'big' ? [regs[0]!, regs[1]!] : [regs[1]!, regs[0]!];
    const view = new DataView(new ArrayBuffer(4));
    view.setUint16(0, hi);
    view.setUint16(2, lo);
    return p.type === 'uint32' ? view.getUint32(0) : p.type === 'int32' ? view.getInt32(0) : view.getFloat32(0);
  }
  return undefined;
}

/** A string point: two ASCII bytes per register, high byte first, NUL padding (and trailing blanks) dropped. */
export function stringPointValue(regs: readonly number[]): string {
  const bytes = Buffer.alloc(regs.length * 2);
  regs.forEach((r, i) => bytes.writeUInt16BE(r, i * 2));
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('latin1').trimEnd();
}

/** The engineering value of a point's registers: a number (null when the factor is unknown), or a string point's text. */
export function pointValue(p: ModbusPoint, regs: readonly number[], order: WordOrder, exponent: number | undefined): number | string | null {
  if (p.type === 'string' && p.table !== 'coil' && p.table !== 'discrete_input') return stringPointValue(regs);
  const raw = rawPointValue(p, regs, order);
  if (raw === undefined) return null;
  if (p.scale_factor !== undefined && exponent === undefined) return null;
  return scaled(raw, p.scale_factor !== undefined ? exponent : p.scale_exponent);
}

/** Why a value cannot be written to a point: stable codes (the agent tools' error codes). */
export type PointValueRefusal =
  | 'value_out_of_range' // outside the point's min/max in the profile
  | 'value_exceeds_type' // the register type cannot hold it (a uint16 above 65535, a negative uint32)
  | 'value_too_precise' // finer than the point's resolution (10^exponent)
  | 'point_type_unsupported'; // a string point: not written by value

const INTEGER_RANGES: Record<'uint16' | 'int16' | 'uint32' | 'int32', [number, number]> = {
  uint16: [0, 0xffff],
  int16: [-0x8000, 0x7fff],
  uint32: [0, 0xffffffff],
  int32: [-0x80000000, 0x7fffffff],
};
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * The registers (or the bit) that make `value` (engineering units) land in point `p`, checked against the
 * point's safe range, its type and its resolution. `exponent` is the scale in force (fixed or read from the device).
 */
export function encodePointValue(p: ModbusPoint, value: number, order: WordOrder, exponent: number | undefined):
  { ok: true; registers: number[] } | { ok: false; code: PointValueRefusal; message: string } {
  const refuse = (code: PointValueRefusal, message: string) => ({ ok: false as const, code, message });
  if (!withinBounds(value, p.min, p.max)) return refuse('value_out_of_range', `${value} is outside ${p.name}'s range ${p.min ?? '-∞'}..${p.max ?? '∞'}${p.units ? ` ${p.units}` : ''}`);
  if (p.table === 'coil') return value === 0 || value === 1 ? { ok: true, registers: [value] } : refuse('value_exceeds_type', `a coil is 0 or 1, not ${value}`);
  if (p.type === 'string') return refuse('point_type_unsupported', `${p.name} is a string point; write its registers by address`);
  const exp = exponent ?? 0;
  // The inverse of scaled(): dividing by 10^n is exact where multiplying by 10^-n is not.
  let raw = exp > 0 ? value / 10 ** exp : value * 10 ** -exp;
  if (p.type === 'float32') {
    if (!Number.isFinite(raw) || Math.abs(raw) > FLOAT32_MAX) return refuse('value_exceeds_type', `${value} does not fit a float32`);
  } else {
    const whole = Math.round(raw);
    if (Math.abs(raw - whole) > 1e-9 * Math.max(1, Math.abs(raw))) return refuse('value_too_precise', `${value} is finer than ${p.name}'s resolution of ${scaled(1, exp)}`);
    raw = whole;
    const [lo, hi] = INTEGER_RANGES[p.type];
    if (raw < lo || raw > hi) return refuse('value_exceeds_type', `${value} needs raw ${raw}, outside what a ${p.type} holds (${lo}..${hi})`);
  }
  if (p.words === 1) return { ok: true, registers: [raw & 0xffff] };
  const view = new DataView(new ArrayBuffer(4));
  if (p.type === 'uint32') view.setUint32(0, raw);
  else if (p.type === 'int32') view.setInt32(0, raw);
  else view.setFloat32(0, raw);
  const hi = view.getUint16(0);
  const lo = view.getUint16(2);
  return { ok: true, registers: order === 'big' ? [hi, lo] : [lo, hi] };
}
