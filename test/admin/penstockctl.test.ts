// The real penstockctl, spawned as a process, against a real admin server over an in-test context.
import { strict as assert } from 'node:assert';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { principal, runCtl, startHarness, type Harness } from './fixture.ts';

const uid = process.getuid!();

describe('penstockctl against a live admin socket', () => {
  let h: Harness;
  let work: string;
  before(async () => {
    h = await startHarness();
    work = mkdtempSync(join(tmpdir(), 'penstockctl-'));
  });
  after(async () => {
    await h.close();
    rmSync(work, { recursive: true, force: true });
  });
  const ctl = (args: string[], opts: Parameters<typeof runCtl>[1] = {}) => runCtl(['--socket', h.path, ...args], opts);

  it('status: readable by default, the raw result with --json', async () => {
    const human = await ctl(['status']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /appliance:\s+gw-test-1/);
    assert.match(human.stdout, /uptime:\s+1h 2m/);
    assert.match(human.stdout, /modbus-main\s+modbus\s+127\.0\.0\.1:15020/);
    const json = await ctl(['--json', 'status']);
    assert.equal(json.code, 0);
    assert.deepEqual(JSON.parse(json.stdout), { appliance: 'gw-test-1', version: '0.1.0', uptime_seconds: 3725, listeners: [{ id: 'modbus-main', protocol: 'modbus', host: '127.0.0.1', port: 15020 }], sessions: 0 });
  });

  it('the bin wrapper runs the pinned runtime and honours PENSTOCK_ADMIN_SOCKET', async () => {
    const r = await runCtl(['--json', 'status'], { viaBin: true, env: { PENSTOCK_ADMIN_SOCKET: h.path } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).appliance, 'gw-test-1');
  });

  it('sessions list and kill: the kill records the verified operator', async () => {
    let killedBy: unknown;
    const s = h.core.sessions.open({ principal, chain: ['vendor-ana', 'work-order:WO-4411'], target: 'inverter-1', listener: 'modbus-main', protocol: 'modbus', remote: '127.0.0.1:40001' }, (end) => (killedBy = end.by));
    const list = await ctl(['sessions', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`${s.id}\\s+vendor-ana \\(vendor\\)\\s+work-order:WO-4411\\s+inverter-1\\s+modbus-main/modbus`));
    const kill = await ctl(['sessions', 'kill', s.id, '--reason', 'end of shift']);
    assert.equal(kill.code, 0, kill.stderr);
    assert.match(kill.stdout, new RegExp(`killed session ${s.id}`));
    assert.equal(h.core.sessions.get(s.id), undefined);
    const end = h.calls.killed.find((k) => k.id === s.id)!.end;
    assert.equal(end.reason, 'killed');
    assert.equal(end.detail, 'end of shift');
    assert.deepEqual(killedBy, end.by);
    assert.equal(end.by!.uid, uid);
    assert.equal(end.by!.verified, true, 'the kernel confirmed who ran penstockctl');
  });

  it('grants issue from a YAML file, from stdin (JSON) and from quick flags; list shows state and issuer', async () => {
    const file = join(work, 'grant.yaml');
    writeFileSync(file, `# ticket WO-5000: firmware check
id: g-file
principal: vendor-ana
targets: [inverter-1]
task: { ticket: WO-5000, purpose: firmware check }
window: { from: "2026-11-25T08:00:00Z", to: "2026-11-25T10:00:00Z" }
rules:
  - modbus: { access: read, tables: [holding_register], addresses: ["40000-40100"] }
`);
    const fromFile = await ctl(['grants', 'issue', '--file', file]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.match(fromFile.stdout, /issued grant g-file/);
    const issued = h.calls.issued.find((i) => i.grant.id === 'g-file')!;
    assert.deepEqual(issued.grant.rules[0], { modbus: { effect: 'allow', access: 'read', tables: ['holding_register'], addresses: [{ from: 40000, to: 40100 }] } });
    assert.equal(issued.by.verified, true);
    assert.equal(issued.by.uid, uid);

    const stdinGrant = { id: 'g-stdin', principal: 'vendor-ana', targets: ['inverter-1'], task: { ticket: 'WO-5001' }, rules: [{ ssh: { exec: ['systemctl', 'status', '*'] } }] };
    const fromStdin = await ctl(['grants', 'issue', '--file', '-'], { stdin: JSON.stringify(stdinGrant) });
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.ok(h.calls.issued.some((i) => i.grant.id === 'g-stdin'));

    const quick = await ctl(['grants', 'issue', '--id', 'g-quick', '--principal', 'vendor-ana', '--target', 'inverter-1', '--target', 'inverter-2', '--ticket', 'WO-5002', '--from', '2026-11-25T08:30:00Z', '--until', '2026-11-25T11:00:00Z', '--rule', 'modbus:preset=readonly', '--rule', 'modbus:access=write,tables=holding_register,addresses=40010-40012,max=500', '--rule', 'ssh:exec=systemctl status *']);
    assert.equal(quick.code, 0, quick.stderr);
    const q = h.calls.issued.find((i) => i.grant.id === 'g-quick')!.grant;
    assert.deepEqual(q.targets, ['inverter-1', 'inverter-2']);
    assert.deepEqual(q.window, { from: '2026-11-25T08:30:00Z', to: '2026-11-25T11:00:00Z' });
    assert.deepEqual(q.rules, [
      { modbus: { effect: 'allow', preset: 'readonly' } },
      { modbus: { effect: 'allow', access: 'write', tables: ['holding_register'], addresses: [{ from: 40010, to: 40012 }], max: 500 } },
      { ssh: { effect: 'allow', exec: ['systemctl', 'status', '*'] } },
    ]);

    const list = await ctl(['grants', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /g-config\s+active\s+vendor-ana\s+inverter-1\s+WO-4411/);
    assert.match(list.stdout, /g-file\s+active[^\n]+issued by \S+\(uid \d+\)/);

    const bad = await ctl(['grants', 'issue', '--id', 'g-x', '--principal', 'vendor-ana']);
    assert.equal(bad.code, 3, 'missing quick flags are a usage error');
    assert.match(bad.stderr, /missing: .*--ticket/);
  });

  it('grants revoke; an unknown grant exits 5 with the daemon\'s code', async () => {
    const ok = await ctl(['grants', 'revoke', 'g-config', '--reason', 'work order closed']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(h.calls.revoked.at(-1)!.reason, 'work order closed');
    const missing = await ctl(['grants', 'revoke', 'g-nope', '--reason', 'x']);
    assert.equal(missing.code, 5);
    assert.match(missing.stderr, /\[PS_GRANT_UNKNOWN\]/);
    const noReason = await ctl(['grants', 'revoke', 'g-config']);
    assert.equal(noReason.code, 3);
  });

  it('approvals list, approve and deny', async () => {
    const list = await ctl(['approvals', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /ap-1\s+agent-7 > vendor-ana\s+inverter-1\s+write holding_register 40 = \[7\] \(unit 1, fc 6\)\s+g-config#0\s+s-x\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2} \([^)]+ ago\)/);
    const approve = await ctl(['approvals', 'approve', 'ap-1', '--note', 'checked with the shift lead']);
    assert.equal(approve.code, 0, approve.stderr);
    assert.deepEqual(h.calls.resolved.at(-1), { id: 'ap-1', by: h.calls.resolved.at(-1)!.by, note: 'checked with the shift lead', approved: true });
    assert.equal(h.calls.resolved.at(-1)!.by.verified, true);
    const deny = await ctl(['approvals', 'deny', 'ap-1']);
    assert.equal(deny.code, 5, 'already resolved');
    assert.match(deny.stderr, /PS_APPROVAL_UNKNOWN/);
    const empty = await ctl(['approvals', 'list']);
    assert.match(empty.stdout, /no pending approvals/);
  });

  it('policy check builds the action a front door would and exits 0 allow, 1 deny, 2 approve', async () => {
    const read = await ctl(['policy', 'check', 'vendor-ana', 'inverter-1', 'modbus', 'read', 'holding_register', '40000', '--quantity', '10']);
    assert.equal(read.code, 0, read.stderr);
    assert.match(read.stdout, /^ALLOW  vendor-ana → inverter-1: read holding_register 40000 x10 \(unit 1, fc 3\)/);
    assert.match(read.stdout, /rule:\s+g-config#0/);
    assert.deepEqual(h.calls.explained.at(-1), { principal: 'vendor-ana', action: { target: 'inverter-1', verb: 'read', object: { kind: 'modbus', unit: 1, functionCode: 3, table: 'holding_register', address: 40000, quantity: 10 } } });

    const write = await ctl(['policy', 'check', 'vendor-ana', 'inverter-1', 'modbus', 'write', 'holding_register', '40010', '--values', '1,2', '--unit', '3']);
    assert.equal(write.code, 2, write.stderr);
    assert.deepEqual(h.calls.explained.at(-1)!.action.object, { kind: 'modbus', unit: 3, functionCode: 16, table: 'holding_register', address: 40010, quantity: 2, values: [1, 2] });

    const coil = await ctl(['--json', 'policy', 'check', 'vendor-ana', 'inverter-1', 'modbus', 'write', 'coil', '7', '--values', '1']);
    assert.equal(coil.code, 1);
    assert.equal(JSON.parse(coil.stdout).decision.reason, 'function_not_granted');
    assert.equal((h.calls.explained.at(-1)!.action.object as unknown as { functionCode: number }).functionCode, 5);

    const ssh = await ctl(['policy', 'check', 'vendor-ana', 'plc-shell', 'ssh', 'exec', '--', 'ls', '-l', 'my file']);
    assert.equal(ssh.code, 1);
    assert.deepEqual(h.calls.explained.at(-1)!.action, { target: 'plc-shell', verb: 'exec', object: { kind: 'ssh', channel: 'exec', commandLine: "ls -l 'my file'", argv: ['ls', '-l', 'my file'], metacharacters: false } });
    const meta = await ctl(['policy', 'check', 'vendor-ana', 'plc-shell', 'ssh', 'exec', '--', 'cat /etc/passwd; reboot']);
    assert.equal(meta.code, 1);
    assert.equal((h.calls.explained.at(-1)!.action.object as unknown as { metacharacters: boolean }).metacharacters, true);

    const opcua = await ctl(['policy', 'check', 'vendor-ana', 'boiler', 'opcua', 'write', 'ns=1;s=Drum/Level/Setpoint', '--value', '-2.5']);
    assert.equal(opcua.code, 1);
    assert.deepEqual(h.calls.explained.at(-1)!.action.object, { kind: 'opcua', nodeId: 'ns=1;s=Drum/Level/Setpoint', value: -2.5 });

    const before = h.calls.explained.length;
    const usage = await ctl(['policy', 'check', 'vendor-ana', 'inverter-1', 'modbus', 'write', 'input_register', '5']);
    assert.equal(usage.code, 3);
    assert.match(usage.stderr, /read-only/);
    assert.equal(h.calls.explained.length, before, 'a bad command line never reaches the daemon');
  });

  it('config check runs locally without a daemon and exits 1 on errors', async () => {
    const good = join(work, 'good.yaml');
    const bad = join(work, 'bad.yaml');
    writeFileSync(good, '# a site\nappliance:\n  id: gw-1\n  site: plant\n  zone: ot\n');
    writeFileSync(bad, 'appliance:\n  id: gw-1\n  site: plant\n  zone: ot\n  colour: blue\n');
    const nowhere = ['--socket', join(work, 'no-daemon.sock')];
    const ok = await runCtl([...nowhere, 'config', 'check', good]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /configuration OK/);
    const err = await runCtl([...nowhere, 'config', 'check', 'bad.yaml'], { cwd: work });
    assert.equal(err.code, 1);
    assert.match(err.stdout, /bad\.yaml:5:\d+: appliance\.colour: unknown field/);
    assert.doesNotMatch(err.stdout, /configuration OK/);
  });

  it('config reload over the socket', async () => {
    const r = await ctl(['config', 'reload']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /configuration reloaded/);
    assert.equal(h.calls.reloads, 1);
  });

  it('a missing socket exits 4 with a hint', async () => {
    const r = await runCtl(['--socket', join(work, 'absent.sock'), 'status']);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /is penstock running\?.*\[PS_UPSTREAM_UNAVAILABLE\]/);
  });
});

// Another user, through the real CLI: the kernel names them whatever they claim, and a 0600 socket
// keeps them out. Needs root to switch users.
describe('penstockctl as another user', { skip: uid !== 0 || !existsSync('/usr/bin/setpriv') ? 'needs root and setpriv' : false }, () => {
  const NOBODY = 65534;

  it('is refused by a 0600 socket with a hint about the admin group', async () => {
    const h = await startHarness();
    try {
      chmodSync(h.dir, 0o755);
      const r = await runCtl(['--socket', h.path, 'status'], { asUid: NOBODY });
      assert.equal(r.code, 4);
      assert.match(r.stderr, /permission denied.*group penstock-admin.*\[PS_ADMIN_FORBIDDEN\]/);
    } finally {
      await h.close();
    }
  });

  it('is identified by the kernel as its own uid, verified', async () => {
    const h = await startHarness();
    try {
      chmodSync(h.dir, 0o755);
      chmodSync(h.path, 0o666);
      const r = await runCtl(['--socket', h.path, 'grants', 'revoke', 'g-config', '--reason', 'done'], { asUid: NOBODY });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(h.calls.revoked[0]!.by, { uid: NOBODY, user: 'nobody', verified: true });
    } finally {
      await h.close();
    }
  });
});
