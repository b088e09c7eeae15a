// Issue 2, end to end: the daemon as a process on a config file, driven by the real penstockctl over
// its admin socket, with mbpoll (libmodbus) as the vendor's tool and pymodbus as the PLC. Asserts on
// the PLC side what reached it, and on the journal what was recorded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { startNotifyListener, type NotifyListener } from '../systemd/notify-listener.ts';
import { Plc, freePort, mbpoll } from '../adapters/modbus/fixtures/harness.ts';
import { encodeMbap } from '../../src/adapters/modbus/mbap.ts';
import { encodeRequest } from '../../src/adapters/modbus/pdu.ts';
import { accepts, startDaemon, tempDir, until, type DaemonProcess } from './daemon-harness.ts';

const tmp = tempDir('penstock-e2e-daemon-');
let plc: Plc;
let daemon: DaemonProcess;
let notify: NotifyListener;
let modbusPort: number;

function config(extraGrants = '', extraTopLevel = ''): string {
  return `# end-to-end test site
appliance:
  id: e2e-gw
  site: Test site
  zone: dmz
  state_dir: ${tmp.dir}/state
  runtime_dir: ${tmp.dir}/run
approvals:
  timeout_seconds: 60
${extraTopLevel}
listeners:
  - id: mb
    protocol: modbus
    mode: tcp
    host: 127.0.0.1
    port: ${modbusPort}
    routes: [{ unit: 1, target: plc-1 }]
    bindings: [{ source: 127.0.0.1, principal: vendor-1 }]
principals:
  - { id: vendor-1, kind: vendor, owner: ACME, purpose: Maintenance, acting_for: work-order:WO-1 }
  - { id: agent-1, kind: agent, owner: ACME, purpose: Tuning, acting_for: vendor-1 }
targets:
  - { id: plc-1, protocol: modbus, zone: cell-a, host: 127.0.0.1, port: ${plcPort} }
grants:
  - id: g-maint
    principal: vendor-1
    targets: [plc-1]
    task: { ticket: WO-1 }
    rules:
      - modbus: { preset: readonly }
      - modbus: { access: write, tables: [holding_register], addresses: ["10-19"], max: 500 }
      - modbus: { access: write, tables: [holding_register], addresses: ["20-29"], effect: approve }
${extraGrants}`;
}
let plcPort: number;

before(async () => {
  plcPort = await freePort();
  modbusPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  notify = await startNotifyListener(tmp.dir);
  daemon = await startDaemon(tmp.dir, config(), { env: { NOTIFY_SOCKET: notify.path }, waitReady: false });
});

after(async () => {
  await daemon?.stop();
  await plc?.stop();
  await notify?.close();
  tmp.cleanup();
});

test('READY=1 arrives only once every listener is bound', async () => {
  await notify.next((m) => m.fields.READY === '1');
  // The moment READY=1 is out, the front door and the admin socket must accept connections.
  assert.ok(await accepts({ port: modbusPort }), 'modbus listener accepts at READY');
  assert.ok(await accepts(daemon.socket), 'admin socket accepts at READY');
  const firstStatus = notify.messages.findIndex((m) => m.fields.READY === '1');
  assert.ok(firstStatus >= 0);
});

test('a daemon whose listener cannot bind never signals READY and exits non-zero', async () => {
  const other = tempDir('penstock-e2e-busy-');
  try {
    const busyNotify = await startNotifyListener(other.dir);
    const yaml = config().replaceAll(tmp.dir, other.dir); // same Modbus port: already taken
    const d = await startDaemon(other.dir, yaml, { env: { NOTIFY_SOCKET: busyNotify.path }, waitReady: false });
    const code = await d.exited;
    assert.notEqual(code, 0);
    assert.equal(busyNotify.messages.filter((m) => m.fields.READY === '1').length, 0, 'no READY=1 from a daemon that failed to bind');
    await busyNotify.close();
  } finally {
    other.cleanup();
  }
});

test('status over the admin socket', async () => {
  const r = await daemon.ctl(['status']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /e2e-gw/);
  const s = await daemon.json<{ appliance: string; listeners: { id: string; port: number }[]; journal: { writable: boolean } }>(['status']);
  assert.equal(s.appliance, 'e2e-gw');
  assert.deepEqual(s.listeners.map((l) => [l.id, l.port]), [['mb', modbusPort]]);
  assert.equal(s.journal.writable, true);
});

test('policy dry run: allow, deny with the reason, approve, no grant', async () => {
  const check = (args: string[]) => daemon.ctl(['policy', 'check', ...args]);
  assert.equal((await check(['vendor-1', 'plc-1', 'modbus', 'write', 'holding_register', '12', '--values', '400'])).code, 0);
  const high = await decisionOf(['vendor-1', 'plc-1', 'modbus', 'write', 'holding_register', '12', '--values', '600']);
  assert.equal(high.code, 1);
  assert.equal(high.decision.reason, 'value_out_of_bounds');
  assert.equal((await check(['vendor-1', 'plc-1', 'modbus', 'write', 'holding_register', '22', '--values', '1'])).code, 2);
  const none = await check(['agent-1', 'plc-1', 'modbus', 'read', 'holding_register', '0']);
  assert.equal(none.code, 1);
  assert.match(none.stdout, /no_grant/);
  // A dry run changes nothing and reaches no PLC.
  await plc.logged();
  assert.equal(plc.writes().length, 0);
});

test('grants: issue from a file, list with issuer, then the grant decides', async () => {
  const now = Date.now();
  const file = join(tmp.dir, 'grant.yaml');
  writeFileSync(file, `id: g-agent-read
principal: agent-1
targets: [plc-1]
task: { ticket: WO-2, purpose: read-out }
window: { from: ${new Date(now - 60_000).toISOString()}, to: ${new Date(now + 3_600_000).toISOString()} }
rules:
  - modbus: { preset: readonly }
`);
  const issued = await daemon.ctl(['grants', 'issue', '--file', file]);
  assert.equal(issued.code, 0, issued.stderr);
  const list = await daemon.json<{ id: string; active: boolean; source: string; issued?: { by: { uid: number; verified: boolean } } }[]>(['grants', 'list']);
  const g = list.find((x) => x.id === 'g-agent-read');
  assert.ok(g?.active);
  assert.equal(g.source, 'runtime');
  assert.equal(g.issued?.by.uid, process.getuid!());
  assert.equal(g.issued?.by.verified, true);
  assert.equal((await daemon.ctl(['policy', 'check', 'agent-1', 'plc-1', 'modbus', 'read', 'holding_register', '0'])).code, 0);
  // A grant naming a target that does not exist is refused, and nothing is half-issued.
  writeFileSync(file, 'id: g-bad\nprincipal: agent-1\ntargets: [plc-9]\ntask: { ticket: X }\nrules: [{ modbus: { preset: readonly } }]\n');
  const bad = await daemon.ctl(['grants', 'issue', '--file', file]);
  assert.equal(bad.code, 5);
  assert.match(bad.stderr, /PS_GRANT_INVALID/);
  const after = await daemon.json<{ id: string }[]>(['grants', 'list']);
  assert.ok(!after.some((x) => x.id === 'g-bad'));
});

/** A policy dry run through penstockctl --json: its exit code and the decision. */
async function decisionOf(args: string[]): Promise<{ code: number; decision: { effect: string; reason: string } }> {
  const r = await daemon.ctl(['--json', 'policy', 'check', ...args]);
  assert.ok(r.code <= 2, r.stderr);
  return { code: r.code, decision: (JSON.parse(r.stdout) as { decision: { effect: string; reason: string } }).decision };
}

async function pendingApproval(): Promise<{ id: string; action: { object: { address: number } } }> {
  return until(async () => (await daemon.json<{ id: string; action: { object: { address: number } } }[]>(['approvals', 'list']))[0], 'a pending approval');
}

test('approvals: a write that needs a person waits, is approved and reaches the PLC', async () => {
  const write = mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-t', '4', '-r', '22', '-o', '10', '127.0.0.1', '77']);
  const p = await pendingApproval();
  assert.equal(p.action.object.address, 22);
  await plc.logged();
  assert.ok(!plc.writes().some((w) => w.address === 22), 'nothing reaches the PLC before approval');
  const ok = await daemon.ctl(['approvals', 'approve', p.id, '--note', 'checked with shift lead']);
  assert.equal(ok.code, 0, ok.stderr);
  const r = await write;
  assert.equal(r.code, 0, r.stderr);
  await until(() => plc.writes().find((w) => w.address === 22), 'the approved write at the PLC');
  assert.deepEqual(plc.writes().find((w) => w.address === 22)?.value ?? plc.writes().find((w) => w.address === 22)?.values?.[0], 77);
});

test('approvals: a refused request never reaches the PLC', async () => {
  const write = mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-t', '4', '-r', '23', '-o', '10', '127.0.0.1', '88']);
  const p = await pendingApproval();
  assert.equal(p.action.object.address, 23);
  const no = await daemon.ctl(['approvals', 'deny', p.id, '--note', 'not during production']);
  assert.equal(no.code, 0, no.stderr);
  const r = await write;
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Slave device or server failure|failure/i);
  await plc.logged();
  assert.ok(!plc.writes().some((w) => w.address === 23), 'a refused write never reached the PLC');
  const tail = await daemon.json<{ events: { event: { event: string; detail?: { by?: { uid: number } } } }[] }>(['journal', 'tail', '-n', '200']);
  const refused = tail.events.find((e) => e.event.event === 'approval.refused');
  assert.equal(refused?.event.detail?.by?.uid, process.getuid!());
});

test('reload: a good config applies, a bad one is refused with its line, and no state is lost', async () => {
  const extra = `  - id: g-extra
    principal: agent-1
    targets: [plc-1]
    task: { ticket: WO-3 }
    rules: [{ modbus: { access: write, tables: [holding_register], addresses: ["30-31"] } }]
`;
  writeFileSync(daemon.configFile, config(extra));
  const good = await daemon.ctl(['config', 'reload']);
  assert.equal(good.code, 0, good.stderr + good.stdout);
  let ids = (await daemon.json<{ id: string }[]>(['grants', 'list'])).map((g) => g.id);
  assert.ok(ids.includes('g-extra') && ids.includes('g-agent-read') && ids.includes('g-maint'));

  writeFileSync(daemon.configFile, config(extra, 'surprise_key: 1'));
  const bad = await daemon.ctl(['config', 'reload']);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /penstock\.yaml:\d+:\d+: .*surprise_key/);
  // Same refusal by SIGHUP: the daemon stays up on its running configuration.
  const refusedReloads = async () => (await daemon.json<{ events: { event: { event: string } }[] }>(['journal', 'tail', '-n', '200'])).events.filter((e) => e.event.event === 'config.reload_refused').length;
  const refusedBefore = await refusedReloads();
  daemon.child.kill('SIGHUP');
  await until(async () => (await refusedReloads()) > refusedBefore, 'the SIGHUP reload refused and journaled');
  assert.equal(daemon.child.exitCode, null);
  ids = (await daemon.json<{ id: string }[]>(['grants', 'list'])).map((g) => g.id);
  assert.ok(ids.includes('g-extra') && ids.includes('g-agent-read') && ids.includes('g-maint'), 'nothing lost by a refused reload');
  assert.equal((await daemon.ctl(['policy', 'check', 'agent-1', 'plc-1', 'modbus', 'write', 'holding_register', '30', '--values', '1'])).code, 0);
  writeFileSync(daemon.configFile, config(extra));
});

function rawWrite(socket: Socket, tid: number, address: number, value: number): Promise<Buffer> {
  return new Promise((resolve) => {
    socket.once('data', resolve);
    socket.write(encodeMbap(tid, 1, encodeRequest({ kind: 'write_single_register', fc: 6, address, value } as Parameters<typeof encodeRequest>[0])));
  });
}

test('revoking a grant ends the sessions that used it, at once', async () => {
  const socket = connect(modbusPort, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const closed = new Promise((r) => socket.once('close', r));
  const answer = await rawWrite(socket, 1, 12, 321);
  assert.equal(answer[7], 6, 'the write was allowed (no exception)');
  const sessions = await daemon.json<{ id: string; principal: string; grants: string[] }[]>(['sessions', 'list']);
  const mine = sessions.find((s) => s.principal === 'vendor-1' && s.grants.includes('g-maint'));
  assert.ok(mine, 'the live session is listed with the grant it used');
  const r = await daemon.ctl(['grants', 'revoke', 'g-maint', '--reason', 'work order closed']);
  assert.equal(r.code, 0, r.stderr);
  await closed;
  assert.equal((await daemon.json<unknown[]>(['sessions', 'list'])).length, 0);
  const check = await decisionOf(['vendor-1', 'plc-1', 'modbus', 'read', 'holding_register', '0']);
  assert.equal(check.code, 1);
  assert.equal(check.decision.reason, 'grant_not_active');
  const tail = await daemon.json<{ events: { event: { event: string; detail?: { grant?: string; sessions_ended?: string[] } } }[] }>(['journal', 'tail', '-n', '50']);
  const revoked = tail.events.find((e) => e.event.event === 'grant.revoked');
  assert.equal(revoked?.event.detail?.grant, 'g-maint');
  assert.deepEqual(revoked?.event.detail?.sessions_ended, [mine.id]);
});

test('the journal verifies and SIGTERM drains cleanly', async () => {
  const v = await daemon.ctl(['journal', 'verify']);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /journal OK/);
  assert.equal(await daemon.stop(), 0, daemon.stderr());
});
