// The OPC UA ProtocolModule piece by piece, on real examples: the rules of the demo site and the config
// fixture, the action objects the front door builds, `penstockctl policy check` arguments, the refusal
// table against node-opcua's status codes, and that the descriptor loads without the OPC UA stack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { StatusCodes } from 'node-opcua';
import { opcuaModule } from '../../../src/adapters/opcua/module.ts';
import { verifyOpcuaPassword } from '../../../src/adapters/opcua/identity.ts';
import { DryRunUsageError } from '../../../src/adapters/types.ts';
import { DECISION_REASONS, type Action } from '../../../src/policy/types.ts';
import { opcuaProfile } from '../../policy/fixtures.ts';

const root = (p: string) => fileURLToPath(new URL(`../../../${p}`, import.meta.url));

/** Every `opcua` rule body of the grants of a config file. */
function opcuaRules(file: string): unknown[] {
  const doc = parseYaml(readFileSync(root(file), 'utf8')) as { grants?: { rules?: Record<string, unknown>[] }[] };
  return (doc.grants ?? []).flatMap((g) => g.rules ?? []).flatMap((r) => ('opcua' in r ? [r.opcua] : []));
}

test('the rule schema accepts the demo site and config fixture rules, and refuses junk', () => {
  const rules = [...opcuaRules('scripts/demo/site-opcua.yaml'), ...opcuaRules('test/config/fixtures/good.yaml')];
  assert.ok(rules.length >= 5, 'the examples hold OPC UA rules');
  for (const r of rules) assert.ok(opcuaModule.ruleSchema.safeParse(r).success, JSON.stringify(r));
  const parsed = opcuaModule.ruleSchema.parse({ verbs: ['write'], nodes: ['ns=1;s=boiler-1/Boiler/Setpoint'], min: 0, max: 100 });
  assert.equal(parsed.effect, 'allow', 'effect defaults to allow');
  for (const junk of [
    { verbs: ['read'] }, // names nothing
    { verbs: [], nodes: ['x'] },
    { verbs: ['exec'], nodes: ['x'] },
    { verbs: ['write'], nodes: ['x'], min: 5, max: 1 },
    { verbs: ['read'], nodes: ['x'], colour: 'red' },
    { verbs: ['read'], nodes: [''] },
  ]) assert.equal(opcuaModule.ruleSchema.safeParse(junk).success, false, JSON.stringify(junk));
});

const write: Action & { object: { kind: 'opcua'; nodeId: string; browsePath: string; attribute: string; value: number } } = {
  target: 'boiler-1',
  verb: 'write',
  object: { kind: 'opcua', nodeId: 'ns=1;s=boiler-1/Boiler/Setpoint', browsePath: 'Objects/Boiler/Setpoint', attribute: 'Value', value: 42.5 },
};

test('the object schema accepts what the front door and penstockctl build, and refuses junk', () => {
  for (const o of [
    write.object,
    { kind: 'opcua', nodeId: 'ns=1;s=cell/Counter', value: '9007199254740993' },
    { kind: 'opcua', nodeId: 'ns=1;s=cell/Counter', value: '-9223372036854775808' },
    { kind: 'opcua', nodeId: 'ns=1;s=boiler-1/Boiler/StartPump', objectId: 'ns=1;s=boiler-1/Boiler' },
    { kind: 'opcua', nodeId: 'ns=1;s=Drum/Level', attribute: 'Value', value: 4.5 },
  ]) assert.deepEqual(opcuaModule.objectSchema.parse(o), o);
  for (const junk of [
    { kind: 'opcua' },
    { kind: 'opcua', nodeId: '' },
    { kind: 'other', nodeId: 'x' },
    { kind: 'opcua', nodeId: 'x', value: 'twelve' },
    { kind: 'opcua', nodeId: 'x', value: '1.5' },
    { kind: 'opcua', nodeId: 'x', value: Infinity },
    { kind: 'opcua', nodeId: 'x', extra: 1 },
  ]) assert.equal(opcuaModule.objectSchema.safeParse(junk).success, false, JSON.stringify(junk));
});

test('the matcher is the module\'s, for opcua objects', () => {
  assert.equal(opcuaModule.matcher.kind, 'opcua');
  assert.equal(opcuaModule.name, 'opcua');
  const rule = opcuaModule.ruleSchema.parse({ verbs: ['write'], nodes: ['ns=1;s=boiler-1/Boiler/*'], max: 40 });
  const env = { target: undefined, profile: undefined };
  const over = opcuaModule.matcher.match(rule, write, write.object, env, 'contain');
  assert.equal(over.fits ? 'fits' : over.miss, 'value_out_of_bounds');
  assert.equal(opcuaModule.matcher.match(rule, write, { ...write.object, value: 40 }, env, 'contain').fits, true);
  assert.equal(opcuaModule.matcher.validate({ ...write, verb: 'exec' }, write.object) !== undefined, true, 'exec is no OPC UA service');
});

test('the journal block and the line for people', () => {
  assert.deepEqual(opcuaModule.renderObject(write.object), {
    node_id: 'ns=1;s=boiler-1/Boiler/Setpoint',
    browse_path: 'Objects/Boiler/Setpoint',
    attribute: 'Value',
    value: 42.5,
    object_id: undefined,
  });
  assert.equal(opcuaModule.describeAction(write), 'write ns=1;s=boiler-1/Boiler/Setpoint = 42.5');
  assert.equal(opcuaModule.describeAction({ target: 'boiler-1', verb: 'call', object: { kind: 'opcua', nodeId: 'ns=1;s=boiler-1/Boiler/StartPump', objectId: 'ns=1;s=boiler-1/Boiler' } }), 'call ns=1;s=boiler-1/Boiler/StartPump');
});

test('every decision reason has a refusal, and each is an OPC UA status code', () => {
  assert.deepEqual(Object.keys(opcuaModule.refusals).sort(), Object.keys(DECISION_REASONS).sort());
  for (const [reason, status] of Object.entries(opcuaModule.refusals)) {
    assert.equal((StatusCodes as unknown as Record<string, { name: string }>)[status]?.name, status, reason);
  }
  assert.equal(opcuaModule.refusals.value_out_of_bounds, 'BadOutOfRange');
  assert.equal(opcuaModule.refusals.no_grant, 'BadUserAccessDenied');
});

test('dry run: arguments become the action a request would, bad ones a usage error', () => {
  const dry = opcuaModule.dryRun!;
  assert.deepEqual(dry.parse(['write', 'ns=1;s=Drum/Level/Setpoint'], { value: '-2.5' }), { verb: 'write', object: { kind: 'opcua', nodeId: 'ns=1;s=Drum/Level/Setpoint', value: -2.5 } });
  assert.deepEqual(dry.parse(['call', 'ns=1;s=boiler-1/Boiler/StartPump'], { object: 'ns=1;s=boiler-1/Boiler', browsePath: 'Objects/Boiler/StartPump' }), {
    verb: 'call',
    object: { kind: 'opcua', nodeId: 'ns=1;s=boiler-1/Boiler/StartPump', browsePath: 'Objects/Boiler/StartPump', objectId: 'ns=1;s=boiler-1/Boiler' },
  });
  // An Int64 beyond what a double holds stays exact, as the front door carries it.
  assert.deepEqual(dry.parse(['write', 'ns=1;s=cell/Counter'], { value: '9007199254740993' }).object, { kind: 'opcua', nodeId: 'ns=1;s=cell/Counter', value: '9007199254740993' });
  for (const obj of [dry.parse(['read', 'n'], { attribute: 'Value' }).object, dry.parse(['write', 'n'], { value: '9007199254740993' }).object]) {
    assert.ok(opcuaModule.objectSchema.safeParse(obj).success, 'what the dry run builds, the admin socket accepts');
  }
  for (const [args, opts] of [
    [[], {}],
    [['exec', 'n'], {}],
    [['read'], {}],
    [['read', 'n', 'extra'], {}],
    [['write', 'n'], { value: 'ten' }],
    [['write', 'n'], { value: '' }],
    [['write', 'n'], { value: '1e999' }],
  ] as [string[], Record<string, string>][]) {
    assert.throws(() => dry.parse(args, opts), DryRunUsageError, JSON.stringify([args, opts]));
  }
  assert.ok(dry.options.some((o) => o.flags.startsWith('--value')));
  assert.match(dry.usage[0]!, /^opcua read\|write\|call\|browse\|subscribe\|history NODEID/);
});

test('credentials: an OPC UA user with a vault reference, never an inline password; the vault form is a hash', async () => {
  const schema = opcuaModule.credentialSchemas!.opcua_user!;
  assert.ok(schema.safeParse({ username: 'anna', password: 'vault:anna-opcua' }).success);
  assert.equal(schema.safeParse({ username: 'anna', password: 'hunter2' }).success, false);
  assert.equal(schema.safeParse({ username: '', password: 'vault:x' }).success, false);
  const form = opcuaModule.secretForms!['opcua-password']!;
  const stored = await form.encode('correct horse battery');
  assert.match(stored, /^scrypt\$/);
  assert.ok(!stored.includes('correct horse'));
  assert.ok(verifyOpcuaPassword('correct horse battery', stored));
  assert.equal(verifyOpcuaPassword('wrong', stored), false);
});

test('profile points: a node each; register fields and run-time scale factors are refused', () => {
  const pp = opcuaModule.profilePoint!;
  assert.ok(pp.fields.node!.safeParse('ns=1;s=boiler/Drum/Level').success);
  assert.equal(pp.fields.node!.safeParse('').success, false);
  for (const p of opcuaProfile.points) assert.deepEqual(pp.check(p as unknown as Record<string, unknown>, opcuaProfile), [], p.name);
  const point = { name: 'x', type: 'uint16', words: 1, access: 'RW' };
  assert.deepEqual(pp.check(point, opcuaProfile).map((i) => i.path), [[]]);
  assert.deepEqual(pp.check({ ...point, node: 'n', table: 'holding_register', address: 1 }, opcuaProfile).map((i) => i.path), [['table']]);
  assert.deepEqual(pp.check({ ...point, node: 'n', scale_factor: 'x_SF' }, opcuaProfile).map((i) => i.path), [['scale_factor']]);
});

test('no rule warnings of its own, no streams served, no events of its own', () => {
  assert.equal(opcuaModule.ruleWarnings, undefined);
  assert.notEqual(opcuaModule.servesStreams, true);
  assert.equal(opcuaModule.events, undefined);
});

test('importing the descriptor does not load node-opcua; loading the front door does', () => {
  // A fresh process records every module specifier it resolves. The second import is the control: the
  // hook does see node-opcua when something loads it.
  const probe = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(specifier, context, next) { if (/^node-opcua/.test(specifier)) seen.push(specifier); return next(specifier, context); } });
    const { opcuaModule } = await import(${JSON.stringify(root('src/adapters/opcua/module.ts'))});
    const before = seen.length;
    const door = await opcuaModule.load();
    console.log(JSON.stringify({ before, after: seen.length, start: typeof door.start }));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8', timeout: 120_000 });
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as { before: number; after: number; start: string };
  assert.equal(r.before, 0, 'module.ts and its imports resolve no node-opcua package');
  assert.ok(r.after > 0, 'the front door does (the probe sees it)');
  assert.equal(r.start, 'function');
});
