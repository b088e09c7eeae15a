// Generate firmware-profiles/*.yaml from the public SunSpec model definitions (data/sunspec,
// sunspec/models json/, Apache-2.0). Addresses are computed by walking each model's points in order,
// adding their sizes, exactly as a SunSpec device lays models out back to back after the `SunS` marker.
//
//   node scripts/sunspec-to-profile.ts [--sunspec DIR] [--out DIR]     write the profiles
//   node scripts/sunspec-to-profile.ts --check                          exit 1 if the committed YAML differs
//
// The YAML is the artifact (reviewed and committed); this script only makes it reproducible.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Document, isMap, isSeq } from 'yaml';
import type { FirmwareProfile, PointType, ProfilePoint } from '../src/config/types.ts';

interface SunSpecPoint {
  name: string;
  type: string;
  size: number;
  access?: 'R' | 'RW';
  units?: string;
  sf?: string | number;
  label?: string;
  symbols?: { name: string; value: number }[];
}
interface SunSpecGroup {
  name: string;
  points: SunSpecPoint[];
  groups?: (SunSpecGroup & { count?: number | string })[];
}

/** SunSpec point types onto profile types; null = no profile type (the registers are skipped, not moved). */
const typeMap: Record<string, PointType | null> = {
  uint16: 'uint16', int16: 'int16', uint32: 'uint32', int32: 'int32', float32: 'float32', string: 'string',
  acc16: 'uint16', acc32: 'uint32', enum16: 'uint16', bitfield16: 'uint16', enum32: 'uint32', bitfield32: 'uint32',
  sunssf: 'int16', count: 'uint16', ipaddr: 'uint32', pad: null,
  uint64: null, int64: null, acc64: null, ipv6addr: null, eui48: null, float64: null,
};

/**
 * Safe write ranges in engineering units, for writable points whose meaning fixes a sensible range.
 * Setpoints in absolute W/VA/var/V depend on the device rating: they get no range here, and a grant's
 * rule should bound them per site (rule `min`/`max`).
 */
const safeRanges: Record<string, [number, number]> = {
  DA: [1, 247],
  WMaxLimPct: [0, 100], WMaxLimPctRvrt: [0, 100],
  OutPFSet: [-1, 1], PFOvrExt: [0, 1], PFUndExt: [0, 1], WOvrExtPF: [0, 1], WUndExtPF: [0, 1], PF: [0, 1],
  VArWMaxPct: [-100, 100], VArMaxPct: [-100, 100], VArAvalPct: [-100, 100],
  WSetPct: [-100, 100], WSetPctRvrt: [-100, 100], VarSetPct: [-100, 100], VarSetPctRvrt: [-100, 100],
  WRmp: [0, 100], VarRmp: [0, 100],
};
const timeRange = (p: SunSpecPoint): [number, number] | undefined => (p.units === 'Secs' ? (p.size === 2 ? [0, 86400] : [0, 3600]) : undefined);
const symbolRange = (p: SunSpecPoint): [number, number] | undefined => {
  if (!p.symbols?.length) return undefined;
  const values = p.symbols.map((s) => s.value);
  // bitfield symbols are bit positions: any combination of the defined bits
  if (p.type.startsWith('bitfield')) return [0, values.reduce((a, b) => a + 2 ** b, 0)];
  return [Math.min(...values), Math.max(...values)];
};

interface ModelPlacement {
  /** Model id (model_ID.json). */
  id: number;
  /** Point-name group for readable points, e.g. `inverter`. */
  group: string;
  /** Group for writable points when different, e.g. `settings`. */
  writableGroup?: string;
  /** Omit these points (and their registers) from the model, as a vendor's shorter model version does. */
  omit?: string[];
}

interface DeviceSpec {
  name: string;
  vendor: string;
  model: string;
  firmware?: string;
  source: string;
  /** Notes written at the top of the YAML file. */
  notes: string[];
  /** Address of the `SunS` marker (0-based protocol address). */
  base: number;
  /** Models in device order; `gap` skips the registers of models not mapped here (header included). */
  layout: (ModelPlacement | { gap: number; note: string })[];
}

const DEVICES: DeviceSpec[] = [
  {
    name: 'fronius-symo-intsf',
    vendor: 'Fronius',
    model: 'Symo (three-phase) via Fronius Datamanager 2.0, SunSpec "int + SF" model type',
    source: 'Fronius Datamanager Modbus TCP & RTU, operating instructions 42,0410,2049 (register maps: Common Block, Inverter Model I103 at 40070, Immediate Controls IC123); point definitions from SunSpec models 1, 103, 123 (github.com/sunspec/models json/, commit 7abdf89)',
    notes: [
      'Addresses are 0-based protocol addresses: Fronius documents 1-based register numbers (SID = 40001 -> address 40000).',
      'Fronius exposes the common model with length 65 (no Pad register), so the inverter model starts at 40069 (Fronius register 40070).',
      'The Datamanager must be set to "int + SF" (F_ModelType = 2); in float mode the inverter model is 113 and every later address moves.',
      'Models 120 (nameplate, L=26), 121 (basic settings, L=30) and 122 (extended status, L=44) sit between 103 and 123 and are not mapped here',
      '(their SunSpec definitions are not in data/sunspec); IC123 therefore starts at 40227 (Fronius register 40228).',
      'Points with a *_SF partner name it in scale_factor: engineering value = raw x 10^SF; the gateway reads the SF register from the device before it decides a bounded write.',
    ],
    base: 40000,
    layout: [
      { id: 1, group: 'common', writableGroup: 'settings', omit: ['Pad'] },
      { id: 103, group: 'inverter' },
      { gap: 2 + 26, note: 'model 120 nameplate' },
      { gap: 2 + 30, note: 'model 121 basic settings' },
      { gap: 2 + 44, note: 'model 122 extended measurements and status' },
      { id: 123, group: 'controls' },
    ],
  },
  {
    name: 'sunspec-der-1547',
    vendor: 'SunSpec Alliance (reference layout)',
    model: 'IEEE 1547-2018 DER with SunSpec models 1, 701, 702, 704',
    source: 'SunSpec Modbus specification (SunS marker at 40000, models back to back) and SunSpec DER information models 1, 701 (DERMeasureAC), 702 (DERCapacity), 704 (DERCtlAC) from github.com/sunspec/models json/, commit 7abdf89',
    notes: [
      'Addresses are 0-based protocol addresses, computed by walking the SunSpec JSON point sizes from the SunS marker at 40000.',
      'A device that places other models in between (e.g. 703, 705-712) moves the later models: check its discovery walk before use.',
      'uint64 energy totals of model 701 (TotWhInj, TotWhAbs, TotVarh*) have no profile type: their registers are left unmapped.',
      'Points with a *_SF partner name it in scale_factor: engineering value = raw x 10^SF; the gateway reads the SF register from the device before it decides a bounded write.',
      'Absolute W/VA/var/V setpoints depend on the device rating and carry no safe range here: bound them in the grant rule.',
    ],
    base: 40000,
    layout: [
      { id: 1, group: 'common', writableGroup: 'settings' },
      { id: 701, group: 'ac' },
      { id: 702, group: 'capacity', writableGroup: 'settings' },
      { id: 704, group: 'controls' },
    ],
  },
];

function pointsOf(model: SunSpecGroup, place: ModelPlacement, start: number): { points: ProfilePoint[]; next: number } {
  const points: ProfilePoint[] = [];
  let addr = start;
  const emit = (p: SunSpecPoint, prefix: string) => {
    if (place.omit?.includes(p.name)) return;
    const type = typeMap[p.type];
    if (type === undefined) throw new Error(`model ${place.id}: unknown SunSpec type ${p.type} (${p.name})`);
    const address = addr;
    addr += p.size;
    if (type === null) return;
    const access = p.access === 'RW' ? 'RW' : 'R';
    const group = access === 'RW' && place.writableGroup ? place.writableGroup : place.group;
    const point: ProfilePoint = { name: `${group}.${prefix}${p.name}`, table: 'holding_register', address, type, words: p.size, access };
    if (p.units) point.units = p.units;
    if (typeof p.sf === 'number') point.scale_exponent = p.sf;
    else if (typeof p.sf === 'string') point.scale_factor = `${place.group}.${p.sf}`;
    const label = (p.label ?? p.name).trim();
    point.description = p.type === 'sunssf' ? `${label} (scale factor: value = raw x 10^this)` : typeof p.sf === 'string' ? `${label} (scaled by ${place.group}.${p.sf})` : label;
    if (access === 'RW') {
      const range = safeRanges[p.name] ?? symbolRange(p) ?? timeRange(p);
      if (range) [point.min, point.max] = range;
    }
    points.push(point);
  };
  for (const p of model.points) emit(p, '');
  for (const g of model.groups ?? []) {
    // Only fixed sub-groups (no `count`, or count 1): repeating curves have no fixed addresses.
    if (g.count !== undefined && g.count !== 1) throw new Error(`model ${place.id}: repeating group ${g.name} cannot be laid out statically`);
    for (const p of g.points) emit(p, `${g.name}_`);
  }
  return { points, next: addr };
}

export function buildProfile(spec: DeviceSpec, sunspecDir: string): FirmwareProfile {
  const points: ProfilePoint[] = [
    { name: 'common.SID', description: 'SunSpec marker "SunS" (0x53756e53)', table: 'holding_register', address: spec.base, type: 'uint32', words: 2, access: 'R' },
  ];
  let addr = spec.base + 2;
  for (const item of spec.layout) {
    if ('gap' in item) { addr += item.gap; continue; }
    const json = JSON.parse(readFileSync(join(sunspecDir, `model_${item.id}.json`), 'utf8')) as { id: number; group: SunSpecGroup };
    if (json.id !== item.id) throw new Error(`model_${item.id}.json holds model ${json.id}`);
    const r = pointsOf(json.group, item, addr);
    points.push(...r.points);
    addr = r.next;
  }
  const profile: FirmwareProfile = { name: spec.name, vendor: spec.vendor, model: spec.model, protocol: 'modbus', source: spec.source, word_order: 'big', points };
  if (spec.firmware) profile.firmware = spec.firmware;
  return profile;
}

export function renderProfile(spec: DeviceSpec, profile: FirmwareProfile): string {
  const doc = new Document(profile);
  const seq = isMap(doc.contents) ? doc.contents.get('points', true) : undefined;
  if (isSeq(seq)) for (const item of seq.items) if (isMap(item)) item.flow = true;
  const header = [
    `Firmware profile ${spec.name}: generated by scripts/sunspec-to-profile.ts from the SunSpec model JSON; edit the script, not this file.`,
    ...spec.notes,
  ].map((l) => `# ${l}`).join('\n');
  return `${header}\n${doc.toString({ lineWidth: 0 })}`;
}

function main(): void {
  const here = fileURLToPath(new URL('..', import.meta.url));
  const { values } = parseArgs({ options: { sunspec: { type: 'string' }, out: { type: 'string' }, check: { type: 'boolean' } } });
  const sunspecDir = values.sunspec ?? join(here, '..', 'data', 'sunspec');
  const outDir = values.out ?? join(here, 'firmware-profiles');
  let stale = 0;
  for (const spec of DEVICES) {
    const text = renderProfile(spec, buildProfile(spec, sunspecDir));
    const file = join(outDir, `${spec.name}.yaml`);
    if (values.check) {
      let current = '';
      try { current = readFileSync(file, 'utf8'); } catch { /* missing counts as stale */ }
      if (current !== text) { console.error(`${file} is out of date; run node scripts/sunspec-to-profile.ts`); stale++; }
    } else {
      writeFileSync(file, text);
      console.log(`wrote ${file}`);
    }
  }
  if (stale) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
