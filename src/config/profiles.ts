// Firmware profiles: named point maps of one device model, from firmware-profiles/*.yaml. The fields
// every point has are checked here; where a point is on the wire, by its protocol's module.
// A rule can then say `points: [controls.WMaxLimPct]` instead of raw addresses, and a write is bounded
// by the point's safe range. Each file is checked as strictly as the config, with the same located errors.
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PenstockError } from '../common/errors.ts';
import { protocols } from '../adapters/registry.ts';
import type { ProtocolModule } from '../adapters/types.ts';
import type { ConfigIssue, FirmwareProfile, ProfilePoint } from './types.ts';
import { fileIssue, issueAt, readYaml, sortIssues, throwIfErrors, zodToIssues, deepFreeze } from './yaml-issues.ts';

/** firmware-profiles/ of this installation (beside src/). */
export const DEFAULT_PROFILES_DIR = fileURLToPath(new URL('../../firmware-profiles/', import.meta.url));

/** A profile or hardware name: it becomes a file name, so no slashes or dots-first (no path traversal). */
export const profileNameRe = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

const pointNameRe = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const typeWords: Record<Exclude<ProfilePoint['type'], 'string'>, number> = { uint16: 1, int16: 1, uint32: 2, int32: 2, float32: 2 };

const pointFields = {
  name: z.string().regex(pointNameRe, 'must be a dotted name such as setpoints.WMaxLimPct'),
  description: z.string().optional(),
  type: z.enum(['uint16', 'int16', 'uint32', 'int32', 'float32', 'string']),
  words: z.number().int().min(1).max(125),
  scale_exponent: z.number().int().min(-10).max(10).optional(),
  scale_factor: z.string().regex(pointNameRe).optional(),
  units: z.string().min(1).optional(),
  access: z.enum(['R', 'RW']),
  min: z.number().optional(),
  max: z.number().optional(),
};

/** A point of a profile for `m`: the shared fields and the module's own, strictly. */
function pointSchemaOf(m: ProtocolModule) {
  return z.strictObject({ ...pointFields, ...m.profilePoint!.fields }).superRefine((p, ctx) => {
    if (p.type !== 'string' && p.words !== typeWords[p.type]) ctx.addIssue({ code: 'custom', path: ['words'], message: `a ${p.type} spans ${typeWords[p.type]} register(s), not ${p.words}` });
    if (p.min !== undefined && p.max !== undefined && p.min > p.max) ctx.addIssue({ code: 'custom', path: ['min'], message: `min ${p.min} exceeds max ${p.max}` });
    if (p.scale_factor !== undefined && p.scale_exponent !== undefined) ctx.addIssue({ code: 'custom', path: ['scale_factor'], message: 'a point has a fixed scale_exponent or a run-time scale_factor, not both' });
  });
}

const profileFields = {
  name: z.string().regex(profileNameRe, 'must be 1-64 letters, digits, dash or underscore'),
  vendor: z.string().min(1),
  model: z.string().min(1),
  firmware: z.string().min(1).optional(),
  source: z.string().min(1),
  word_order: z.enum(['big', 'little']).default('big'),
};

/** Profiles exist for the protocols whose modules read points; one strict schema each, chosen by `protocol`. */
function buildProfileSchema() {
  const withPoints = [...protocols.values()].filter((m) => m.profilePoint);
  const options = withPoints.map((m) => z.strictObject({ ...profileFields, protocol: z.literal(m.name), points: z.array(pointSchemaOf(m)).min(1) }));
  return z.discriminatedUnion('protocol', options as unknown as [z.ZodObject, ...z.ZodObject[]]).superRefine((raw: unknown, ctx) => {
    const prof = raw as unknown as FirmwareProfile;
    const names = new Map<string, number>();
    prof.points.forEach((p, i) => {
      const first = names.get(p.name);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['points', i, 'name'], message: `duplicate point name ${p.name} (also points[${first}])` });
      else names.set(p.name, i);
      // A run-time scale factor is another point of the same profile, read from the device; the
      // protocol's module says which points can be one.
      if (p.scale_factor !== undefined && !prof.points.some((q) => q.name === p.scale_factor)) ctx.addIssue({ code: 'custom', path: ['points', i, 'scale_factor'], message: `names no point of this profile (${p.scale_factor})` });
      for (const issue of protocols.get(prof.protocol)!.profilePoint!.check(p, prof)) ctx.addIssue({ code: 'custom', path: ['points', i, ...issue.path], message: issue.message });
    });
  });
}

export const firmwareProfileSchema = buildProfileSchema();

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
  return { profile: deepFreeze(parsed.data as unknown as FirmwareProfile), issues };
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
