import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { DEFAULT_PROFILES_DIR, checkFirmwareProfile, loadFirmwareProfile, loadFirmwareProfiles, matchPoints, pointGlob } from '../../src/config/profiles.ts';
import { DEFAULT_HARDWARE_DIR, checkHardwareProfile, loadHardwareProfiles } from '../../src/config/hardware.ts';
import { isPenstockError } from '../../src/common/errors.ts';
import { formatIssue } from '../../src/config/load.ts';
import type { ConfigIssue, FirmwareProfile } from '../../src/config/types.ts';
import { modbusPoints } from '../../src/adapters/modbus/rules.ts';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const BAD_PROFILES = here('./fixtures/bad-profiles/');
const BAD_HARDWARE = here('./fixtures/bad-hardware/');
const SUNSPEC = here('../../data/sunspec/');
const REPO = here('../../');

function issue(issues: ConfigIssue[], field: string): ConfigIssue {
  const found = issues.filter((i) => i.field === field);
  assert.equal(found.length, 1, `exactly one issue at ${field}; got:\n${issues.map(formatIssue).join('\n')}`);
  return found[0]!;
}

test('the firmware profiles shipped in the repo load cleanly', () => {
  const profiles = loadFirmwareProfiles(DEFAULT_PROFILES_DIR);
  assert.deepEqual([...profiles.keys()].sort(), ['fronius-symo-intsf', 'sunspec-der-1547']);
  for (const p of profiles.values()) {
    assert.equal(p.protocol, 'modbus');
    assert.match(p.source, /\S{10}/);
    assert.equal(p.word_order, 'big');
    // writable points live in a writable group, so `controls.*`/`settings.*` rules are what grants write
    for (const pt of p.points.filter((x) => x.access === 'RW')) assert.match(pt.name, /^(controls|settings|setpoints)\./, pt.name);
  }
  const fronius = profiles.get('fronius-symo-intsf')!;
  const lim = fronius.points.find((p) => p.name === 'controls.WMaxLimPct')!;
  // Fronius register 40233 (1-based) in int+SF mode
  assert.deepEqual({ address: lim.address, min: lim.min, max: lim.max, access: lim.access }, { address: 40232, min: 0, max: 100, access: 'RW' });
  for (const pt of fronius.points.filter((p) => p.name.startsWith('controls.') && p.access === 'RW')) {
    assert.ok(pt.min !== undefined && pt.max !== undefined, `${pt.name} has a safe range`);
  }
});

test('the committed profile YAML is what the generator produces', () => {
  execFileSync(process.execPath, [join(REPO, 'scripts/sunspec-to-profile.ts'), '--check', '--sunspec', SUNSPEC], { stdio: 'pipe' });
});

interface JsonPoint { name: string; type: string; size: number }
interface JsonGroup { points: JsonPoint[]; groups?: JsonGroup[] }

/** The points of a SunSpec model with their addresses, walked from the JSON independently of the generator. */
function walkModel(id: number, start: number): { points: { name: string; type: string; size: number; address: number }[]; end: number } {
  const json = JSON.parse(readFileSync(join(SUNSPEC, `model_${id}.json`), 'utf8')) as { group: JsonGroup };
  const out: { name: string; type: string; size: number; address: number }[] = [];
  let addr = start;
  const visit = (g: JsonGroup) => {
    for (const p of g.points) { out.push({ ...p, address: addr }); addr += p.size; }
    for (const sub of g.groups ?? []) visit(sub);
  };
  visit(json.group);
  return { points: out, end: addr };
}

function assertModelAt(profile: FirmwareProfile, id: number, start: number, skip: string[] = []): number {
  const { points, end } = walkModel(id, start);
  let checked = 0;
  for (const jp of points) {
    if (jp.type === 'pad' || skip.includes(jp.name) || /64$/.test(jp.type)) continue;
    const pt = profile.points.find((p) => p.address === jp.address);
    assert.ok(pt, `model ${id} ${jp.name}: a point at ${jp.address}`);
    assert.ok(pt.name.endsWith(`.${jp.name}`) || pt.name.endsWith(`_${jp.name}`), `model ${id}: ${pt.name} at ${jp.address} should be ${jp.name}`);
    assert.equal(pt.words, jp.size, `${pt.name} size`);
    checked++;
  }
  assert.ok(checked > 5);
  return end;
}

test('fronius-symo-intsf addresses follow the SunSpec layout of the Fronius map', () => {
  const p = loadFirmwareProfile('fronius-symo-intsf');
  // SunS at 40000; model 1 at 40002 without Pad (L=65), so 103 at 40069 (Fronius 40070)
  const afterCommon = assertModelAt(p, 1, 40002, ['Pad']) - 1;
  assert.equal(afterCommon, 40069);
  const after103 = assertModelAt(p, 103, afterCommon);
  assert.equal(after103, 40121); // Fronius documents the nameplate model at 40122 (1-based)
  // 120 (L=26), 121 (L=30), 122 (L=44), each with a two-register header
  assertModelAt(p, 123, after103 + 28 + 32 + 46);
});

test('sunspec-der-1547 addresses are models 1, 701, 702, 704 back to back from 40002', () => {
  const p = loadFirmwareProfile('sunspec-der-1547');
  let at = 40002;
  for (const id of [1, 701, 702, 704]) at = assertModelAt(p, id, at);
  assert.equal(Math.max(...modbusPoints(p).map((x) => x.address! + x.words)), at);
});

test('overlapping points and an inverted safe range are located errors', () => {
  const r = checkFirmwareProfile('overlap', BAD_PROFILES);
  assert.equal(r.profile, undefined);
  const o = issue(r.issues, 'points[1].address');
  assert.equal(o.line, 8);
  assert.match(o.message, /status\.A/);
  const m = issue(r.issues, 'points[3].min');
  assert.equal(m.line, 10);
  assert.equal(r.issues.length, 2, 'the same address in another table is no overlap');
  assert.ok(r.issues.every((i) => i.file === join(BAD_PROFILES, 'overlap.yaml')));
});

test('bad types and unknown keys in a profile are located errors', () => {
  const r = checkFirmwareProfile('badtypes', BAD_PROFILES);
  assert.equal(issue(r.issues, 'points[0].address').line, 9);
  assert.equal(issue(r.issues, 'points[1].type').line, 16);
  assert.equal(issue(r.issues, 'points[2].colour').line, 25);
});

test('a run-time scale factor must name a one-register signed point of the profile, and not come with a fixed exponent', () => {
  const r = checkFirmwareProfile('badscale', BAD_PROFILES);
  assert.equal(r.profile, undefined);
  assert.match(issue(r.issues, 'points[0].scale_factor').message, /controls\.Lim_SF must be a modbus int16 holding register/);
  assert.match(issue(r.issues, 'points[1].scale_factor').message, /names no point of this profile/);
  assert.match(issue(r.issues, 'points[2].scale_factor').message, /not both/);
  assert.equal(issue(r.issues, 'points[1].scale_factor').line, 8);
  assert.equal(r.issues.length, 3);
});

test('a profile whose name differs from its file is refused', () => {
  const r = checkFirmwareProfile('wrongname', BAD_PROFILES);
  assert.equal(issue(r.issues, 'name').line, 1);
});

test('profile names cannot escape the profile folder', () => {
  assert.throws(() => loadFirmwareProfile('../fixtures/good', BAD_PROFILES), (e: unknown) => isPenstockError(e, 'PS_CONFIG_INVALID'));
});

test('loadFirmwareProfiles lists the issues of every bad file', () => {
  assert.throws(() => loadFirmwareProfiles(BAD_PROFILES), (e: unknown) => {
    assert.ok(isPenstockError(e, 'PS_CONFIG_INVALID'));
    const files = new Set((e.details as { issues: ConfigIssue[] }).issues.map((i) => i.file.split('/').pop()));
    assert.deepEqual([...files].sort(), ['badscale.yaml', 'badtypes.yaml', 'overlap.yaml', 'wrongname.yaml']);
    return true;
  });
});

test('point globs match within one dotted segment', () => {
  const re = pointGlob('setpoints.*');
  assert.ok(re.test('setpoints.WMax'));
  assert.ok(!re.test('setpoints.curve.V1'));
  assert.ok(!re.test('setpointsX.WMax'));
  assert.ok(pointGlob('*.W').test('inverter.W'));
  assert.ok(!pointGlob('inverter.W').test('inverter.WH'));
  const der = loadFirmwareProfile('sunspec-der-1547');
  assert.deepEqual(matchPoints(der, 'controls.WMaxLimPct*').map((p) => p.name), ['controls.WMaxLimPctEna', 'controls.WMaxLimPct', 'controls.WMaxLimPctRvrt', 'controls.WMaxLimPctEnaRvrt', 'controls.WMaxLimPctRvrtTms', 'controls.WMaxLimPctRvrtRem', 'controls.WMaxLimPct_SF']);
});

test('the hardware profiles shipped in the repo load cleanly', () => {
  const hw = loadHardwareProfiles(DEFAULT_HARDWARE_DIR);
  assert.deepEqual([...hw.keys()].sort(), ['arm-rs485-gateway', 'generic-x86']);
  const arm = hw.get('arm-rs485-gateway')!;
  assert.equal(arm.serial_ports[0]?.kind, 'rs485');
  assert.match(arm.serial_ports[0]!.device, /^\/dev\/tty(mxc1|S1)$/);
  assert.ok(arm.journal_map_size_mib < hw.get('generic-x86')!.journal_map_size_mib);
  assert.deepEqual(hw.get('generic-x86')!.nics.map((n) => n.role).sort(), ['plant', 'uplink']);
});

test('a bad hardware profile gives located errors', () => {
  const r = checkHardwareProfile('badhw', BAD_HARDWARE);
  assert.equal(r.hardware, undefined);
  assert.equal(issue(r.issues, 'state_dir').line, 3);
  assert.equal(issue(r.issues, 'serial_ports[0].device').line, 7);
  assert.equal(issue(r.issues, 'serial_ports[0].kind').line, 7);
  assert.equal(issue(r.issues, 'tpm').line, 12);
});
