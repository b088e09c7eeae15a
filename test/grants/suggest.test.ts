// Grants from observation, unit level: actions as the journal holds them (rendered by the real
// journal rendering, reads folded as the read aggregator folds them) go through the shared folding and
// each protocol's suggestRules; the YAML printed must parse as config grants, and policy (the real
// decide()) must allow every action observed as allowed under them and refuse the neighbours.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { protocols } from '../../src/adapters/registry.ts';
import { grantSchema } from '../../src/config/schema.ts';
import { renderAction } from '../../src/journal/fields.ts';
import { decide } from '../../src/policy/decide.ts';
import type { Action } from '../../src/policy/types.ts';
import { Observations, suggestGrantsYaml, suggestedGrantId, type ObservedEvent } from '../../src/grants/suggest.ts';
import { sinceArg } from '../../src/cli/suggest.ts';
import { UsageError } from '../../src/cli/io.ts';
import { ctx, profiles, targets, words32 } from '../policy/fixtures.ts';

let seq = 0;
const time = (n: number) => new Date(Date.UTC(2026, 5, 15, 10, 0, n)).toISOString();
function done(a: Action, effect: 'allowed' | 'denied' = 'allowed', reason?: string): ObservedEvent {
  seq++;
  return { seq, time: time(seq), event: `action.${effect}`, target: a.target, action: renderAction(a), decision: { effect: effect === 'allowed' ? 'allow' : 'deny', ...(reason ? { reason } : {}) } };
}
/** A read as the aggregator journals it: the action object without values, counted. */
function aggregated(a: Action, count: number): ObservedEvent {
  seq++;
  const { values: _v, ...object } = a.object as Record<string, unknown>;
  return { seq, time: time(seq), event: 'reads.aggregate', reads: [{ target: a.target, verb: a.verb, object, count, first: time(seq), last: time(seq + 1) }] };
}

function suggest(events: ObservedEvent[]): { yaml: string; grants: ReturnType<typeof grantSchema.parse>[] } {
  const obs = new Observations(protocols);
  for (const e of events) obs.add(e);
  const described = Object.fromEntries([...targets].map(([id, t]) => [id, { protocol: t.protocol, zone: t.zone, ...(t.profile ? { profile: profiles.get(t.profile)! } : {}) }]));
  const yaml = suggestGrantsYaml(obs, { principal: 'vendor-a', ticket: 'CHANGE-ME', targets: described, protocols, header: ['test'] });
  const doc = parse(yaml) as { grants: unknown[] };
  return { yaml, grants: doc.grants.map((g) => grantSchema.parse(g)) };
}
const held = (grants: ReturnType<typeof suggest>['grants']) => ctx(grants.map((g) => ({ ...g, source: 'config' as const })));

const mb = (target: string, verb: 'read' | 'write', functionCode: number, table: string | null, address: number, quantity: number, values?: number[]): Action =>
  ({ target, verb, object: { kind: 'modbus', unit: 1, functionCode, table, address, quantity, ...(values ? { values } : {}) } });

test('Modbus: ranges merged per table and direction, function codes as used, bounds from the values written', () => {
  const allowed = [
    mb('plc-raw', 'read', 3, 'holding_register', 0, 10),
    mb('plc-raw', 'read', 3, 'holding_register', 10, 5),
    mb('plc-raw', 'read', 3, 'holding_register', 100, 2),
    mb('plc-raw', 'read', 4, 'input_register', 7, 1),
    mb('plc-raw', 'write', 6, 'holding_register', 12, 1, [400]),
    mb('plc-raw', 'write', 16, 'holding_register', 13, 2, [420, 450]),
    mb('plc-raw', 'write', 5, 'coil', 3, 1, [1]),
  ];
  const denied = mb('plc-raw', 'write', 6, 'holding_register', 60, 1, [9]);
  const { yaml, grants } = suggest([...allowed.slice(0, 3).map((a) => aggregated(a, 5)), ...allowed.slice(3).map((a) => done(a)), done(denied, 'denied', 'object_not_granted')]);
  assert.equal(grants.length, 1);
  assert.equal(grants[0]!.id, 'suggested-vendor-a-plc-raw');
  assert.deepEqual(grants[0]!.rules.map((r) => r.modbus), [
    { effect: 'allow', function_codes: [3], units: [1], tables: ['holding_register'], addresses: [{ from: 0, to: 14 }, { from: 100, to: 101 }] },
    { effect: 'allow', function_codes: [4], units: [1], tables: ['input_register'], addresses: [{ from: 7, to: 7 }] },
    { effect: 'allow', function_codes: [5], units: [1], tables: ['coil'], addresses: [{ from: 3, to: 3 }], min: 1, max: 1 },
    { effect: 'allow', function_codes: [6, 16], units: [1], tables: ['holding_register'], addresses: [{ from: 12, to: 14 }], min: 400, max: 450 },
  ]);
  assert.match(yaml, /# reads; FC 3; unit 1; holding_register 0-14, 100-101: 15 actions/, 'aggregated reads count');
  assert.match(yaml, /denied, not granted \(1\):\n\s*#\s+write .*address=60/);
  const c = held(grants);
  for (const a of allowed) assert.equal(decide(a, c).effect, 'allow', JSON.stringify(a.object));
  assert.equal(decide(denied, c).effect, 'deny', 'a denied action is not granted');
  assert.equal(decide(mb('plc-raw', 'read', 3, 'holding_register', 15, 1), c).effect, 'deny', 'the gap stays closed');
  assert.equal(decide(mb('plc-raw', 'write', 6, 'holding_register', 12, 1, [451]), c).reason, 'value_out_of_bounds');
  assert.equal(decide(mb('plc-raw', 'write', 6, 'holding_register', 12, 1, [399]), c).reason, 'value_out_of_bounds');
  assert.equal(decide(mb('plc-raw', 'write', 5, 'coil', 3, 1, [0]), c).reason, 'value_out_of_bounds');
  assert.equal(decide(mb('plc-raw', 'write', 16, 'holding_register', 0, 1, [400]), c).effect, 'deny', 'read registers are not writable');
  assert.equal(decide(mb('plc-raw', 'write', 22, 'holding_register', 12, 1), c).reason, 'function_not_granted', 'mask write was never used');
});

test('Modbus: FC 23 halves stay halves, a function on no table is granted by name, a mask write gets no bound', () => {
  const allowed = [
    mb('plc-raw', 'read', 23, 'holding_register', 0, 4),
    mb('plc-raw', 'write', 22, 'holding_register', 30, 1),
    mb('plc-raw', 'write', 8, null, 0, 0),
  ];
  const { grants } = suggest(allowed.map((a) => done(a)));
  assert.deepEqual(grants[0]!.rules.map((r) => r.modbus), [
    { effect: 'allow', access: 'read', units: [1], tables: ['holding_register'], addresses: [{ from: 0, to: 3 }] },
    { effect: 'allow', function_codes: [8], units: [1] },
    { effect: 'allow', function_codes: [22], units: [1], tables: ['holding_register'], addresses: [{ from: 30, to: 30 }] },
  ]);
  const c = held(grants);
  for (const a of allowed) assert.equal(decide(a, c).effect, 'allow', JSON.stringify(a.object));
  assert.equal(decide(mb('plc-raw', 'write', 23, 'holding_register', 0, 1, [1]), c).effect, 'deny', 'only the read half of FC 23 was seen');
});

test('Modbus with a firmware profile: whole points are named, bounds in engineering units; a register outside every point keeps addresses', () => {
  const allowed = [
    mb('plc-1', 'read', 3, 'holding_register', 40110, 2),
    mb('plc-1', 'write', 6, 'holding_register', 40100, 1, [500]), // setpoints.WMaxLimPct, 10^-1: 50 %
    mb('plc-1', 'write', 16, 'holding_register', 40102, 2, words32('float32', 230)), // setpoints.VRef
    mb('plc-1', 'read', 3, 'holding_register', 5, 1),
  ];
  const { yaml, grants } = suggest(allowed.map((a) => done(a)));
  assert.deepEqual(grants[0]!.rules.map((r) => r.modbus), [
    { effect: 'allow', function_codes: [3], units: [1], tables: ['holding_register'], addresses: [{ from: 5, to: 5 }, { from: 40110, to: 40111 }] },
    { effect: 'allow', function_codes: [6, 16], units: [1], tables: ['holding_register'], points: ['setpoints.VRef', 'setpoints.WMaxLimPct'], min: 50, max: 230 },
  ]);
  assert.match(yaml, /holding_register points setpoints.VRef, setpoints.WMaxLimPct; values 50..230/);
  const c = held(grants);
  for (const a of allowed) assert.equal(decide(a, c).effect, 'allow', JSON.stringify(a.object));
  assert.equal(decide(mb('plc-1', 'write', 16, 'holding_register', 40104, 2, words32('int32', 1)), c).effect, 'deny', 'another point');
  assert.equal(decide(mb('plc-1', 'write', 6, 'holding_register', 40100, 1, [400]), c).reason, 'value_out_of_bounds', '40 % is below what was written');

  // Read-only points are named for reads too when every register read is in a point.
  const reads = suggest([done(mb('plc-1', 'read', 3, 'holding_register', 40110, 2))]).grants;
  assert.deepEqual(reads[0]!.rules[0]!.modbus, { effect: 'allow', function_codes: [3], units: [1], tables: ['holding_register'], points: ['status.St', 'status.W'] });
});

const ua = (verb: Action['verb'], nodeId: string, extra: Record<string, unknown> = {}): Action => ({ target: 'hmi-1', verb, object: { kind: 'opcua', nodeId, ...extra } });

test('OPC UA: exact nodes per verb, bounds from numeric writes', () => {
  const allowed = [
    ua('read', 'ns=1;s=boiler/Drum/Level'),
    ua('read', 'ns=1;s=boiler/Setpoint'),
    ua('browse', 'ns=1;s=boiler'),
    ua('write', 'ns=1;s=boiler/Setpoint', { value: 55 }),
    ua('write', 'ns=1;s=boiler/Setpoint', { value: 60.5 }),
    ua('call', 'ns=1;s=boiler/Reset', { objectId: 'ns=1;s=boiler' }),
  ];
  const { grants } = suggest([aggregated(allowed[0]!, 40), ...allowed.slice(1).map((a) => done(a))]);
  assert.deepEqual(grants[0]!.rules.map((r) => r.opcua), [
    { effect: 'allow', verbs: ['read'], nodes: ['ns=1;s=boiler/Drum/Level', 'ns=1;s=boiler/Setpoint'] },
    { effect: 'allow', verbs: ['write'], nodes: ['ns=1;s=boiler/Setpoint'], min: 55, max: 60.5 },
    { effect: 'allow', verbs: ['call'], nodes: ['ns=1;s=boiler/Reset'] },
    { effect: 'allow', verbs: ['browse'], nodes: ['ns=1;s=boiler'] },
  ]);
  const c = held(grants);
  for (const a of allowed) assert.equal(decide(a, c).effect, 'allow', JSON.stringify(a.object));
  assert.equal(decide(ua('write', 'ns=1;s=boiler/Setpoint', { value: 61 }), c).reason, 'value_out_of_bounds');
  assert.equal(decide(ua('read', 'ns=1;s=boiler/Other'), c).reason, 'object_not_granted');
  assert.equal(decide(ua('call', 'ns=1;s=boiler/Purge', { objectId: 'ns=1;s=boiler' }), c).reason, 'object_not_granted');
  // A 64-bit integer given as text is not rounded into a bound: that write rule has none.
  const big = suggest([done(ua('write', 'ns=1;s=boiler/Counter', { value: '9007199254740993' }))]).grants;
  assert.deepEqual(big[0]!.rules[0]!.opcua, { effect: 'allow', verbs: ['write'], nodes: ['ns=1;s=boiler/Counter'] });
});

const exec = (commandLine: string, extra: Record<string, unknown> = {}): Action => {
  const a = { target: 'gw-1', verb: 'exec' as const, object: { kind: 'ssh', channel: 'exec', commandLine, ...extra } };
  return a;
};
/** As the front door journals an exec: the raw line, its argv as the shell splits it, the metacharacter flag. */
function shellExec(commandLine: string, argv: string[], metacharacters = false, pty = false): Action {
  return exec(commandLine, { argv, metacharacters, ...(pty ? { pty: true } : {}) });
}

test('SSH: argv shapes with varied operands as *, options kept exactly, metacharacter lines exact, channels as seen', () => {
  const allowed = [
    shellExec('systemctl status penstock', ['systemctl', 'status', 'penstock']),
    shellExec('systemctl status bridge', ['systemctl', 'status', 'bridge']),
    shellExec('journalctl -u penstock --no-pager', ['journalctl', '-u', 'penstock', '--no-pager']),
    shellExec('journalctl -u bridge --no-pager', ['journalctl', '-u', 'bridge', '--no-pager']),
    shellExec('rm -- -stale', ['rm', '--', '-stale']),
    shellExec('ls *.log | wc -l', ['ls', '*.log', '|', 'wc', '-l'], true),
    shellExec('top', ['top'], false, true),
    { target: 'gw-1', verb: 'shell', object: { kind: 'ssh', channel: 'shell' } } as Action,
    { target: 'gw-1', verb: 'tunnel', object: { kind: 'ssh', channel: 'tunnel', tunnel: 'raw' } } as Action,
    { target: 'gw-1', verb: 'download', object: { kind: 'ssh', channel: 'sftp', path: '/var/log/app.log', direction: 'download', bytes: 10 } } as Action,
  ];
  const { yaml, grants } = suggest(allowed.map((a) => done(a)));
  assert.deepEqual(grants[0]!.rules.map((r) => r.ssh), [
    { effect: 'allow', exec: ['systemctl', 'status', '*'] },
    { effect: 'allow', exec: ['journalctl', '-u', '*', '--no-pager'] },
    { effect: 'allow', exec: ['rm', '--', '-stale'] },
    { effect: 'allow', command_line: 'ls *.log | wc -l' },
    { effect: 'allow', exec: ['top'], pty: true },
    { effect: 'allow', shell: true },
    { effect: 'allow', tunnel: 'raw' },
    { effect: 'allow', sftp: { paths: ['/var/log/app.log'], direction: 'download' } },
  ]);
  assert.match(yaml, /# exec systemctl status \* \(an operand that varied is \*\): 2 actions/);
  const c = held(grants);
  for (const a of allowed) assert.equal(decide(a, c).effect, 'allow', JSON.stringify(a.object));
  for (const line of ['systemctl restart penstock', 'systemctl status --host=evil penstock', 'systemctl status a b', 'journalctl -f -u penstock --no-pager', 'journalctl -u penstock', 'rm -- -rf', 'ls x.log | wc -l', 'top -b']) {
    assert.equal(decide(exec(line), c).effect, 'deny', line);
  }
  assert.equal(decide({ target: 'gw-1', verb: 'upload', object: { kind: 'ssh', channel: 'sftp', path: '/var/log/app.log', direction: 'upload', bytes: 1 } }, c).effect, 'deny');
});

test('only denied actions on a target: no grant, the refusals listed; ids stay within the id syntax', () => {
  const { yaml, grants } = suggest([done(mb('plc-raw', 'read', 3, 'holding_register', 0, 1), 'denied', 'no_grant')]);
  assert.deepEqual(grants, []);
  assert.match(yaml, /No allowed action was observed/);
  assert.match(yaml, /target plc-raw\n# denied, not granted \(1\)/);
  const long = suggestedGrantId('p'.repeat(60), 't'.repeat(60));
  assert.ok(grantSchema.shape.id.safeParse(long).success, long);
  assert.notEqual(long, suggestedGrantId('p'.repeat(60), `${'t'.repeat(59)}u`));
});

test('a long session: bounds from two million values written (no call with one argument per value)', () => {
  const modbus = protocols.get('modbus')!;
  const actions = Array.from({ length: 1000 }, (_, i) => ({ verb: 'write' as const, effect: 'allowed' as const, count: 1, first: time(i), last: time(i), object: modbus.renderObject({ kind: 'modbus', unit: 1, functionCode: 16, table: 'holding_register', address: 0, quantity: 2000, values: Array.from({ length: 2000 }, (_, k) => (i * 2000 + k) % 60000) }) }));
  const [rule] = modbus.suggestRules!(actions, { target: undefined, profile: undefined });
  assert.deepEqual(rule!.rule, { effect: 'allow', function_codes: [16], units: [1], tables: ['holding_register'], addresses: [{ from: 0, to: 1999 }], min: 0, max: 59999 });
});

test('--since: an ISO time with a zone, or a duration back from now; anything else is a usage error', () => {
  const now = Date.parse('2026-06-15T10:00:00Z');
  assert.equal(sinceArg('8h', now), '2026-06-15T02:00:00.000Z');
  assert.equal(sinceArg('7d', now), '2026-06-08T10:00:00.000Z');
  assert.equal(sinceArg('90m', now), '2026-06-15T08:30:00.000Z');
  assert.equal(sinceArg('2026-06-15T09:00:00+02:00', now), '2026-06-15T07:00:00.000Z');
  for (const bad of ['yesterday', '2026-06-15T09:00:00', '8 h', '-1h', '']) assert.throws(() => sinceArg(bad, now), UsageError, bad);
});
