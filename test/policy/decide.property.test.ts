// Property tests of decide() against a reference oracle written here, independently of the
// matchers: brute force over register sets, a fixed-offset clock for schedules, argv known from
// how the command line was generated (not parsed). Runs per property: PENSTOCK_PROPERTY_RUNS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { grantSchema, principalSchema, type RuleConfig } from '../../src/config/schema.ts';
import type { ModbusObject, ModbusPoint, ModbusRuleConfig, ModbusTable } from '../../src/adapters/modbus/rules.ts';
import type { OpcuaObject, OpcuaRuleConfig } from '../../src/adapters/opcua/rules.ts';
import type { SshObject, SshRuleConfig } from '../../src/adapters/ssh/rules.ts';
import type { FirmwareProfile, ProfilePoint, TargetConfig } from '../../src/config/types.ts';
import type { HeldGrant } from '../../src/grants/types.ts';
import { decide, type DecisionContext } from '../../src/policy/decide.ts';
import type { Action, Verb } from '../../src/policy/types.ts';

/** The rules and objects of the three protocols this oracle knows (the config's types are generic). */
type ProtocolRule = { modbus: ModbusRuleConfig } | { opcua: OpcuaRuleConfig } | { ssh: SshRuleConfig };
type ProtocolObject = ModbusObject | OpcuaObject | SshObject;

const RUNS = Number(process.env.PENSTOCK_PROPERTY_RUNS ?? 2000);
const NOW0 = Date.parse('2026-06-15T10:00:00Z');
const HOUR = 3_600_000;

// ------------------------------------------------------------------ the world

const modbusProfile: FirmwareProfile = {
  name: 'm', vendor: 'v', model: 'm', protocol: 'modbus', source: 'test', word_order: 'big',
  points: [
    { name: 'set.a', table: 'holding_register', address: 10, type: 'uint16', words: 1, access: 'RW', min: 0, max: 200 },
    { name: 'set.b', table: 'holding_register', address: 11, type: 'float32', words: 2, access: 'RW', min: 200, max: 260 },
    { name: 'set.c', table: 'holding_register', address: 13, type: 'int32', words: 2, access: 'RW', min: -100, max: 100, scale_exponent: -1 },
    { name: 'stat.a', table: 'holding_register', address: 20, type: 'uint16', words: 1, access: 'R' },
    { name: 'stat.b', table: 'input_register', address: 5, type: 'int16', words: 1, access: 'R' },
    { name: 'ctl.b', table: 'coil', address: 3, type: 'uint16', words: 1, access: 'RW' },
  ],
};
const opcuaProfile: FirmwareProfile = {
  name: 'o', vendor: 'v', model: 'o', protocol: 'opcua', source: 'test', word_order: 'big',
  points: [
    { name: 'drum.level', node: 'ns=1;s=boiler/Drum/Level', type: 'float32', words: 2, access: 'R' },
    { name: 'sp.temp', node: 'ns=1;s=boiler/Setpoint', type: 'float32', words: 2, access: 'RW', min: 0, max: 80 },
  ],
};
const profiles = new Map([['m', modbusProfile], ['o', opcuaProfile]]);
const targets = new Map<string, TargetConfig>([
  ['plc', { id: 'plc', protocol: 'modbus', zone: 'z', profile: 'm' }],
  ['hmi', { id: 'hmi', protocol: 'opcua', zone: 'z', profile: 'o' }],
  ['gw', { id: 'gw', protocol: 'ssh', zone: 'z' }],
]);
const principal = principalSchema.parse({ id: 'p1', kind: 'agent', owner: 'o', purpose: 'test' });

// ------------------------------------------------------------------ generators: rules

const effect = fc.constantFrom('allow', 'allow', 'allow', 'deny', 'approve');
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
/** Present about a third of the time, so rules are often broad enough for actions to land inside. */
const sometimes = <T>(a: fc.Arbitrary<T>) => fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });
const subset = <T>(xs: T[]) => fc.subarray(xs, { minLength: 1 });
const bounds = sometimes(fc.tuple(opt(fc.constantFrom(-50, 0, 10, 100)), opt(fc.constantFrom(50, 100, 150, 300))).filter(([a, b]) => a === undefined || b === undefined || a <= b)).map((b) => b ?? [undefined, undefined]);

const modbusRule = fc.record({
  effect,
  preset: opt(fc.constantFrom('readonly', 'readwrite', 'readwrite', 'programming')),
  access: opt(fc.constantFrom('read', 'write', 'readwrite', 'readwrite')),
  function_codes: sometimes(subset([1, 3, 5, 6, 8, 16, 23, 43, 90])),
  units: sometimes(subset([0, 1, 2])),
  tables: sometimes(subset(['coil', 'discrete_input', 'input_register', 'holding_register'])),
  where: fc.oneof(
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.constantFrom(['0-12'], ['10-14', '15-30'], [3, '11-12'], ['5-20']).map((addresses) => ({ addresses })) },
    { weight: 3, arbitrary: subset(['set.*', 'set.a', 'stat.*', '*.b', 'set.c']).map((points) => ({ points })) },
  ),
  bounds,
}).filter((r) => r.preset !== undefined || r.access !== undefined || r.function_codes !== undefined)
  .map(({ where, bounds: [min, max], ...r }) => ({ modbus: strip({ ...r, ...where, min, max }) }));

const opcuaRule = fc.record({
  effect,
  verbs: subset(['read', 'write', 'call', 'browse', 'subscribe', 'history']),
  nodes: opt(subset(['ns=1;s=boiler/*', 'ns=1;s=boiler/Setpoint', 'ns=2;i=5', 'ns=1;s=*'])),
  browse_paths: opt(subset(['Objects/Boiler', 'Objects/Boiler/Drum', 'Objects/Other'])),
  points: opt(subset(['drum.*', 'sp.*', '*.level'])),
  bounds,
}).filter((r) => r.nodes !== undefined || r.browse_paths !== undefined || r.points !== undefined)
  .map(({ bounds: [min, max], ...r }) => ({ opcua: strip({ ...r, min, max }) }));

/** Command-line words with what the shell makes of them, so the oracle need not parse. */
interface Word { text: string; arg: string; meta: boolean }
const WORDS: Word[] = [
  { text: 'ls', arg: 'ls', meta: false },
  { text: 'systemctl', arg: 'systemctl', meta: false },
  { text: 'status', arg: 'status', meta: false },
  { text: 'penstock', arg: 'penstock', meta: false },
  { text: '-l', arg: '-l', meta: false },
  { text: '--', arg: '--', meta: false },
  { text: '-', arg: '-', meta: false },
  { text: '--host=x', arg: '--host=x', meta: false },
  { text: 'rm', arg: 'rm', meta: false },
  { text: "'a b'", arg: 'a b', meta: false },
  { text: '"x;y"', arg: 'x;y', meta: false },
  { text: ';', arg: ';', meta: true },
  { text: '|', arg: '|', meta: true },
  { text: '$(id)', arg: '$(id)', meta: true },
  { text: '*.log', arg: '*.log', meta: true },
];
/** The words each generated exec was built from: the oracle's argv, with no parsing involved. */
const wordsOf = new WeakMap<object, Word[]>();
const commandWords = fc.array(fc.constantFrom(...WORDS), { minLength: 0, maxLength: 4 });
const line = (ws: Word[]) => ws.map((w) => w.text).join(' ');

const sshRule = fc.oneof(
  fc.record({ effect, exec: fc.tuple(fc.array(fc.constantFrom('ls', 'systemctl', 'status', 'penstock', '-l', 'rm', 'a b', '*', '-*', '--', '--host=*'), { minLength: 1, maxLength: 3 }), fc.constantFrom(undefined, '...', '-...')) })
    .map(({ effect, exec: [ws, tail] }) => ({ ssh: { effect, exec: tail ? [...ws, tail] : ws } })),
  fc.record({ effect, words: commandWords.filter((w) => w.length > 0) }).map(({ effect, words }) => ({ ssh: { effect, command_line: line(words) } })),
  effect.map((effect) => ({ ssh: { effect, shell: true } })),
  fc.record({ effect, tunnel: fc.constantFrom('modbus', 'raw') }).map((r) => ({ ssh: r })),
  fc.record({ effect, paths: subset(['/var/log/plc/*', '/var/log/plc/**', '/var/log/*', '/etc/passwd']), direction: fc.constantFrom('download', 'upload', 'both'), max_bytes: opt(fc.constantFrom(100, 5000)) })
    .map(({ effect, ...sftp }) => ({ ssh: { effect, sftp: strip(sftp) } })),
);

function strip<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

// ------------------------------------------------------------------ generators: grants

/** Zones with a fixed offset, so the oracle can do schedule arithmetic without a zone database. */
const FIXED_TZ: Record<string, number> = { UTC: 0, 'Asia/Kolkata': 5.5 * HOUR };
const hhmm = fc.constantFrom('00:00', '06:30', '09:00', '10:00', '12:00', '17:00', '22:00', '24:00');
const scheduleEntry = fc.record({ days: subset(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']), from: hhmm, to: hhmm, tz: fc.constantFrom(...Object.keys(FIXED_TZ)) }).filter((s) => s.from !== s.to);

type Kind = 'modbus' | 'opcua' | 'ssh';
const RULES: Record<Kind, fc.Arbitrary<unknown>> = { modbus: modbusRule, opcua: opcuaRule, ssh: sshRule };
/** Mostly rules of the action's protocol (the interesting ones), some of the others. */
const ruleFor = (kind: Kind) => fc.oneof({ weight: 4, arbitrary: RULES[kind] }, { weight: 1, arbitrary: fc.oneof(modbusRule, opcuaRule, sshRule) });

const grantArb = (id: string, kind: Kind) => fc.record({
  targets: subset(['plc', 'hmi', 'gw']),
  window: sometimes(fc.tuple(fc.integer({ min: -72, max: 24 }), fc.integer({ min: 1, max: 120 })).map(([from, len]) => ({ from: new Date(NOW0 + from * HOUR).toISOString(), to: new Date(NOW0 + (from + len) * HOUR).toISOString() }))),
  schedule: sometimes(fc.array(scheduleEntry, { minLength: 1, maxLength: 2 })),
  revoked: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
  rules: fc.array(ruleFor(kind), { minLength: 1, maxLength: 5 }),
}).map(({ revoked, ...g }): HeldGrant => ({
  ...grantSchema.parse(strip({ id, principal: 'p1', task: { ticket: 'T' }, ...g })),
  source: 'config',
  ...(revoked ? { revoked: { by: { uid: 0, verified: true }, at: new Date(NOW0).toISOString(), reason: 'test' } } : {}),
}));
const grantsArb = (kind: Kind) => fc.integer({ min: 1, max: 3 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => grantArb(`G${i}`, kind))));

// ------------------------------------------------------------------ generators: actions

const FC_SHAPES: { fc: number; table: ModbusTable | null; verb: Verb }[] = [
  { fc: 1, table: 'coil', verb: 'read' }, { fc: 2, table: 'discrete_input', verb: 'read' },
  { fc: 3, table: 'holding_register', verb: 'read' }, { fc: 4, table: 'input_register', verb: 'read' },
  { fc: 5, table: 'coil', verb: 'write' }, { fc: 6, table: 'holding_register', verb: 'write' },
  { fc: 15, table: 'coil', verb: 'write' }, { fc: 16, table: 'holding_register', verb: 'write' },
  { fc: 22, table: 'holding_register', verb: 'write' }, { fc: 23, table: 'holding_register', verb: 'read' },
  { fc: 23, table: 'holding_register', verb: 'write' }, { fc: 8, table: null, verb: 'diagnostic' },
  { fc: 43, table: null, verb: 'read' }, { fc: 90, table: null, verb: 'program' },
];
const registerValue = fc.oneof(fc.constantFrom(0, 5, 100, 150, 200, 201, 0xffff, 0x8000), fc.integer({ min: 0, max: 0xffff }));
/** 32-bit values near the points' bounds, in either word order (so a swapped pair decodes to garbage). */
const wordPair = fc.tuple(fc.constantFrom<['f' | 'i', number]>(['f', 230], ['f', 250.5], ['f', 300], ['f', NaN], ['i', 500], ['i', -500], ['i', 1000], ['i', -1001], ['i', 1500]), fc.boolean()).map(([[kind, v], swap]) => {
  const b = Buffer.alloc(4);
  if (kind === 'f') b.writeFloatBE(v);
  else b.writeInt32BE(v);
  const pair = [b.readUInt16BE(0), b.readUInt16BE(2)];
  return swap ? pair.reverse() : pair;
});
const writeValues = fc.array(fc.oneof({ weight: 1, arbitrary: registerValue.map((v) => [v]) }, { weight: 2, arbitrary: wordPair }), { minLength: 2, maxLength: 4 }).map((xs) => xs.flat().slice(0, 4));

const genericModbusAction = fc.record({
  shape: fc.constantFrom(...FC_SHAPES),
  unit: fc.integer({ min: 0, max: 2 }),
  // Often exactly at a profile point, where bounds, word order and partial writes matter.
  address: fc.oneof(fc.integer({ min: 0, max: 32 }), fc.constantFrom(3, 5, 10, 11, 13, 20)),
  quantity: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(1), fc.constant(2)),
  values: writeValues,
  lead: fc.boolean(),
  coils: fc.array(fc.constantFrom(0, 1), { minLength: 4, maxLength: 4 }),
}).map(({ shape, unit, address, quantity, values: pairs, lead, coils }): Action => {
  // A leading single register shifts the pairs by one, so writes both align with and straddle 32-bit points.
  const values = (lead ? [...pairs, 0, 0, 0, 0] : [0, ...pairs, 0, 0, 0]).slice(0, 4);
  const single = shape.fc === 5 || shape.fc === 6 || shape.fc === 22;
  const q = shape.table === null ? 0 : single ? 1 : quantity;
  const o: ModbusObject = { kind: 'modbus', unit, functionCode: shape.fc, table: shape.table, address: shape.table === null ? 0 : address, quantity: q };
  if (shape.verb === 'write' && shape.table !== null) o.values = (shape.table === 'coil' ? coils : values).slice(0, shape.fc === 22 ? 2 : q);
  return { target: 'plc', verb: shape.verb, object: o };
});
/** Register writes over the profile's setpoints, where decoding, bounds and partial writes matter. */
const pointWrite = fc.record({
  fc: fc.constantFrom(6, 16, 16, 23),
  unit: fc.integer({ min: 0, max: 2 }),
  address: fc.constantFrom(10, 11, 11, 12, 13, 13),
  quantity: fc.integer({ min: 1, max: 4 }),
  values: writeValues,
  lead: fc.boolean(),
}).map(({ fc: code, unit, address, quantity, values: pairs, lead }): Action => {
  const q = code === 6 ? 1 : quantity;
  const values = (lead ? [...pairs, 0, 0, 0, 0] : [0, ...pairs, 0, 0, 0]).slice(0, q);
  return { target: 'plc', verb: 'write', object: { kind: 'modbus', unit, functionCode: code, table: 'holding_register', address, quantity: q, values } };
});
const modbusAction = fc.oneof({ weight: 1, arbitrary: genericModbusAction }, { weight: 2, arbitrary: pointWrite });

const NODES: [string, string | undefined][] = [
  ['ns=1;s=boiler/Drum/Level', 'Objects/Boiler/Drum/Level'],
  ['ns=1;s=boiler/Setpoint', 'Objects/Boiler/Setpoint'],
  ['ns=1;s=other/X', 'Objects/Other/X'],
  ['ns=2;i=5', undefined],
  ['ns=2;i=50', 'Objects/Boiler2'],
];
const opcuaAction = fc.record({
  verb: fc.constantFrom('read', 'write', 'call', 'browse', 'subscribe', 'history'),
  node: fc.constantFrom(...NODES),
  withPath: fc.boolean(),
  value: opt(fc.constantFrom(-5, 0, 50, 79, 80, 81, 120, 200)),
}).map(({ verb, node: [nodeId, path], withPath, value }): Action => {
  const o: OpcuaObject = { kind: 'opcua', nodeId };
  if (withPath && path) o.browsePath = path;
  if (verb === 'write' && value !== undefined) o.value = value;
  return { target: 'hmi', verb: verb as Verb, object: o };
});

const sshAction = fc.oneof(
  commandWords.map((ws): Action => {
    const object: SshObject = { kind: 'ssh', channel: 'exec', commandLine: line(ws) };
    wordsOf.set(object, ws);
    return { target: 'gw', verb: 'exec', object };
  }),
  fc.constant<Action>({ target: 'gw', verb: 'shell', object: { kind: 'ssh', channel: 'shell' } }),
  fc.constantFrom('modbus', 'raw').map((tunnel): Action => ({ target: 'gw', verb: 'tunnel', object: { kind: 'ssh', channel: 'tunnel', tunnel: tunnel as 'modbus' | 'raw' } })),
  fc.record({ path: fc.constantFrom('/var/log/plc/a.log', '/var/log/plc/sub/b.log', '/etc/passwd', '/var/log/other.log', '/var/log/plc'), direction: fc.constantFrom('download', 'upload'), bytes: opt(fc.constantFrom(10, 100, 101, 5000, 9999)) })
    .map(({ path, direction, bytes }): Action => ({ target: 'gw', verb: direction as Verb, object: strip({ kind: 'ssh', channel: 'sftp', path, direction, bytes }) as SshObject })),
);

const ACTIONS: Record<Kind, fc.Arbitrary<Action>> = { modbus: modbusAction, opcua: opcuaAction, ssh: sshAction };
const nowArb = fc.integer({ min: -48, max: 48 }).chain((h) => fc.constantFrom(0, 1, 29 * 60_000, 59 * 60_000).map((m) => NOW0 + h * HOUR + m));
/** Grants, an action, and the time of asking. */
const scenario = fc.constantFrom<Kind>('modbus', 'opcua', 'ssh').chain((kind) => fc.tuple(grantsArb(kind), ACTIONS[kind], nowArb));

// ------------------------------------------------------------------ the oracle

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
function oracleActive(g: HeldGrant, now: number): boolean {
  if (g.revoked) return false;
  if (g.window && (now < Date.parse(g.window.from) || now >= Date.parse(g.window.to))) return false;
  if (!g.schedule) return true;
  return g.schedule.some((s) => {
    const local = now + FIXED_TZ[s.tz]!;
    const day = Math.floor(local / 86_400_000);
    const wd = (day + 3) % 7; // 1970-01-01 was a Thursday
    const minute = (local - day * 86_400_000) / 60_000;
    const [f, t] = [s.from, s.to].map((x) => Number(x.slice(0, 2)) * 60 + Number(x.slice(3)));
    const listed = (d: number) => s.days.includes(DAYS[(d + 7) % 7] as never);
    return f! < t! ? listed(wd) && minute >= f! && minute < t! : (listed(wd) && minute >= f!) || (listed(wd - 1) && minute < t!);
  });
}

/** Function codes a rule grants, per direction ("3r", "23w"), written out from the issue text. */
function oracleOps(r: ModbusRuleConfig): Set<string> {
  const both = (fcs: number[]) => fcs.flatMap((f) => [`${f}r`, `${f}w`]);
  const ops = new Set<string>();
  const presets: Record<string, number[]> = { readonly: [1, 2, 3, 4, 7, 11, 12, 20, 24, 43], readwrite: [1, 2, 3, 4, 7, 11, 12, 20, 24, 43, 5, 6, 15, 16, 22, 23], programming: [8, 21, 90, 125, 126] };
  if (r.preset) both(presets[r.preset]!).forEach((o) => ops.add(o));
  if (r.function_codes) both(r.function_codes).forEach((o) => ops.add(o));
  if (r.access) {
    const reads: Record<string, string[]> = { coil: ['1r'], discrete_input: ['2r'], input_register: ['4r'], holding_register: ['3r', '23r', '24r'] };
    const writes: Record<string, string[]> = { coil: ['5w', '15w'], discrete_input: [], input_register: [], holding_register: ['6w', '16w', '22w', '23w'] };
    for (const t of r.tables ?? ['coil', 'discrete_input', 'input_register', 'holding_register']) {
      if (r.access !== 'write') reads[t]!.forEach((o) => ops.add(o));
      if (r.access !== 'read') writes[t]!.forEach((o) => ops.add(o));
    }
  }
  return ops;
}
const isWriteVerb = (a: Action) => a.verb === 'write' || a.verb === 'diagnostic' || a.verb === 'program';

function rangesOf(r: ModbusRuleConfig): Set<number> {
  const s = new Set<number>();
  for (const { from, to } of r.addresses ?? []) for (let x = from; x <= to; x++) s.add(x);
  return s;
}
const globHits = (glob: string, name: string) => {
  const [g, n] = [glob.split('.'), name.split('.')];
  return g.length === n.length && g.every((seg, i) => seg === '*' || seg === n[i]);
};
const regsOf = (p: ModbusPoint) => Array.from({ length: p.words }, (_, i) => p.address! + i);

function oracleValue(p: ModbusPoint, o: ModbusObject): number {
  const b = Buffer.alloc(4);
  const regs = regsOf(p).map((r) => o.values![r - o.address]!);
  regs.forEach((v, i) => b.writeUInt16BE(v, i * 2));
  const raw = p.table === 'coil' ? regs[0]! : p.type === 'uint16' ? b.readUInt16BE(0) : p.type === 'int16' ? b.readInt16BE(0) : p.type === 'int32' ? b.readInt32BE(0) : p.type === 'uint32' ? b.readUInt32BE(0) : b.readFloatBE(0);
  return p.scale_exponent ? raw / 10 ** -p.scale_exponent : raw;
}
const inB = (v: number, min?: number, max?: number) => Number.isFinite(v) && (min === undefined || v >= min) && (max === undefined || v <= max);

/** Allow/approve semantics: the action lies wholly inside the rule. */
function modbusContains(r: ModbusRuleConfig, a: Action, o: ModbusObject): boolean {
  const write = isWriteVerb(a) || ![1, 2, 3, 4, 7, 11, 12, 17, 20, 24, 43, 23].includes(o.functionCode);
  if (!oracleOps(r).has(`${o.functionCode}${write ? 'w' : 'r'}`)) return false;
  if (r.units && !r.units.includes(o.unit)) return false;
  const bounded = r.min !== undefined || r.max !== undefined;
  if (o.table === null) return !r.tables && !r.addresses && !r.points && !(write && bounded);
  if (r.tables && !r.tables.includes(o.table)) return false;
  const regs = Array.from({ length: o.quantity }, (_, i) => o.address + i);
  const table = modbusProfile.points.filter((p) => p.table === o.table);
  if (write && table.some((p) => p.access === 'R' && regsOf(p).some((x) => regs.includes(x)))) return false;
  const valuesKnown = write && o.values !== undefined && o.functionCode !== 22;
  if (r.points) {
    const pts = table.filter((p) => r.points!.some((g) => globHits(g, p.name)) && (!write || p.access === 'RW'));
    const allowed = new Set(pts.flatMap(regsOf));
    if (!regs.every((x) => allowed.has(x))) return false;
    if (!write) return true;
    for (const p of pts.filter((p) => regsOf(p).some((x) => regs.includes(x)))) {
      if (!regsOf(p).every((x) => regs.includes(x))) return false;
      if (!bounded && p.min === undefined && p.max === undefined) continue;
      if (!valuesKnown) return false;
      const v = oracleValue(p, o);
      if (!inB(v, r.min, r.max) || !inB(v, p.min, p.max)) return false;
    }
    return true;
  }
  if (r.addresses && !regs.every((x) => rangesOf(r).has(x))) return false;
  if (!write || !bounded) return true;
  return valuesKnown && o.values!.every((v) => inB(v, r.min, r.max));
}

/** Deny semantics, under-approximated: true only when the action certainly touches the rule. */
function modbusSurelyTouches(r: ModbusRuleConfig, a: Action, o: ModbusObject): boolean {
  const write = isWriteVerb(a) || ![1, 2, 3, 4, 7, 11, 12, 17, 20, 24, 43, 23].includes(o.functionCode);
  if (!oracleOps(r).has(`${o.functionCode}${write ? 'w' : 'r'}`)) return false;
  if (r.units && !r.units.includes(o.unit)) return false;
  if (o.table === null) return true;
  if (r.tables && !r.tables.includes(o.table)) return false;
  const regs = Array.from({ length: o.quantity }, (_, i) => o.address + i);
  if (r.points) {
    const pts = modbusProfile.points.filter((p) => p.table === o.table && r.points!.some((g) => globHits(g, p.name)));
    if (!regs.some((x) => pts.some((p) => regsOf(p).includes(x)))) return false;
    return !write || (r.min === undefined && r.max === undefined);
  }
  if (r.addresses && !regs.some((x) => rangesOf(r).has(x))) return false;
  if (!write || (r.min === undefined && r.max === undefined)) return true;
  return o.values !== undefined && o.functionCode !== 22 && o.values.some((v) => inB(v, r.min, r.max));
}

function opcuaNamed(r: OpcuaRuleConfig, o: OpcuaObject): ProfilePoint[] | boolean {
  const own = opcuaProfile.points.filter((p) => p.node === o.nodeId || p.node === o.browsePath);
  const byNode = r.nodes?.some((n) => (n.endsWith('*') ? o.nodeId.startsWith(n.slice(0, -1)) : n === o.nodeId)) ?? false;
  const byPath = o.browsePath !== undefined && (r.browse_paths?.some((b) => o.browsePath === b || o.browsePath!.startsWith(b + '/')) ?? false);
  const byPoint = own.some((p) => r.points?.some((g) => globHits(g, p.name)));
  return byNode || byPath || byPoint ? own : false;
}
function opcuaContains(r: OpcuaRuleConfig, a: Action, o: OpcuaObject): boolean {
  if (!(r.verbs as string[]).includes(a.verb)) return false;
  const own = opcuaNamed(r, o);
  if (own === false) return false;
  if (a.verb !== 'write') return true;
  if ((own as ProfilePoint[]).some((p) => p.access === 'R')) return false;
  const limits = [[r.min, r.max], ...(own as ProfilePoint[]).map((p) => [p.min, p.max])].filter(([a, b]) => a !== undefined || b !== undefined);
  return limits.length === 0 || (o.value !== undefined && limits.every(([a, b]) => inB(o.value as number, a, b)));
}
function opcuaSurelyTouches(r: OpcuaRuleConfig, a: Action, o: OpcuaObject): boolean {
  if (!(r.verbs as string[]).includes(a.verb) || opcuaNamed(r, o) === false) return false;
  if (a.verb !== 'write' || (r.min === undefined && r.max === undefined)) return true;
  return o.value !== undefined && inB(o.value as number, r.min, r.max);
}

/** Written apart from argv-pattern.ts: a deny rule (broad) lets every wildcard take any word. */
const patternHits = (p: string[], argv: string[], broad: boolean) => {
  const tail = ['...', '-...'].includes(p[p.length - 1]!) ? p[p.length - 1] : undefined;
  const fixed = tail ? p.slice(0, -1) : p;
  if (tail ? argv.length < fixed.length : argv.length !== fixed.length) return false;
  const dashed = (a: string) => a[0] === '-';
  const afterDashDash = (i: number) => fixed.slice(0, i).includes('--');
  const wordOk = (w: string, a: string, i: number) => {
    if (w === '*') return broad || afterDashDash(i) || !dashed(a);
    if (w === '-*') return broad || dashed(a);
    if (/^-[^*]+=\*$/.test(w)) return a.startsWith(w.slice(0, -1));
    return w === a;
  };
  const tailOk = argv.slice(fixed.length).every((a) => tail !== '...' || broad || afterDashDash(fixed.length) || !dashed(a));
  return fixed.every((w, i) => wordOk(w, argv[i]!, i)) && tailOk;
};
function pathHits(glob: string, path: string): boolean {
  const deep = glob.endsWith('/**');
  const body = (deep ? glob.slice(0, -3) : glob).split('*').map((lit) => lit.replace(/[.]/g, '\\.')).join('[^/]*');
  return new RegExp(`^${body}${deep ? '(/.*)?' : ''}$`).test(path);
}

/** `broad`: as a deny rule reads its pattern (every wildcard takes any word). */
function sshContains(r: SshRuleConfig, o: SshObject, broad = false): boolean {
  switch (o.channel) {
    case 'exec': {
      if (r.command_line !== undefined) return r.command_line === o.commandLine;
      if (!r.exec) return false;
      const words = wordsOf.get(o)!;
      return !words.some((w) => w.meta) && patternHits(r.exec, words.map((w) => w.arg), broad);
    }
    case 'shell':
      return r.shell === true;
    case 'tunnel':
      return r.tunnel === o.tunnel;
    case 'sftp': {
      const s = r.sftp;
      if (!s || (s.direction !== 'both' && s.direction !== o.direction) || !s.paths.some((p) => pathHits(p, o.path!))) return false;
      return s.max_bytes === undefined || (o.bytes !== undefined && o.bytes <= s.max_bytes);
    }
  }
}

function contains(anyRule: RuleConfig, a: Action): boolean {
  const rule = anyRule as unknown as ProtocolRule;
  const o = a.object as ProtocolObject;
  if ('modbus' in rule) return o.kind === 'modbus' && modbusContains(rule.modbus, a, o);
  if ('opcua' in rule) return o.kind === 'opcua' && opcuaContains(rule.opcua, a, o);
  return o.kind === 'ssh' && sshContains(rule.ssh, o);
}
function surelyTouches(anyRule: RuleConfig, a: Action): boolean {
  const rule = anyRule as unknown as ProtocolRule;
  const o = a.object as ProtocolObject;
  if ('modbus' in rule) return o.kind === 'modbus' && modbusSurelyTouches(rule.modbus, a, o);
  if ('opcua' in rule) return o.kind === 'opcua' && opcuaSurelyTouches(rule.opcua, a, o);
  // For SSH, touching is containing with every wildcard taking any word (never sure for metacharacters).
  return o.kind === 'ssh' && sshContains(rule.ssh, o, true);
}
const effectOf = (rule: RuleConfig) => Object.values(rule)[0]!.effect;
const kindOf = (rule: RuleConfig) => Object.keys(rule)[0]!;

function context(grants: HeldGrant[], now: number): DecisionContext {
  return { principal, grants, now, profiles, targets };
}
const activeRules = (grants: HeldGrant[], a: Action, now: number) =>
  grants.filter((g) => g.targets.includes(a.target) && oracleActive(g, now)).flatMap((g) => g.rules);

// ------------------------------------------------------------------ the properties

test('(a) nothing outside every allow rule is allowed, and decide agrees with the oracle', () => {
  fc.assert(fc.property(scenario, ([grants, a, now]) => {
    const d = decide(a, context(grants, now));
    const rules = activeRules(grants, a, now);
    if (d.effect === 'allow') assert.ok(rules.some((r) => effectOf(r) === 'allow' && contains(r, a)), `allowed by ${d.rule}, but no allow rule contains it`);
    if (d.effect === 'approve') assert.ok(rules.some((r) => effectOf(r) === 'approve' && contains(r, a)), `approve by ${d.rule}, but no approve rule contains it`);
    // Without deny rules of this protocol, the oracle predicts the effect exactly.
    if (!rules.some((r) => effectOf(r) === 'deny' && kindOf(r) === a.object.kind)) {
      const expected = rules.some((r) => effectOf(r) === 'approve' && contains(r, a)) ? 'approve' : rules.some((r) => effectOf(r) === 'allow' && contains(r, a)) ? 'allow' : 'deny';
      assert.equal(d.effect, expected, d.explanation);
    }
  }), { numRuns: RUNS });
});

test('(b) an expired, not yet valid, out-of-schedule or revoked grant never allows', () => {
  fc.assert(fc.property(scenario, ([grants, a, now]) => {
    const d = decide(a, context(grants, now));
    if (d.effect !== 'deny') {
      const g = grants.find((x) => x.id === d.grant)!;
      assert.ok(g && !g.revoked && oracleActive(g, now), `${d.effect} by inactive grant ${d.grant}`);
    }
    const forTarget = grants.filter((g) => g.targets.includes(a.target));
    if (forTarget.length > 0 && forTarget.every((g) => !oracleActive(g, now))) {
      assert.equal(d.effect, 'deny');
      assert.equal(d.reason, 'grant_not_active');
    }
  }), { numRuns: RUNS });
});

test('(c) a deny rule that touches the action always wins', () => {
  fc.assert(fc.property(scenario, ([grants, a, now]) => {
    const d = decide(a, context(grants, now));
    if (activeRules(grants, a, now).some((r) => effectOf(r) === 'deny' && surelyTouches(r, a))) {
      assert.equal(d.effect, 'deny');
      assert.equal(d.reason, 'rule_denies');
    }
    if (d.reason === 'rule_denies') assert.equal(effectOf(grants.find((g) => g.id === d.grant)!.rules[Number(d.rule!.split('#')[1])]!), 'deny');
  }), { numRuns: RUNS });
});
