// Gateway hardware profiles (hardware/*.yaml): where state lives, which serial ports and NICs exist,
// how big the journal map may be, which watchdog and key storage the box has. A config names one with
// `appliance.hardware`; its directories and map size become the defaults the config does not override.
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PenstockError } from '../common/errors.ts';
import type { ConfigIssue, HardwareProfile } from './types.ts';
import { profileNameRe } from './profiles.ts';
import { deepFreeze, fileIssue, issueAt, readYaml, sortIssues, throwIfErrors, zodToIssues } from './yaml-issues.ts';

/** hardware/ of this installation (beside src/). */
export const DEFAULT_HARDWARE_DIR = fileURLToPath(new URL('../../hardware/', import.meta.url));

const absPath = z.string().regex(/^\/[^\0]*$/, 'must be an absolute path');

export const hardwareProfileSchema = z.strictObject({
  name: z.string().regex(profileNameRe, 'must be 1-64 letters, digits, dash or underscore'),
  description: z.string().min(1),
  state_dir: absPath,
  runtime_dir: absPath,
  journal_map_size_mib: z.number().int().min(16).max(1024 * 1024),
  /** The board's RAM: front doors cap the message buffers unauthenticated clients may negotiate at a share of it. */
  memory_mib: z.number().int().min(128).max(1024 * 1024),
  /** Limits for the service's cgroup (systemd MemoryMax=, TasksMax=): the shipped unit carries the smallest profile's. */
  service: z.strictObject({
    memory_max_mib: z.number().int().min(128).max(1024 * 1024),
    tasks_max: z.number().int().min(16).max(4096),
  }),
  serial_ports: z.array(z.strictObject({
    name: z.string().min(1),
    device: z.string().regex(/^\/dev\/\S+$/, 'must be a device path under /dev'),
    kind: z.enum(['rs485', 'rs232']),
    baud: z.number().int().min(300).max(4_000_000).optional(),
  })).default([]),
  nics: z.array(z.strictObject({
    name: z.string().min(1),
    role: z.enum(['plant', 'uplink', 'management']),
  })).min(1),
  /** Watchdog timeout the service runs under (systemd WatchdogSec, backed by a hardware watchdog where there is one). */
  watchdog_seconds: z.number().int().min(1).max(3600),
  /** Where the appliance signing key and vault key live: `file` (root-only file on the data disk), `tpm2`, or a vendor secure element. */
  key_storage: z.string().min(1),
}).superRefine((h, ctx) => {
  if (h.service.memory_max_mib > h.memory_mib) ctx.addIssue({ code: 'custom', path: ['service', 'memory_max_mib'], message: `more than the board's memory_mib (${h.memory_mib})` });
  const dup = <T extends { name: string }>(list: T[], key: 'serial_ports' | 'nics') => {
    const seen = new Set<string>();
    list.forEach((x, i) => {
      if (seen.has(x.name)) ctx.addIssue({ code: 'custom', path: [key, i, 'name'], message: `duplicate name ${x.name}` });
      seen.add(x.name);
    });
  };
  dup(h.serial_ports, 'serial_ports');
  dup(h.nics, 'nics');
});

export function checkHardwareProfile(name: string, dir: string = DEFAULT_HARDWARE_DIR): { hardware?: HardwareProfile; issues: ConfigIssue[]; missing?: boolean } {
  const file = join(dir, `${name}.yaml`);
  if (!profileNameRe.test(name)) return { issues: [fileIssue(file, `invalid hardware profile name ${JSON.stringify(name)}`)] };
  return checkHardwareFile(file);
}

function checkHardwareFile(file: string): { hardware?: HardwareProfile; issues: ConfigIssue[]; missing?: boolean } {
  const { source, issues, missing } = readYaml(file);
  if (!source) return missing ? { issues, missing } : { issues };
  const parsed = hardwareProfileSchema.safeParse(source.data);
  if (!parsed.success) return { issues: sortIssues([...issues, ...zodToIssues(source, parsed.error.issues)]) };
  const expected = basename(file, '.yaml');
  if (parsed.data.name !== expected) return { issues: [...issues, issueAt(source, ['name'], `name ${parsed.data.name} must match the file name ${expected}`)] };
  return { hardware: deepFreeze(parsed.data), issues };
}

/** Load one hardware profile; throws PS_CONFIG_INVALID (details.issues) when missing or invalid. */
export function loadHardwareProfile(name: string, dir: string = DEFAULT_HARDWARE_DIR): HardwareProfile {
  const { hardware, issues } = checkHardwareProfile(name, dir);
  throwIfErrors(`hardware profile ${name}`, issues);
  return hardware!;
}

/** Every *.yaml in `dir`, by name; throws PS_CONFIG_INVALID listing the issues of every bad file. */
export function loadHardwareProfiles(dir: string = DEFAULT_HARDWARE_DIR): Map<string, HardwareProfile> {
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
  } catch (err) {
    throw new PenstockError('PS_CONFIG_READ', `cannot read hardware profile folder ${dir}`, { dir }, { cause: err });
  }
  const out = new Map<string, HardwareProfile>();
  const issues: ConfigIssue[] = [];
  for (const f of names) {
    const r = checkHardwareFile(join(dir, f));
    issues.push(...r.issues);
    if (r.hardware) out.set(r.hardware.name, r.hardware);
  }
  throwIfErrors(`hardware profiles in ${dir}`, issues);
  return out;
}
