// Firmware profiles: named register (or node) maps of one device model, from firmware-profiles/*.yaml.
// A rule can then say `points: [controls.WMaxLimPct]` instead of raw addresses, and a write is bounded
// by the point's safe range. Each file is checked as strictly as the config, with the same located errors.
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PenstockError } from '../common/errors.ts';
import { modbusTables } from './schema.ts';
import type { ConfigIssue, FirmwareProfile, ProfilePoint } from './types.ts';
import { fileIssue, issueAt, readYaml, sortIssues, throwIfErrors, zodToIssues, deepFreeze } from './yaml-issues.ts';

/** firmware-profiles/ of this installation (beside src/). */
export const DEFAULT_PROFILES_DIR = fileURLToPath(new URL('../../firmware-profiles/', import.meta.url));

/** A profile or hardware name: it becomes a file name, so no slashes or dots-first (no path traversal). */
export const profileNameRe = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

const pointNameRe = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const typeWords: Record<Exclude<ProfilePoint['type'], 'string'>, number> = { uint16: 1, int16: 1, uint32: 2, int32: 2, float32: 2 };

const pointSchema = z.strictObject({
  name: z.string().regex(pointNameRe, 'must be a dotted name such as setpoints.WMaxLimPct'),
  description: z.string().optional(),
  table: z.enum(modbusTables).optional(),
  address: z.number().int().min(0).max(65535).optional(),
  node: z.string().min(1).optional(),
  type: z.enum(['uint16', 'int16', 'uint32', 'int32', 'float32', 'string']),
  words: z.number().int().min(1).max(125),
  scale_exponent: z.number().int().min(-10).max(10).optional(),
  scale_factor: z.string().regex(pointNameRe).optional(),
  units: z.string().min(1).optional(),
  access: z.enum(['R', 'RW']),
  min: z.number().optional(),
  max: z.number().optional(),
}).superRefine((p, ctx) => {
  if (p.type !== 'string' && p.words !== typeWords[p.type]) ctx.addIssue({ code: 'custom', path: ['words'], message: `a ${p.type} spans ${typeWords[p.type]} register(s), not ${p.words}` });
  if (p.address !== undefined && p.address + p.words - 1 > 65535) ctx.addIssue({ code: 'custom', path: ['words'], message: `point runs past address 65535` });
  if (p.min !== undefined && p.max !== undefined && p.min > p.max) ctx.addIssue({ code: 'custom', path: ['min'], message: `min ${p.min} exceeds max ${p.max}` });
  if ((p.table === 'coil' || p.table === 'discrete_input') && p.words !== 1) ctx.addIssue({ code: 'custom', path: ['words'], message: `a ${p.table} is one bit: words must be 1` });
  if ((p.table === 'discrete_input' || p.table === 'input_register') && p.access === 'RW') ctx.addIssue({ code: 'custom', path: ['access'], message: `a ${p.table} cannot be written` });
  if (p.scale_factor !== undefined && p.scale_exponent !== undefined) ctx.addIssue({ code: 'custom', path: ['scale_factor'], message: 'a point has a fixed scale_exponent or a run-time scale_factor, not both' });
});

export const firmwareProfileSchema = z.strictObject({
  name: z.string().regex(profileNameRe, 'must be 1-64 letters, digits, dash or underscore'),
  vendor: z.string().min(1),
  model: z.string().min(1),
  firmware: z.string().min(1).optional(),
  protocol: z.enum(['modbus', 'opcua']),
  source: z.string().min(1),
  word_order: z.enum(['big', 'little']).default('big'),
  points: z.array(pointSchema).min(1),
}).superRefine((prof, ctx) => {
  const names = new Map<string, number>();
  prof.points.forEach((p, i) => {
    const first = names.get(p.name);
    if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['points', i, 'name'], message: `duplicate point name ${p.name} (also points[${first}])` });
    else names.set(p.name, i);
    if (prof.protocol === 'modbus') {
      if (p.table === undefined) ctx.addIssue({ code: 'custom', path: ['points', i], message: 'a modbus point needs `table`' });
      if (p.address === undefined) ctx.addIssue({ code: 'custom', path: ['points', i], message: 'a modbus point needs `address`' });
      if (p.node !== undefined) ctx.addIssue({ code: 'custom', path: ['points', i, 'node'], message: '`node` is for opcua profiles' });
    } else {
      if (p.node === undefined) ctx.addIssue({ code: 'custom', path: ['points', i], message: 'an opcua point needs `node`' });
      if (p.table !== undefined || p.address !== undefined) ctx.addIssue({ code: 'custom', path: ['points', i, p.table !== undefined ? 'table' : 'address'], message: '`table` and `address` are for modbus profiles' });
    }
  });
  // A run-time scale factor is a one-register signed point of the same profile, read from the device.
  prof.points.forEach((p, i) => {
    if (p.scale_factor === undefined) return;
    const sf = prof.points.find((q) => q.name === p.scale_factor);
    if (!sf) ctx.addIssue({ code: 'custom', path: ['points', i, 'scale_factor'], message: `names no point of this profile (${p.scale_factor})` });
    else if (prof.protocol !== 'modbus' || sf.type !== 'int16' || sf.words !== 1 || sf.table !== 'holding_register') {
      ctx.addIssue({ code: 'custom', path: ['points', i, 'scale_factor'], message: `${p.scale_factor} must be a modbus int16 holding register` });
    }
  });
  // Two points sharing a register is a map error: a write to one would silently change the other.
  const spans = prof.points
    .map((p, i) => ({ i, name: p.name, table: p.table, from: p.address, to: p.address === undefined ? undefined : p.address + p.words - 1 }))
    .filter((s): s is { i: number; name: string; table: NonNullable<typeof s.table>; from: number; to: number } => s.table !== undefined && s.from !== undefined)
    .sort((a, b) => (a.table === b.table ? a.from - b.from || a.i - b.i : a.table < b.table ? -1 : 1));
  for (let k = 1; k < spans.length; k++) {
    const prev = spans[k - 1]!;
    const cur = spans[k]!;
    if (cur.table === prev.table && cur.from <= prev.to) {
      ctx.addIssue({ code: 'custom', path: ['points', cur.i, 'address'], message: `${cur.table} ${cur.from}-${cur.to} (${cur.name}) overlaps ${prev.from}-${prev.to} (${prev.name})` });
    }
  }
});

/** Check one profile file (firmware-profiles/NAME.yaml). Never throws for bad input. */
export function checkFirmwareProfile(name: string, dir: string = DEFAULT_PROFILES_DIR): { profile?: FirmwareProfile; issues: ConfigIssue[]; missing?: boolean } {
  const file = join(dir, `${name}.yaml`);
  if (!profileNameRe.test(name)) return { issues: [fileIssue(file, `invalid profile name ${JSON.stringify(name)}`)] };
  return checkProfileFile(file);
}

function checkProfileFile(file: string): { profile?: FirmwareProfile; issues: ConfigIssue[]; missing?: boolean } {
  const { source, issues, missing } = readYaml(file);
  if (!source) return missing ? { issues, missing } : { issues };
  const parsed = firmwareProfileSchema.safeParse(source.data);
  if (!parsed.success) return { issues: sortIssues([...issues, ...zodToIssues(source, parsed.error.issues)]) };
  const expected = basename(file, '.yaml');
  if (parsed.data.name !== expected) return { issues: [...issues, issueAt(source, ['name'], `name ${parsed.data.name} must match the file name ${expected}`)] };
  return { profile: deepFreeze(parsed.data as FirmwareProfile), issues };
}

/** Load one profile; throws PS_CONFIG_INVALID (details.issues) when the file is missing or invalid. */
export function loadFirmwareProfile(name: string, dir: string = DEFAULT_PROFILES_DIR): FirmwareProfile {
  const { profile, issues } = checkFirmwareProfile(name, dir);
  throwIfErrors(`firmware profile ${name}`, issues);
  return profile!;
}

/** Every *.yaml in `dir`, by name; throws PS_CONFIG_INVALID listing the issues of every bad file. */
export function loadFirmwareProfiles(dir: string = DEFAULT_PROFILES_DIR): Map<string, FirmwareProfile> {
  const { profiles, issues } = checkFirmwareProfiles(dir);
  throwIfErrors(`firmware profiles in ${dir}`, issues);
  return profiles;
}

export function checkFirmwareProfiles(dir: string = DEFAULT_PROFILES_DIR): { profiles: Map<string, FirmwareProfile>; issues: ConfigIssue[] } {
  const profiles = new Map<string, FirmwareProfile>();
  const issues: ConfigIssue[] = [];
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
  } catch (err) {
    throw new PenstockError('PS_CONFIG_READ', `cannot read firmware profile folder ${dir}`, { dir }, { cause: err });
  }
  for (const f of names) {
    const r = checkProfileFile(join(dir, f));
    issues.push(...r.issues);
    if (r.profile) profiles.set(r.profile.name, r.profile);
  }
  return { profiles, issues };
}

/**
 * A point glob as rules write it: `*` matches within one dotted segment (`setpoints.*` matches
 * `setpoints.WMax` but not `setpoints.curve.V1`); everything else is literal.
 */
export function pointGlob(glob: string): RegExp {
  const body = glob.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^.]*');
  return new RegExp(`^${body}$`);
}

/** The points of `profile` a glob names (empty when none). */
export function matchPoints(profile: FirmwareProfile, glob: string): ProfilePoint[] {
  const re = pointGlob(glob);
  return profile.points.filter((p) => re.test(p.name));
}
