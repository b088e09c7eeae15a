import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decide, explainRule } from '../../src/policy/decide.ts';
import type { Action, Verb } from '../../src/policy/types.ts';
import type { OpcuaObject } from '../../src/adapters/opcua/rules.ts';
import { browsePathWithin } from '../../src/adapters/opcua/policy.ts';
import type { SshObject } from '../../src/adapters/ssh/rules.ts';
import { ctx, grant } from './fixtures.ts';

function ua(verb: Verb, nodeId: string, extra: Partial<OpcuaObject> = {}): Action {
  return { target: 'hmi-1', verb, object: { kind: 'opcua', nodeId, ...extra } };
}
function exec(commandLine: string): Action {
  return { target: 'gw-1', verb: 'exec', object: { kind: 'ssh', channel: 'exec', commandLine } };
}
function ssh(o: Omit<SshObject, 'kind'>, verb: Verb = 'other'): Action {
  return { target: 'gw-1', verb, object: { kind: 'ssh', ...o } };
}

test('OPC UA: verbs and node ids (exact or trailing *)', () => {
  const c = ctx([grant('G', [{ opcua: { verbs: ['read', 'browse'], nodes: ['ns=1;s=boiler/*', 'ns=2;i=5'] } }])]);
  assert.equal(decide(ua('read', 'ns=1;s=boiler/Drum/Level'), c).effect, 'allow');
  assert.equal(decide(ua('browse', 'ns=2;i=5'), c).effect, 'allow');
  assert.equal(decide(ua('read', 'ns=2;i=50'), c).reason, 'object_not_granted', 'exact ids are exact');
  assert.equal(decide(ua('read', 'ns=1;s=boilerX'), c).reason, 'object_not_granted');
  assert.equal(decide(ua('write', 'ns=1;s=boiler/Setpoint', { value: 5 }), c).reason, 'function_not_granted');
  assert.equal(decide(ua('exec', 'ns=2;i=5'), c).reason, 'malformed', 'exec is no OPC UA service');
});

test('OPC UA: browse paths are prefixes on whole segments', () => {
  const c = ctx([grant('G', [{ opcua: { verbs: ['read'], browse_paths: ['Objects/Boiler'] } }])]);
  assert.equal(decide(ua('read', 'ns=1;i=1', { browsePath: 'Objects/Boiler' }), c).effect, 'allow');
  assert.equal(decide(ua('read', 'ns=1;i=1', { browsePath: 'Objects/Boiler/Drum/Level' }), c).effect, 'allow');
  assert.equal(decide(ua('read', 'ns=1;i=1', { browsePath: 'Objects/Boiler2/Drum' }), c).reason, 'object_not_granted');
  assert.equal(decide(ua('read', 'ns=1;i=1'), c).reason, 'object_not_granted', 'no browse path, no match');
});

test('OPC UA: browse-path prefixes compared as text agree with whole segments, whatever the slashes', () => {
  // The segment-wise definition browsePathWithin answers without splitting plain paths.
  const segments = (p: string) => p.split('/').filter((x) => x.length > 0);
  const within = (prefix: string, path: string) => {
    const [p, s] = [segments(prefix), segments(path)];
    return p.length > 0 && p.length <= s.length && p.every((seg, i) => seg === s[i]);
  };
  const part = fc.constantFrom('', '/', '//', 'Objects', 'Boiler', 'Boiler2', 'Boil', 'er', 'Drum', 'a/b', ' ', 'é');
  const path = fc.array(part, { maxLength: 6 }).map((xs) => xs.join(''));
  fc.assert(fc.property(path, path, (prefix, p) => browsePathWithin(prefix, p) === within(prefix, p)), { numRuns: 20_000 });
  for (const [prefix, p, expected] of [['Objects/Boiler', 'Objects/Boiler', true], ['Objects/Boiler', 'Objects/Boiler/Drum', true], ['Objects/Boiler', 'Objects/Boiler2', false], ['Objects/Boiler', 'Objects/Boile', false], ['/Objects//Boiler/', 'Objects/Boiler/Drum', true], ['', 'Objects', false], ['/', 'Objects', false]] as const) {
    assert.equal(browsePathWithin(prefix, p), expected, `${prefix} within ${p}`);
  }
});

test('OPC UA: points resolve to profile nodes and bound writes', () => {
  const c = ctx([grant('G', [{ opcua: { verbs: ['read', 'write'], points: ['setpoints.*', 'drum.*'], max: 60 } }])]);
  assert.equal(decide(ua('read', 'ns=1;s=boiler/Drum/Level'), c).effect, 'allow');
  assert.equal(decide(ua('read', 'ns=1;i=99', { browsePath: 'Objects/Other' }), c).reason, 'object_not_granted');
  assert.equal(decide(ua('write', 'ns=1;s=boiler/Setpoint', { value: 60 }), c).effect, 'allow');
  assert.equal(decide(ua('write', 'ns=1;s=boiler/Setpoint', { value: 61 }), c).reason, 'value_out_of_bounds');
  assert.equal(decide(ua('write', 'ns=1;s=boiler/Setpoint'), c).reason, 'value_out_of_bounds', 'unknown value under bounds');
  assert.equal(decide(ua('write', 'ns=1;s=boiler/Drum/Level', { value: 1 }), c).reason, 'object_not_granted', 'read-only point');
  const loose = ctx([grant('G', [{ opcua: { verbs: ['write'], nodes: ['ns=1;s=boiler/*'] } }])]);
  assert.equal(decide(ua('write', 'ns=1;s=boiler/Setpoint', { value: 81 }), loose).reason, 'value_out_of_bounds', "the profile's safe range applies to any rule");
  assert.equal(decide(ua('write', 'ns=1;s=boiler/Setpoint', { value: 80 }), loose).effect, 'allow');
});

test('SSH exec: argv patterns with *, ... and quoting', () => {
  const c = ctx([grant('G', [
    { ssh: { exec: ['systemctl', 'status', '*'] } },
    { ssh: { exec: ['journalctl', '...'] } },
  ])]);
  assert.equal(decide(exec('systemctl status penstock'), c).effect, 'allow');
  assert.equal(decide(exec("systemctl status 'my unit'"), c).effect, 'allow', 'a quoted word is one argument');
  assert.equal(decide(exec('systemctl  status\tx'), c).effect, 'allow');
  assert.equal(decide(exec('systemctl status a b'), c).reason, 'object_not_granted', '* is exactly one argument');
  assert.equal(decide(exec('systemctl status'), c).reason, 'object_not_granted');
  assert.equal(decide(exec('systemctl restart penstock'), c).reason, 'object_not_granted');
  assert.equal(decide(exec('journalctl'), c).effect, 'allow', '... takes an empty tail');
  // Options are not operands: * and ... never admit them (this used to allow).
  assert.equal(decide(exec('journalctl -u penstock -n 50'), c).reason, 'object_not_granted', '... admits operands only');
  const host = decide(exec('systemctl status --host=rtu@127.0.0.1:22201'), c);
  assert.equal(host.reason, 'object_not_granted', 'an option is not one argument of *');
  assert.match(host.explanation, /is an option/);
  assert.equal(decide(exec('systemctl status -H rtu@10.0.0.1'), c).reason, 'object_not_granted');
  assert.equal(decide(exec('journalctl-x'), c).reason, 'object_not_granted');
  assert.equal(decide(exec("systemctl status 'unterminated"), c).reason, 'malformed');
});

test('SSH exec: options are allowed where a rule names them', () => {
  const c = ctx([grant('G', [
    { ssh: { exec: ['journalctl', '--no-pager', '-u', '*', '--lines=*'] } },
    { ssh: { exec: ['ls', '-...'] } },
  ])]);
  assert.equal(decide(exec('journalctl --no-pager -u bridge --lines=50'), c).effect, 'allow');
  assert.equal(decide(exec('journalctl --no-pager -u --file=x --lines=50'), c).reason, 'object_not_granted');
  assert.equal(decide(exec('journalctl --no-pager -u bridge --since=50'), c).reason, 'object_not_granted');
  assert.equal(decide(exec('ls -la /tmp'), c).effect, 'allow', '-... is the explicit opt-in');
});

test('SSH exec: metacharacters refuse unless a command_line rule names the exact line', () => {
  const line = 'journalctl -u penstock | tail -n 5';
  const c = ctx([grant('G', [{ ssh: { exec: ['journalctl', '...'] } }, { ssh: { command_line: line } }])]);
  for (const bad of ['journalctl; rm -rf /', 'journalctl $(id)', 'journalctl `id`', 'journalctl > /etc/passwd', 'journalctl\nreboot', 'journalctl -u "$HOME"', 'journalctl /var/log/*', 'journalctl & reboot']) {
    const d = decide(exec(bad), c);
    assert.equal(d.effect, 'deny', bad);
    assert.equal(d.reason, 'metacharacters', bad);
  }
  assert.equal(decide(exec(line), c).effect, 'allow');
  assert.equal(decide(exec(line + ' '), c).reason, 'metacharacters', 'exact means exact');
  assert.equal(decide(exec("journalctl 'a;b|c'"), c).effect, 'allow', 'quoted metacharacters are plain text (an operand: ... admits no -g)');
});

test('SSH: a deny exec pattern refuses a command hidden behind a separator', () => {
  const c = ctx([grant('G', [{ ssh: { command_line: 'ls; rm -rf /tmp/x' } }, { ssh: { effect: 'deny', exec: ['rm', '...'] } }])]);
  const d = decide(exec('ls; rm -rf /tmp/x'), c);
  assert.equal(d.reason, 'rule_denies');
  assert.equal(d.rule, 'G#1');
});

test('SSH: shell, tunnels and sftp are separate channel kinds', () => {
  const c = ctx([grant('G', [
    { ssh: { exec: ['uptime'] } },
    { ssh: { tunnel: 'modbus' } },
    { ssh: { sftp: { paths: ['/var/log/plc/**', '/srv/fw/*.bin'], direction: 'download', max_bytes: 1000 } } },
  ])]);
  assert.equal(decide(ssh({ channel: 'shell' }, 'shell'), c).reason, 'function_not_granted');
  assert.equal(decide(ssh({ channel: 'shell' }, 'shell'), ctx([grant('G', [{ ssh: { shell: true } }])])).effect, 'allow');
  assert.equal(decide(ssh({ channel: 'tunnel', tunnel: 'modbus' }, 'tunnel'), c).effect, 'allow');
  assert.equal(decide(ssh({ channel: 'tunnel', tunnel: 'raw' }, 'tunnel'), c).reason, 'object_not_granted');
  const dl = (path: string, bytes?: number) => ssh({ channel: 'sftp', direction: 'download', path, ...(bytes !== undefined ? { bytes } : {}) }, 'download');
  assert.equal(decide(dl('/var/log/plc/a/b.log', 10), c).effect, 'allow');
  assert.equal(decide(dl('/srv/fw/x.bin', 1000), c).effect, 'allow');
  assert.equal(decide(dl('/srv/fw/sub/x.bin', 10), c).reason, 'object_not_granted', '* stays in one segment');
  assert.equal(decide(dl('/etc/shadow', 10), c).reason, 'object_not_granted');
  assert.equal(decide(dl('/var/log/plc/../../../etc/shadow', 10), c).reason, 'malformed');
  assert.equal(decide(dl('/var/log/plc/a.log', 1001), c).reason, 'value_out_of_bounds');
  assert.equal(decide(dl('/var/log/plc/a.log'), c).reason, 'value_out_of_bounds', 'unknown size under a limit');
  assert.equal(decide(ssh({ channel: 'sftp', direction: 'upload', path: '/var/log/plc/a.log', bytes: 1 }, 'upload'), c).reason, 'function_not_granted');
});

test('grant and principal checks come before rules', () => {
  const base = grant('G', [{ ssh: { exec: ['uptime'] } }]);
  assert.equal(decide(exec('uptime'), ctx([base])).effect, 'allow');
  assert.equal(decide(exec('uptime'), ctx([])).reason, 'no_grant');
  assert.equal(decide({ ...exec('uptime'), target: 'other' }, ctx([base])).reason, 'no_grant');
  const revoked = { ...base, revoked: { by: { uid: 0, verified: true }, at: '2026-06-15T09:00:00Z', reason: 'done' } };
  const r = decide(exec('uptime'), ctx([revoked]));
  assert.equal(r.reason, 'grant_not_active');
  assert.match(r.explanation, /revoked by uid 0/);
  const later = grant('G', [{ ssh: { exec: ['uptime'] } }], { window: { from: '2026-06-16T00:00:00Z', to: '2026-06-17T00:00:00Z' } });
  assert.equal(decide(exec('uptime'), ctx([later])).reason, 'grant_not_active');
  assert.equal(decide(exec('uptime'), ctx([later], Date.parse('2026-06-16T00:00:00Z'))).effect, 'allow');
  assert.equal(decide(exec('uptime'), ctx([later], Date.parse('2026-06-17T00:00:00Z'))).reason, 'grant_not_active', 'the window end is exclusive');
  const weekend = grant('G', [{ ssh: { exec: ['uptime'] } }], { schedule: [{ days: ['sat', 'sun'], from: '00:00', to: '24:00', tz: 'UTC' }] });
  assert.equal(decide(exec('uptime'), ctx([weekend])).reason, 'grant_not_active', '2026-06-15 is a Monday');
  assert.equal(decide(exec('uptime'), ctx([weekend], Date.parse('2026-06-13T12:00:00Z'))).effect, 'allow');
  const expired = { ...ctx([base]).principal, expires: '2026-06-01T00:00:00Z' };
  assert.equal(decide(exec('uptime'), ctx([base], undefined, expired)).reason, 'principal_expired');
  const wrongProtocol = decide(exec('uptime'), ctx([grant('G', [{ modbus: { preset: 'readonly' } }])]));
  assert.equal(wrongProtocol.reason, 'function_not_granted');
  assert.equal(decide({ target: 'gw-1', verb: 'other', object: { kind: 'dnp3' } as never }, ctx([base])).reason, 'malformed');
});

test('explainRule reads like the rule', () => {
  const g = grant('G', [
    { modbus: { preset: 'readwrite', units: [1], addresses: ['100-110'], min: 0, max: 50 } },
    { opcua: { effect: 'approve', verbs: ['write'], points: ['setpoints.*'] } },
    { ssh: { effect: 'deny', exec: ['rm', '...'] } },
  ]);
  assert.equal(explainRule(g.rules[0]!), 'allow modbus: preset readwrite; unit 1; addresses 100-110; values 0..50');
  assert.equal(explainRule(g.rules[1]!), 'approve opcua: write; points setpoints.*');
  assert.equal(explainRule(g.rules[2]!), 'deny ssh: exec rm ...');
});
