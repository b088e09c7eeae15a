// The Modbus ProtocolModule, piece by piece, on real examples: actions the codec builds from request
// bytes, the rules the demo and the end-to-end tests configure, the shipped firmware profiles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { modbusModule } from '../../../src/adapters/modbus/module.ts';
import { DryRunUsageError } from '../../../src/adapters/types.ts';
import { DECISION_REASONS, type DecisionReason } from '../../../src/policy/types.ts';
import { decodeRequest, exceptionForDecision, requestToActions, type ModbusAction } from '../../../src/adapters/modbus/codec.ts';
import { loadFirmwareProfiles } from '../../../src/config/profiles.ts';
import type { FirmwareProfile } from '../../../src/config/types.ts';
import type { ModbusObject } from '../../../src/adapters/modbus/rules.ts';
import { hex } from './helpers.ts';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const m = modbusModule;

/** The actions the front door builds from one request PDU (hex), for target plc-1, unit 1. */
function actionsOf(pdu: string): ModbusAction[] {
  const r = decodeRequest(hex(pdu));
  assert.ok(r.ok, `decodes: ${pdu}`);
  return requestToActions(r.value, 'plc-1', 1);
}

test('the descriptor names the protocol and serves tunnels', () => {
  assert.equal(m.name, 'modbus');
  assert.equal(m.matcher.kind, 'modbus');
  assert.equal(m.servesStreams, true);
});

test('renderObject: a real write, in Zeek\'s names', () => {
  const [a] = actionsOf('10 00 64 00 02 04 00 01 00 02'); // FC 16: holding registers 100-101 = 1, 2
  assert.deepEqual(m.renderObject(a!.object), { unit: 1, func: 'WRITE_MULTIPLE_REGISTERS', func_code: 16, table: 'holding_register', address: 100, quantity: 2, values: [1, 2] });
  // Zeek spells some names its own way; codes it has no name for stay recognisable.
  assert.equal(m.renderObject(actionsOf('11')[0]!.object).func, 'REPORT_SLAVE_ID');
  assert.equal(m.renderObject(actionsOf('2b 0e 01 00')[0]!.object).func, 'ENCAP_INTERFACE_TRANSPORT');
  assert.equal(m.renderObject(actionsOf('5a 00 01')[0]!.object).func, 'unknown-90');
  const scaled = { ...a!.object, scaleFactors: { 'controls.WMaxLimPct_SF': -2 } };
  assert.deepEqual(m.renderObject(scaled).scale_factors, { 'controls.WMaxLimPct_SF': -2 });
});

test('describeAction: one line for people', () => {
  assert.equal(m.describeAction(actionsOf('10 00 64 00 02 04 00 01 00 02')[0]!), 'write holding_register 100 x2 = [1,2] (unit 1, fc 16)');
  assert.equal(m.describeAction(actionsOf('03 00 05 00 01')[0]!), 'read holding_register 5 (unit 1, fc 3)');
  assert.equal(m.describeAction(actionsOf('08 00 00 12 34')[0]!), 'diagnostic fc 0 (unit 1, fc 8)');
});

test('dryRun.parse builds what the front door would, and refuses bad input with a usage error', () => {
  const parse = m.dryRun!.parse;
  // The dry run and the codec agree on the action for the same request.
  assert.deepEqual(parse(['write', 'hr', '100'], { values: '1,2' }), { verb: 'write', object: actionsOf('10 00 64 00 02 04 00 01 00 02')[0]!.object });
  assert.deepEqual(parse(['read', 'coils', '0x10'], { quantity: '8', unit: '3' }), { verb: 'read', object: { kind: 'modbus', unit: 3, functionCode: 1, table: 'coil', address: 16, quantity: 8 } });
  const fc = (args: string[], opts: Record<string, string>) => (parse(args, opts).object as ModbusObject).functionCode;
  assert.equal(fc(['write', 'coil', '7'], { values: '1' }), 5);
  assert.equal(fc(['write', 'hr', '1'], { fc: '22' }), 22);
  for (const [args, opts] of [
    [['delete', 'hr', '1'], {}],
    [['read', 'hr'], {}],
    [['read', 'hr', '70000'], {}],
    [['read', 'hr', '-1'], {}],
    [['read', 'hr', '1', 'extra'], {}],
    [['read', 'registers', '1'], {}],
    [['write', 'discrete_input', '1'], {}],
    [['write', 'coil', '1'], { values: '0,2' }],
    [['write', 'hr', '1'], { values: '1,2', quantity: '3' }],
    [['read', 'hr', '1'], { values: '1' }],
    [['read', 'hr', '1'], { unit: '256' }],
    [['read', 'hr', '1'], { fc: '128' }],
  ] as const) {
    assert.throws(() => parse([...args], opts), DryRunUsageError, JSON.stringify([args, opts]));
  }
  assert.ok(m.dryRun!.usage.every((u) => u.startsWith('modbus ')));
  assert.deepEqual(m.dryRun!.options.map((o) => o.flags.split(' ')[0]), ['--quantity', '--unit', '--fc', '--values']);
});

test('refusals: every decision reason reads as the exception the front door answers', () => {
  assert.deepEqual(Object.keys(m.refusals).sort(), Object.keys(DECISION_REASONS).sort());
  for (const reason of Object.keys(DECISION_REASONS) as DecisionReason[]) {
    assert.match(m.refusals[reason], new RegExp(`^exception ${exceptionForDecision(reason)} [A-Z_]+$`), reason);
  }
  assert.equal(m.refusals.function_not_granted, 'exception 1 ILLEGAL_FUNCTION');
  assert.equal(m.refusals.object_not_granted, 'exception 2 ILLEGAL_DATA_ADDRESS');
  assert.equal(m.refusals.value_out_of_bounds, 'exception 3 ILLEGAL_DATA_VALUE');
  assert.equal(m.refusals.journal_unavailable, 'exception 4 SLAVE_DEVICE_FAILURE');
  assert.equal(m.refusals.session_limit, 'exception 6 SLAVE_DEVICE_BUSY');
});

/** Every Modbus rule body the demo config, the test fixture config and the end-to-end tests configure. */
function configuredRules(): unknown[] {
  const rules: unknown[] = [];
  for (const file of ['scripts/demo/site.yaml', 'test/config/fixtures/good.yaml']) {
    const doc = parseYaml(readFileSync(join(REPO, file), 'utf8')) as { grants?: { rules: Record<string, unknown>[] }[] };
    for (const g of doc.grants ?? []) for (const r of g.rules) if ('modbus' in r) rules.push(r.modbus);
  }
  const dirs = ['test/adapters/modbus', 'test/e2e'];
  for (const dir of dirs) {
    for (const f of readdirSync(join(REPO, dir)).filter((n) => n.endsWith('.test.ts'))) {
      for (const line of readFileSync(join(REPO, dir, f), 'utf8').split('\n')) {
        const inline = /^\s*- modbus: (\{.*\})\s*$/.exec(line);
        if (inline && !inline[1]!.includes('${')) rules.push(parseYaml(inline[1]!));
      }
    }
  }
  return rules;
}

test('ruleSchema accepts the rules the demo and the tests configure, and refuses junk', () => {
  const rules = configuredRules();
  assert.ok(rules.length >= 15, `found ${rules.length} rules`);
  for (const r of rules) {
    const parsed = m.ruleSchema.safeParse(r);
    assert.ok(parsed.success, `${JSON.stringify(r)}: ${parsed.error?.message}`);
  }
  assert.deepEqual(m.ruleSchema.parse({ preset: 'readonly', addresses: ['10-12', 20] }), { effect: 'allow', preset: 'readonly', addresses: [{ from: 10, to: 12 }, { from: 20, to: 20 }] });
  for (const junk of [
    {},
    { effect: 'deny' },
    { preset: 'everything' },
    { access: 'write', addresses: ['12-10'] },
    { access: 'write', addresses: ['0-10', '5-20'] },
    { access: 'write', addresses: ['0-10'], points: ['controls.*'] },
    { access: 'read', colour: 'red' },
    { function_codes: [0] },
    { function_codes: [128] },
    { access: 'read', units: [256] },
    { access: 'write', min: 10, max: 5 },
    { access: 'read', tables: ['holding_registers'] },
    'readonly',
  ]) {
    assert.equal(m.ruleSchema.safeParse(junk).success, false, JSON.stringify(junk));
  }
});

test('objectSchema accepts every action the front door and the dry run build, and refuses junk', () => {
  const pdus = [
    '01 00 00 00 10', '02 00 00 00 08', '03 00 05 00 01', '04 00 00 00 7d', '05 00 06 ff 00', '06 00 06 00 2a',
    '07', '08 00 00 12 34', '0b', '0c', '0f 00 00 00 0a 02 ff 03', '10 00 64 00 02 04 00 01 00 02', '11',
    '14 07 06 00 04 00 01 00 02', '15 0b 06 00 04 00 07 00 02 12 34 56 78', '16 00 04 00 f2 00 25',
    '17 00 03 00 06 00 0e 00 03 06 00 ff 00 ff 00 ff', '18 04 de', '2b 0e 01 00', '5a 00 01', '7f',
  ];
  let count = 0;
  for (const pdu of pdus) {
    for (const a of actionsOf(pdu)) {
      const parsed = m.objectSchema.safeParse(a.object);
      assert.ok(parsed.success, `${pdu}: ${JSON.stringify(a.object)}: ${parsed.error?.message}`);
      count++;
    }
  }
  assert.ok(count > pdus.length, 'FC 23 and the file-record functions build several actions');
  assert.ok(m.objectSchema.safeParse(m.dryRun!.parse(['write', 'hr', '100'], { values: '1,2' }).object).success);
  const base = { kind: 'modbus', unit: 1, functionCode: 3, table: 'holding_register', address: 0, quantity: 1 };
  for (const junk of [
    { ...base, kind: 'other' },
    { ...base, unit: 256 },
    { ...base, functionCode: 0 },
    { ...base, functionCode: 128 },
    { ...base, table: 'holding_registers' },
    { ...base, address: 65536 },
    { ...base, values: [70000] },
    { ...base, extra: true },
    { ...base, table: undefined },
  ]) {
    assert.equal(m.objectSchema.safeParse(junk).success, false, JSON.stringify(junk));
  }
});

test('ruleWarnings: W_MODBUS_WRITE_ALL_ADDRESSES for allow rules that write everywhere, and only those', () => {
  const warnings = (body: unknown) => m.ruleWarnings!(m.ruleSchema.parse(body)).map((w) => [w.code, w.path.join('.')]);
  const ALL = 'W_MODBUS_WRITE_ALL_ADDRESSES';
  assert.deepEqual(warnings({ access: 'readwrite' }), [[ALL, '']]);
  assert.deepEqual(warnings({ preset: 'readwrite', tables: ['coil'] }), [[ALL, '']]);
  assert.deepEqual(warnings({ preset: 'programming' }), [[ALL, '']]);
  assert.deepEqual(warnings({ function_codes: [3, 6] }), [[ALL, '']]);
  assert.deepEqual(warnings({ access: 'write', addresses: ['0-65535'] }), [[ALL, 'addresses']]);
  assert.deepEqual(warnings({ access: 'write', addresses: ['0-30000', '30001-65535'] }), [[ALL, 'addresses']]);
  assert.deepEqual(warnings({ access: 'write', addresses: [{ from: 0, to: 70000 }] }), [[ALL, 'addresses']]);
  assert.deepEqual(warnings({ access: 'write', addresses: ['0-65534'] }), []);
  assert.deepEqual(warnings({ access: 'write', points: ['controls.*'] }), []);
  assert.deepEqual(warnings({ preset: 'readonly' }), []);
  assert.deepEqual(warnings({ function_codes: [3, 8] }), []);
  assert.deepEqual(warnings({ effect: 'deny', access: 'write' }), []);
  for (const r of configuredRules()) for (const w of m.ruleWarnings!(m.ruleSchema.parse(r))) assert.match(w.code, /^W_MODBUS_/);
});

test('profilePoint: the shipped profiles pass, and each broken point is named at its field', () => {
  const profiles = loadFirmwareProfiles();
  assert.ok(profiles.size > 0);
  for (const p of profiles.values()) {
    for (const point of p.points) assert.deepEqual(m.profilePoint!.check(point as unknown as Record<string, unknown>, p), [], `${p.name} ${point.name}`);
    for (const point of p.points) {
      for (const [field, schema] of Object.entries(m.profilePoint!.fields)) assert.ok(schema.safeParse((point as unknown as Record<string, unknown>)[field]).success, `${p.name} ${point.name}.${field}`);
    }
  }
  // The words a type spans, a scale factor naming no point, and a point with both kinds of scale are
  // every protocol's, checked by config/profiles.ts (test/config/profiles.test.ts); these are the register map's.
  const pt = (o: Record<string, unknown>) => ({ name: 'x.P', table: 'holding_register', address: 10, type: 'uint16', words: 1, access: 'RW', ...o });
  const profile = (points: Record<string, unknown>[]): FirmwareProfile => ({ name: 't', vendor: 'T', model: 'M', protocol: 'modbus', source: 'test', word_order: 'big', points: points as never });
  const issues = (points: Record<string, unknown>[], i: number) => {
    const prof = profile(points);
    return m.profilePoint!.check(prof.points[i] as unknown as Record<string, unknown>, prof).map((x) => `${x.path.join('.')}: ${x.message}`);
  };
  assert.deepEqual(issues([pt({ address: 65535, type: 'uint32', words: 2 })], 0), ['words: point runs past address 65535']);
  assert.deepEqual(issues([pt({ table: 'coil', type: 'string', words: 2 })], 0), ['words: a coil is one bit: words must be 1']);
  assert.deepEqual(issues([pt({ table: 'input_register' })], 0), ['access: a input_register cannot be written']);
  assert.deepEqual(issues([pt({ table: undefined, address: undefined })], 0), [': a modbus point needs `table`', ': a modbus point needs `address`']);
  assert.deepEqual(issues([pt({ scale_factor: 'x.SF' }), pt({ name: 'x.SF', address: 11, type: 'uint16', access: 'R' })], 0), ['scale_factor: x.SF must be a modbus int16 holding register']);
  assert.deepEqual(issues([pt({ scale_factor: 'x.SF' }), pt({ name: 'x.SF', address: 11, type: 'int16', access: 'R' })], 0), []);
  // Sharing a register: reported on the later point, naming the earlier one; another table is no overlap.
  const overlap = [pt({ name: 'x.A', address: 100, type: 'uint32', words: 2 }), pt({ name: 'x.B', address: 101 }), pt({ name: 'x.C', table: 'input_register', address: 101, access: 'R' })];
  assert.deepEqual(issues(overlap, 0), []);
  assert.deepEqual(issues(overlap, 1), ['address: holding_register 101-101 (x.B) overlaps 100-101 (x.A)']);
  assert.deepEqual(issues(overlap, 2), []);
});

test('the descriptor loads no front door code; load() does', async () => {
  // A fresh process records every module the import resolves.
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.push(r.url); return r; } });
    const { modbusModule } = await import(${JSON.stringify(new URL('../../../src/adapters/modbus/module.ts', import.meta.url).href)});
    const before = [...seen];
    const door = await modbusModule.load();
    console.log(JSON.stringify({ before, after: seen, start: typeof door.start, serveStream: typeof door.serveStream }));`;
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as { before: string[]; after: string[]; start: string; serveStream: string };
  const runtime = /\/adapters\/modbus\/(adapter|stream|upstream|pool|tls)\.ts$|modbus-serial|serialport/;
  assert.deepEqual(out.before.filter((u) => runtime.test(u)), []);
  assert.ok(out.after.some((u) => u.endsWith('/adapters/modbus/adapter.ts')));
  assert.equal(out.start, 'function');
  assert.equal(out.serveStream, 'function');
});
