// The SSH ProtocolModule, piece by piece, on real examples: the rules the demo and the tests use, the
// objects the front door and a dry run build, the refusal texts, the warnings config check gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { sshModule } from '../../../src/adapters/ssh/module.ts';
import { DryRunUsageError } from '../../../src/adapters/types.ts';
import { parseCommandLine } from '../../../src/adapters/ssh/argv.ts';
import type { SshObject } from '../../../src/adapters/ssh/rules.ts';
import { SFTP_RULE_WARNINGS, SSH_RULE_WARNINGS } from '../../../src/adapters/ssh/rule-warnings.ts';
import { checkConfig } from '../../../src/config/load.ts';
import { DECISION_REASONS, type Action } from '../../../src/policy/types.ts';
import { testProtocols } from '../../config/protocols.ts';

const file = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));
const GOOD = file('../../config/fixtures/good.yaml');
const DEMO = file('../../../scripts/demo/site-ssh.yaml');
const ONE_RULE = '      - ssh: { exec: [systemctl, status, "*"] }';

/** The `ssh:` rule bodies of a config file, as written. */
function sshRulesIn(path: string): unknown[] {
  const doc = parseYaml(readFileSync(path, 'utf8')) as { grants?: { rules?: Record<string, unknown>[] }[] };
  return (doc.grants ?? []).flatMap((g) => (g.rules ?? []).filter((r) => 'ssh' in r).map((r) => r.ssh));
}

/** An exec object as the front door builds it from the client's command line. */
function execObject(commandLine: string, pty?: true): SshObject {
  const parsed = parseCommandLine(commandLine);
  return { kind: 'ssh', channel: 'exec', commandLine, ...('error' in parsed ? {} : { argv: parsed.argv, metacharacters: parsed.metacharacters }), ...(pty ? { pty } : {}) };
}
const sftpObject = (direction: 'upload' | 'download', path: string, bytes?: number): SshObject => ({ kind: 'ssh', channel: 'sftp', path, direction, ...(bytes !== undefined ? { bytes } : {}) });
const action = (verb: Action['verb'], object: SshObject) => ({ target: 'gw-1', verb, object });

test('renderObject gives the journal block of a real exec and file transfer', () => {
  assert.deepEqual(sshModule.renderObject(execObject("journalctl -u bridge --lines=50 'x y'", true)), {
    channel: 'exec',
    command: "journalctl -u bridge --lines=50 'x y'",
    argv: ['journalctl', '-u', 'bridge', '--lines=50', 'x y'],
    metacharacters: false,
    pty: true,
    tunnel: undefined,
    path: undefined,
    direction: undefined,
    bytes: undefined,
  });
  const block = sshModule.renderObject(sftpObject('upload', '/opt/fw/fw.bin', 4096));
  assert.deepEqual({ channel: block.channel, path: block.path, direction: block.direction, bytes: block.bytes }, { channel: 'sftp', path: '/opt/fw/fw.bin', direction: 'upload', bytes: 4096 });
  assert.equal(sshModule.renderObject({ kind: 'ssh', channel: 'tunnel', tunnel: 'raw' }).tunnel, 'raw');
});

test('describeAction: one line per channel kind', () => {
  assert.equal(sshModule.describeAction(action('exec', execObject('systemctl status bridge'))), 'exec systemctl status bridge');
  assert.equal(sshModule.describeAction(action('exec', { kind: 'ssh', channel: 'exec', argv: ['uptime'] })), 'exec uptime');
  assert.equal(sshModule.describeAction(action('shell', { kind: 'ssh', channel: 'shell' })), 'shell');
  assert.equal(sshModule.describeAction(action('tunnel', { kind: 'ssh', channel: 'tunnel', tunnel: 'raw' })), 'tunnel raw');
  assert.equal(sshModule.describeAction(action('upload', sftpObject('upload', '/opt/fw/fw.bin', 1024))), 'upload /opt/fw/fw.bin (1024 bytes)');
  assert.equal(sshModule.describeAction(action('download', sftpObject('download', '/var/log/syslog'))), 'download /var/log/syslog');
});

test('dryRun.parse builds what the front door would, and the admin socket accepts it', () => {
  const dry = sshModule.dryRun!;
  const cases: [string[], Record<string, string | undefined>, { verb: string; object: SshObject }][] = [
    [['exec', 'ls', '-l', 'my file'], {}, { verb: 'exec', object: execObject("ls -l 'my file'") }],
    [['exec', 'cat /etc/passwd; reboot'], {}, { verb: 'exec', object: execObject('cat /etc/passwd; reboot') }],
    [['exec', "echo 'unterminated"], {}, { verb: 'exec', object: { kind: 'ssh', channel: 'exec', commandLine: "echo 'unterminated" } }],
    [['shell'], {}, { verb: 'shell', object: { kind: 'ssh', channel: 'shell' } }],
    [['tunnel'], {}, { verb: 'tunnel', object: { kind: 'ssh', channel: 'tunnel', tunnel: 'raw' } }],
    [['tunnel', 'plc-proto'], {}, { verb: 'tunnel', object: { kind: 'ssh', channel: 'tunnel', tunnel: 'plc-proto' } }],
    [['upload', '/opt/fw/fw.bin'], { bytes: '2048' }, { verb: 'upload', object: sftpObject('upload', '/opt/fw/fw.bin', 2048) }],
    [['download', '/var/log/syslog'], {}, { verb: 'download', object: sftpObject('download', '/var/log/syslog') }],
  ];
  for (const [args, options, expected] of cases) {
    const got = dry.parse(args, options);
    assert.deepEqual(got, expected, args.join(' '));
    assert.equal(sshModule.objectSchema.safeParse(got.object).success, true, args.join(' '));
  }
  assert.equal(execObject('cat /etc/passwd; reboot').metacharacters, true);
  assert.ok(dry.usage.every((u) => u.startsWith('ssh ')));
  assert.ok(dry.options.some((o) => o.flags.startsWith('--bytes')));
});

test('dryRun.parse refuses bad input with a usage error', () => {
  const dry = sshModule.dryRun!;
  const bad: [string[], Record<string, string | undefined>][] = [
    [[], {}],
    [['scp'], {}],
    [['exec'], {}],
    [['shell', 'now'], {}],
    [['tunnel', '../x'], {}],
    [['tunnel', 'raw', 'extra'], {}],
    [['upload'], {}],
    [['download', '/a', '/b'], {}],
    [['upload', '/a'], { bytes: 'lots' }],
    [['upload', '/a'], { bytes: '-1' }],
    [['exec', 'ls'], { bytes: '1' }],
  ];
  for (const [args, options] of bad) assert.throws(() => dry.parse(args, options), DryRunUsageError, args.join(' '));
});

test('refusals: every decision reason has a coded text that names it', () => {
  assert.deepEqual(Object.keys(sshModule.refusals).sort(), Object.keys(DECISION_REASONS).sort());
  for (const [reason, text] of Object.entries(sshModule.refusals)) {
    assert.match(text, /^penstock: [a-z ()]+ \[[a-z_]+\]$/, reason);
    assert.ok(text.endsWith(`[${reason}]`), `${reason}: ${text}`);
  }
  // What the front door says today, so clients and scripts reading it see no change.
  assert.equal(sshModule.refusals.object_not_granted, 'penstock: denied by policy [object_not_granted]');
  assert.equal(sshModule.refusals.approval_refused, 'penstock: not approved [approval_refused]');
  assert.equal(sshModule.refusals.journal_unavailable, 'penstock: refused (the gateway cannot record it) [journal_unavailable]');
});

test('the rule schema accepts every SSH rule of the demo and the config fixtures, and the forms the tests use', () => {
  const written = [...sshRulesIn(DEMO), ...sshRulesIn(GOOD)];
  assert.ok(written.length >= 9, `found ${written.length} rules`);
  const used = [
    { exec: ['systemctl', 'status', '*'] },
    { exec: ['journalctl', '--no-pager', '-u', '*', '--lines=*'] },
    { exec: ['ls', '-...'] },
    { effect: 'deny', exec: ['rm', '...'] },
    { effect: 'approve', exec: ['systemctl', 'restart', 'bridge'] },
    { exec: ['less', '*'], pty: true },
    { command_line: 'top -n 1', pty: true },
    { command_line: 'ls; rm -rf /tmp/x' },
    { shell: true },
    { tunnel: 'raw' },
    { sftp: { paths: ['/var/log/plc/**', '/srv/fw/*.bin'], direction: 'download', max_bytes: 1000 } },
  ];
  for (const rule of [...written, ...used]) {
    const r = sshModule.ruleSchema.safeParse(rule);
    assert.ok(r.success, `${JSON.stringify(rule)}: ${r.success ? '' : r.error.message}`);
  }
  assert.equal(sshModule.ruleSchema.parse({ shell: true }).effect, 'allow');
});

test('the rule schema refuses junk; a tunnel names a protocol by id syntax, and which ones exist is checked elsewhere', () => {
  const junk = [
    {},
    { exec: [] },
    { exec: [''] },
    { exec: ['...', 'x'] },
    { exec: ['ls'], shell: true },
    { shell: true, pty: true },
    { exec: ['less'], pty: false },
    { shell: false },
    { tunnel: '../x' },
    { tunnel: 'no such' },
    { tunnel: '' },
    { sftp: { paths: [], direction: 'upload' } },
    { sftp: { paths: ['/x'], direction: 'sideways' } },
    { sftp: { paths: ['/x'], direction: 'upload', max_bytes: 0 } },
    { exec: ['ls'], effect: 'maybe' },
    { exec: ['ls'], extra: 1 },
  ];
  for (const rule of junk) assert.equal(sshModule.ruleSchema.safeParse(rule).success, false, JSON.stringify(rule));
  // A well-formed name of no protocol passes here; the config cross-check asks the module table.
  assert.equal(sshModule.ruleSchema.safeParse({ tunnel: 'nosuch' }).success, true);
});

test('the object schema accepts what the front door builds and refuses junk', () => {
  for (const o of [execObject('systemctl status bridge'), execObject('less /var/log/x', true), execObject('a | b'), { kind: 'ssh', channel: 'shell' }, { kind: 'ssh', channel: 'tunnel', tunnel: 'raw' }, sftpObject('download', '/var/log/syslog', 0)]) {
    assert.equal(sshModule.objectSchema.safeParse(o).success, true, JSON.stringify(o));
  }
  for (const o of [
    { kind: 'other', channel: 'shell' },
    { kind: 'ssh', channel: 'x11' },
    { kind: 'ssh', channel: 'shell', extra: true },
    { kind: 'ssh', channel: 'tunnel', tunnel: '../x' },
    { kind: 'ssh', channel: 'sftp', path: '/x', direction: 'upload', bytes: -1 },
    { kind: 'ssh', channel: 'sftp', path: '', direction: 'upload' },
  ]) {
    assert.equal(sshModule.objectSchema.safeParse(o).success, false, JSON.stringify(o));
  }
});

test('the matcher: a tunnel rule grants the tunnel it names; a name that is no name is malformed', () => {
  const m = sshModule.matcher;
  const env = { target: undefined, profile: undefined };
  const rule = sshModule.ruleSchema.parse({ tunnel: 'plc-proto' });
  const tunnel = (name: string): SshObject => ({ kind: 'ssh', channel: 'tunnel', tunnel: name });
  assert.deepEqual(m.match(rule, action('tunnel', tunnel('plc-proto')), tunnel('plc-proto'), env, 'contain'), { fits: true });
  const other = m.match(rule, action('tunnel', tunnel('raw')), tunnel('raw'), env, 'contain');
  assert.equal(other.fits ? undefined : other.miss, 'object_not_granted');
  assert.equal(m.validate(action('tunnel', tunnel('raw')), tunnel('raw')), undefined);
  assert.notEqual(m.validate(action('tunnel', tunnel('../x')), tunnel('../x')), undefined);
  assert.equal(m.kind, sshModule.name);
});

/** `grants[2].rules[1].ssh.sftp.paths[0]` for rule 1 and path ['sftp', 'paths', 0]. */
function fieldOf(rule: number, path: readonly (string | number)[]): string {
  return `grants[2].rules[${rule}].ssh${path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('')}`;
}

test('ruleWarnings gives the codes and fields config check gives, rule by rule', () => {
  const rules = [
    '{ exec: [systemctl, status, "*"] }',
    '{ exec: [bash, "*"] }',
    '{ exec: ["*", "..."] }',
    '{ exec: [env, "-..."] }',
    '{ exec: [tar, "-..."] }',
    '{ exec: [journalctl, -u, bridge], pty: true }',
    '{ command_line: "more /etc/motd", pty: true }',
    '{ exec: [vi, /etc/motd] }',
    '{ effect: deny, exec: ["..."] }',
    '{ sftp: { paths: ["/*"], direction: upload } }',
    '{ sftp: { paths: ["/srv/ok/*", "/**/authorized_keys"], direction: both } }',
    '{ sftp: { paths: ["/*"], direction: download } }',
    '{ effect: deny, sftp: { paths: ["/**"], direction: upload } }',
    '{ sftp: { paths: ["/srv/upload/*"], direction: upload } }',
  ];
  const text = readFileSync(GOOD, 'utf8');
  assert.equal(text.split(ONE_RULE).length, 2);
  const result = checkConfig(GOOD, testProtocols, { text: text.replace(ONE_RULE, rules.map((r) => `      - ssh: ${r}`).join('\n')), clock: { now: () => Date.parse('2026-11-25T10:00:00Z') } });
  assert.ok(result.config, 'warnings do not stop the config');
  const fromCheck = result.issues.filter((i) => i.severity === 'warning').map((i) => [i.field, i.code, i.message]);
  const fromModule = rules.flatMap((r, i) => {
    const body = sshModule.ruleSchema.parse(parseYaml(r));
    return sshModule.ruleWarnings!(body).map((w) => [fieldOf(i, w.path), w.code, w.message]);
  });
  assert.deepEqual(fromModule, fromCheck);
  const codes = [...new Set(fromModule.map((w) => w[1]))].sort();
  assert.deepEqual(codes, Object.keys({ ...SSH_RULE_WARNINGS, ...SFTP_RULE_WARNINGS }).sort(), 'every code is given above, and every code given is listed');
  const reference = readFileSync(file('../../../docs/configuration.md'), 'utf8');
  for (const code of codes) assert.ok(reference.includes(`\`${code}\``), `${code} is not in docs/configuration.md`);
});

test('credential keys: OpenSSH key lines and certificate principals', () => {
  const c = sshModule.credentialSchemas!;
  assert.deepEqual(Object.keys(c).sort(), ['ssh_cert_principals', 'ssh_keys']);
  assert.equal(c.ssh_keys!.safeParse(['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB6n vendor']).success, true);
  assert.equal(c.ssh_keys!.safeParse(['']).success, false);
  assert.equal(c.ssh_cert_principals!.safeParse(['task-logs-7']).success, true);
  assert.equal(c.ssh_cert_principals!.safeParse('task-logs-7').success, false);
  assert.deepEqual(sshModule.events, { 'ssh.channel_refused': 'PS3006W' });
});

test('the descriptor loads no ssh2 and no session code; load() brings the front door', async () => {
  const moduleUrl = new URL('../../../src/adapters/ssh/module.ts', import.meta.url).href;
  // A child records every module the descriptor's import resolves (this process may have loaded more).
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.push(r.url); return r; } });
    await import(${JSON.stringify(moduleUrl)});
    console.log(JSON.stringify(seen));`;
  const seen = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as string[];
  assert.ok(seen.some((u) => u.endsWith('/adapters/ssh/policy.ts')), 'the hook saw the descriptor\'s imports');
  const runtime = seen.filter((u) => /\/ssh2\/|\/adapters\/ssh\/(adapter|session|sftp|upstream|recording|flow)\.ts$/.test(u));
  assert.deepEqual(runtime, []);
  const door = await sshModule.load();
  assert.equal(typeof door.start, 'function');
});

test('penstockctl reports a bad ssh dry run as a usage error (exit 3), before asking any daemon', async () => {
  const { main, EXIT } = await import('../../../src/cli/penstockctl.ts');
  const said: string[] = [];
  const io = { out: (s: string) => said.push(s), err: (s: string) => said.push(s), isTTY: false } as unknown as Parameters<typeof main>[1];
  for (const args of [['tunnel', '../x'], ['shell', 'now'], ['exec']]) {
    said.length = 0;
    const code = await main(['policy', 'check', 'vendor-a', 'gw-1', 'ssh', ...args], io, { PENSTOCK_SOCKET: '/nonexistent/admin.sock' });
    assert.equal(code, EXIT.usage, `${args.join(' ')}: ${said.join(' ')}`);
    assert.ok(!said.join(' ').includes('PS_INTERNAL'), said.join(' '));
  }
});
