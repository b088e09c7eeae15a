// The edges of SSH exec, with real OpenSSH clients against a real sshd target: a certificate's
// force-command binds SFTP too, an oversize command line is refused with a message and a journal
// entry, a client that vanishes right after its exec leaves an outcome and no temporary recording,
// and SendEnv/SetEnv requests are journaled.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { freePort, run, signCert, sshSkipReason, until, waitForPort, type JournalEvent } from './harness.ts';
import { startSite, type Site } from './fixture.ts';

const skip = sshSkipReason();
let site: Site;
// This run's own mark in the commands it leaves on the target (all runs share the penstocktest user):
// another test run on the machine must neither find nor kill them.
const RUN = String(process.pid);
/** A port on the target where nothing listens, open to raw tunnels of rtu-tun. */
let closedPort = 0;

before(async () => {
  if (skip) return;
  closedPort = await freePort();
  site = await startSite({
    // rtu-7's sshd and login, with a tunnel port.
    targets: (sshd) => `  - { id: rtu-tun, protocol: ssh, zone: plant, host: 127.0.0.1, port: ${sshd.port}, username: penstocktest, credential: "vault:rtu-7", host_keys: ["[127.0.0.1]:${sshd.port} ${sshd.hostKeyLine}"], tunnel_ports: [${closedPort}] }\n`,
    grants: `
  - id: g-tunnel
    principal: vendor-a
    targets: [rtu-tun]
    task: { ticket: WO-9005, purpose: raw tunnel }
    rules:
      - ssh: { tunnel: raw }
  - id: g-agent-files
    principal: agent-7
    targets: [rtu-7]
    task: { ticket: WO-9003, purpose: log collection with files }
    rules:
      - ssh: { exec: [cat, /etc/hostname] }
      - ssh: { sftp: { paths: ["/tmp/**", "/etc/hostname"], direction: both } }
  - id: g-agent-plc
    principal: agent-7
    targets: [plc-1]
    task: { ticket: WO-9006, purpose: a tunnel a person approves }
    rules:
      - modbus: { preset: readonly }
      - ssh: { effect: approve, tunnel: modbus }
`,
  });
});
after(async () => {
  if (skip) return;
  const left = await run('pgrep', ['-u', 'penstocktest', '-f', `^sleep 9\\.1[0-9]${RUN}$`]);
  for (const pid of left.stdout.split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
  await site?.stop();
});

/** A copy of the agent's key with a certificate signed by the site's CA (`-O` options as given); its path. */
function agentKey(name: string, options: string[]): string {
  const p = join(site.dir, 'keys', name);
  execFileSync('cp', [site.keys.agent, p]);
  execFileSync('cp', [`${site.keys.agent}.pub`, `${p}.pub`]);
  execFileSync('chmod', ['600', p]);
  signCert(site.keys.ca, p, `task-logs-7 ${name}`, ['task-logs-7'], '-5m:+10m', options);
  return p;
}

/** sftp/scp options for agentKey's key and certificate. */
function agentCert(name: string, options: string[]): string[] {
  const p = agentKey(name, options);
  return [...site.fileArgs(p), '-o', `CertificateFile=${p}-cert.pub`];
}

test('a certificate\'s force-command binds SFTP: no file is read or written on the target, where the same grant without it moves files', { skip }, async () => {
  const local = join(site.dir, 'payload.txt');
  writeFileSync(local, 'from the vendor\n');
  const batch = (remote: string, back: string) => {
    const f = join(site.dir, `batch-${Math.random().toString(16).slice(2)}`);
    writeFileSync(f, `put ${local} ${remote}\nget /etc/hostname ${back}\n`);
    return f;
  };
  // Control: a certificate without force-command may use the grant's sftp rule.
  const plainRemote = join(site.target, 'plain-put.txt');
  const plainBack = join(site.dir, 'plain-hostname');
  const ok = await run('sftp', ['-b', batch(plainRemote, plainBack), ...agentCert('agent_plain', []), 'rtu-7@127.0.0.1']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(existsSync(plainRemote), true);
  assert.equal(existsSync(plainBack), true);

  const forcedArgs = agentCert('agent_forced_cat', ['force-command=cat /etc/hostname']);
  const remote = join(site.target, 'forced-put.txt');
  const back = join(site.dir, 'forced-hostname');
  const r = await run('sftp', ['-b', batch(remote, back), ...forcedArgs, 'rtu-7@127.0.0.1']);
  assert.notEqual(r.code, 0, 'sftp worked under a forced command');
  assert.equal(existsSync(remote), false, 'a file was written on the target');
  assert.equal(existsSync(back), false, 'a file was read from the target');

  // exec and shell run the forced command instead of what was asked.
  const ssh = ['ssh', ...forcedArgs.map((a) => (a === '-P' ? '-p' : a)), 'rtu-7@127.0.0.1'];
  const hostname = execFileSync('cat', ['/etc/hostname']).toString();
  const e = await run(ssh[0]!, [...ssh.slice(1), '--', 'touch', join(site.target, 'forced-touch')]);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(e.stdout, hostname);
  assert.equal(existsSync(join(site.target, 'forced-touch')), false);

  const events = await site.gw.events();
  assert.ok(events.some((ev) => ev.event === 'ssh.channel_refused' && ev.principal === 'agent-7' && ev.detail?.kind === 'sftp'), 'the refused sftp is journaled');
});

test('an exec command line over ssh2\'s packet limit is refused with a message on stderr and a journal entry; the daemon stays up', { skip }, async () => {
  const long = 'x'.repeat(40_000);
  const r = await site.ssh('rtu-7', ['echo', long]);
  assert.equal(r.code, 126, r.stderr);
  assert.match(r.stderr, /packet limit/);
  assert.doesNotMatch(r.stdout, /xxxx/, 'the command ran');
  // The refusal is journaled lazily: the client can have its message first.
  await site.gw.eventsWhen((events) => events.some((e) => e.event === 'ssh.channel_refused' && e.detail?.kind === 'oversize_request'), 'the refusal journaled');
  // Below the limit a long line goes through.
  const fine = await site.ssh('rtu-7', ['echo', 'y'.repeat(30_000)]);
  assert.equal(fine.code, 0, fine.stderr);
  assert.equal(fine.stdout.length, 30_001);
});

test('clients that vanish right after their exec: every allowed command gets an outcome, and no temporary recording stays', { skip, timeout: 180_000 }, async () => {
  const delays = [0, 0, 5, 10, 20, 30, 45, 60, 80, 120];
  const commands: string[] = [];
  for (const [i, delay] of delays.entries()) {
    const command = `sleep 9.1${i}${RUN}`;
    commands.push(command);
    // ssh -v says "Sending command" as the exec request leaves: SIGKILL it `delay` ms later.
    const child = spawn('ssh', ['-v', ...site.sshArgs('rtu-7'), '--', command], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    const gone = new Promise<void>((resolve) => child.once('close', () => resolve()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/Sending command/.test(stderr)) setTimeout(() => child.kill('SIGKILL'), delay);
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(guard);
  }
  const recordings = join(site.gw.files.stateDir, 'recordings');
  let events: JournalEvent[] = [];
  await until(async () => {
    const list = JSON.parse((await site.gw.ctl(['--json', 'sessions', 'list'])).stdout) as unknown[];
    return list.length === 0;
  }, 'the sessions to close', 20_000);
  await until(async () => {
    events = await site.gw.events();
    return commands.every((c) => {
      const allowed = events.filter((e) => e.event === 'action.allowed' && e.action?.ssh?.command === c).length;
      const outcomes = events.filter((e) => e.event === 'action.outcome' && e.action?.ssh?.command === c).length;
      return allowed === outcomes;
    });
  }, 'an outcome for every allowed command', 15_000).catch(() => {});
  for (const c of commands) {
    const allowed = events.filter((e) => e.event === 'action.allowed' && e.action?.ssh?.command === c);
    const outcomes = events.filter((e) => e.event === 'action.outcome' && e.action?.ssh?.command === c);
    assert.equal(outcomes.length, allowed.length, `${c}: ${allowed.length} allowed, ${outcomes.length} outcomes`);
    for (const a of allowed) assert.ok(outcomes.some((o) => o.session === a.session), `${c}: the outcome is in the session of the decision`);
  }
  const left = existsSync(recordings) ? readdirSync(recordings).filter((f) => f.endsWith('.tmp')) : [];
  assert.deepEqual(left, [], 'temporary recordings outlived their sessions');
  await until(async () => (await run('pgrep', ['-u', 'penstocktest', '-f', `^sleep 9\\.1[0-9]${RUN}$`])).code !== 0, 'no command left on the target', 10_000);
});

test('SendEnv/SetEnv requests are refused and journaled, one event per channel with the names', { skip }, async () => {
  const r = await site.ssh('rtu-7', ['echo', 'env-check'], { extra: ['-o', 'SetEnv=PENSTOCK_FOO=bar PENSTOCK_BAZ=1'] });
  assert.equal(r.code, 0, r.stderr);
  const events = await site.gw.events();
  const refused = events.filter((e) => e.event === 'ssh.channel_refused' && e.detail?.kind === 'env');
  assert.equal(refused.length, 1, JSON.stringify(refused));
  assert.deepEqual(refused[0]!.detail?.names, ['PENSTOCK_FOO', 'PENSTOCK_BAZ']);
  assert.equal(refused[0]!.detail?.count, 2);
});

test('an sftp download cut off by revoking its grant still gets its per-file outcome', { skip, timeout: 120_000 }, async () => {
  const big = join(site.dir, 'revoke-download.bin');
  writeFileSync(big, Buffer.alloc(1_500_000, 7));
  const grant = {
    id: 'g-download',
    principal: 'vendor-a',
    targets: ['rtu-7'],
    task: { ticket: 'WO-9004', purpose: 'one download' },
    rules: [{ ssh: { sftp: { paths: [big], direction: 'download' } } }],
  };
  const file = join(site.dir, 'g-download.json');
  writeFileSync(file, JSON.stringify(grant));
  assert.equal((await site.gw.ctl(['grants', 'issue', '--file', file])).code, 0);
  const batch = join(site.dir, 'batch-download');
  writeFileSync(batch, `get ${big} ${join(site.dir, 'got.bin')}\n`);
  // -l 200: 200 Kbit/s, so the transfer is still running when the grant is revoked.
  const child = spawn('sftp', ['-l', '200', '-b', batch, ...site.fileArgs(), 'rtu-7@127.0.0.1'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const gone = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await until(async () => (await site.gw.events()).some((e) => e.event === 'action.allowed' && e.action?.verb === 'download' && e.action.ssh?.path === big), 'the download to start');
  assert.equal((await site.gw.ctl(['grants', 'revoke', 'g-download', '--reason', 'test'])).code, 0);
  await gone;
  clearTimeout(guard);
  const outcome = await until(async () => (await site.gw.events()).find((e) => e.event === 'action.outcome' && e.action?.verb === 'download' && e.action.ssh?.path === big), 'the download\'s outcome');
  assert.equal(outcome.outcome?.complete, false);
  assert.equal(outcome.outcome?.ok, false);
  assert.equal(typeof outcome.outcome?.bytes_sent, 'number');
});

test('sftp changes (mkdir, rename, remove) and a download the target refuses each get an outcome for their decision', { skip }, async () => {
  const dir = join(site.target, 'made-by-sftp');
  // Readable by root (the test), not by the target's login: the target refuses the open.
  const missing = join(site.target, 'root-only.txt');
  writeFileSync(missing, 'secret\n', { mode: 0o600 });
  const batch = join(site.dir, 'batch-changes');
  writeFileSync(batch, `mkdir ${dir}\nrename ${dir} ${dir}-2\nrmdir ${dir}-2\n-get ${missing} ${join(site.dir, 'never')}\n`);
  const r = await run('sftp', ['-b', batch, ...site.fileArgs(), 'rtu-7@127.0.0.1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(existsSync(`${dir}-2`), false);
  const events = await site.gw.events();
  for (const path of [dir, `${dir}-2`]) {
    const allowed = events.filter((e) => e.event === 'action.allowed' && e.action?.verb === 'upload' && e.action.ssh?.path === path).length;
    const outcomes = events.filter((e) => e.event === 'action.outcome' && e.action?.verb === 'upload' && e.action.ssh?.path === path && e.outcome?.ok === true).length;
    assert.ok(allowed > 0, `${path} was decided`);
    assert.equal(outcomes, allowed, `${path}: ${allowed} allowed, ${outcomes} outcomes`);
  }
  const allowedGet = events.filter((e) => e.event === 'action.allowed' && e.action?.verb === 'download' && e.action.ssh?.path === missing);
  const getOutcomes = events.filter((e) => e.event === 'action.outcome' && e.action?.verb === 'download' && e.action.ssh?.path === missing);
  assert.ok(allowedGet.length > 0, 'the download was decided');
  assert.equal(getOutcomes.length, allowedGet.length);
  assert.equal(getOutcomes[0]!.outcome?.ok, false);
});

test('an allowed raw tunnel whose port on the target refuses the connection still gets its outcome', { skip }, async () => {
  const local = await freePort();
  const fwd = spawn('ssh', [...site.sshArgs('vendor-a', undefined, ['-N', '-L', `${local}:rtu-tun:${closedPort}`])], { stdio: 'ignore' });
  const gone = new Promise<void>((resolve) => fwd.once('close', () => resolve()));
  try {
    await waitForPort(local);
    const sock = net.connect(local, '127.0.0.1');
    sock.on('error', () => {});
    await new Promise<void>((resolve) => sock.once('close', () => resolve()));
    // (waitForPort's probe is a connection through the tunnel as well.)
    const count = (events: JournalEvent[], kind: string) => events.filter((e) => e.event === kind && e.target === 'rtu-tun');
    const events = await until(async () => {
      const all = await site.gw.events();
      return count(all, 'action.allowed').length >= 2 ? all : undefined;
    }, 'both tunnel channels decided');
    await until(async () => count(await site.gw.events(), 'action.outcome').length >= 2, 'an outcome for each', 5_000).catch(() => {});
    const final = await site.gw.events();
    const outcomes = count(final, 'action.outcome');
    assert.equal(outcomes.length, count(events, 'action.allowed').length, 'an outcome for every allowed tunnel');
    for (const o of outcomes) assert.equal(o.outcome?.tunnel, 'failed');
  } finally {
    fwd.kill('SIGTERM');
    await gone;
  }
});

test('a tunnel whose rule says approve waits for plant staff: nothing reaches the PLC until it is approved', { skip }, async () => {
  const key = agentKey('agent_tunnel_approve', []);
  const local = await freePort();
  const fwd = spawn('ssh', [...site.sshArgs('agent-7', key, ['-o', `CertificateFile=${key}-cert.pub`, '-N', '-L', `${local}:plc-1:502`])], { stdio: 'ignore' });
  const gone = new Promise<void>((resolve) => fwd.once('close', () => resolve()));
  try {
    // The first connection that gets through is the client's own (a probe would be a tunnel to approve too).
    const sock = await until(
      () => new Promise<net.Socket | undefined>((resolve) => {
        const s = net.connect(local, '127.0.0.1');
        s.once('connect', () => resolve(s));
        s.once('error', () => resolve(undefined));
      }),
      'the local end of the tunnel',
    );
    let answer = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => (answer = Buffer.concat([answer, d])));
    await site.plc.logged(); // earlier requests: their log lines can come after the answers
    const requestsBefore = site.plc.requests.length;
    // Modbus/TCP: transaction 7, unit 1, read holding registers 10..12.
    sock.write(Buffer.from([0, 7, 0, 0, 0, 6, 1, 3, 0, 10, 0, 3]));
    const id = await until(async () => {
      const list = JSON.parse((await site.gw.ctl(['--json', 'approvals', 'list'])).stdout) as { id: string; principal?: string }[];
      return list[0]?.id;
    }, 'the approval request');
    assert.equal(answer.length, 0, 'an answer before approval');
    await site.plc.logged();
    assert.equal(site.plc.requests.length, requestsBefore, 'the PLC saw a request before approval');
    assert.equal((await site.gw.ctl(['approvals', 'approve', id])).code, 0);
    await until(() => answer.length >= 15, 'the PLC\'s answer through the approved tunnel');
    assert.equal(answer.readUInt16BE(0), 7);
    assert.deepEqual([answer.readUInt16BE(9), answer.readUInt16BE(11), answer.readUInt16BE(13)], [110, 111, 112]);
    sock.destroy();
    const events = await site.gw.events();
    assert.ok(events.some((e) => e.event === 'approval.granted' && e.detail?.approval === id));
    assert.ok(events.some((e) => e.event === 'action.allowed' && e.principal === 'agent-7' && e.target === 'plc-1' && e.action?.ssh?.tunnel === 'modbus'));
  } finally {
    fwd.kill('SIGTERM');
    await gone;
  }
});
