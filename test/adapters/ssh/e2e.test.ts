// The SSH front door end to end, with real peers only: OpenSSH's ssh, sftp and scp against the real
// daemon, a real sshd as the target (assertions on the target side: what ran, what files exist),
// penstockctl over the real admin socket, mbpoll through an `ssh -L` tunnel to a pymodbus PLC.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mbpoll, mbpollValues } from '../modbus/fixtures/harness.ts';
import { freePort, run, signCert, sshSkipReason, testUserIds, until, waitForPort, type JournalEvent } from './harness.ts';
import { startSite, type Site } from './fixture.ts';

const skip = sshSkipReason();
let site: Site;

before(async () => {
  // agent-7 may speak Modbus to plc-1 but holds no ssh tunnel rule for it.
  if (!skip) site = await startSite({ grants: '  - { id: g-agent-plc, principal: agent-7, targets: [plc-1], task: { ticket: WO-4413 }, rules: [{ modbus: { preset: readonly } }] }\n' });
});
after(async () => {
  await site?.stop();
});

const outcomes = (events: JournalEvent[], pred: (e: JournalEvent) => boolean) => events.filter((e) => e.event === 'action.outcome' && pred(e));

/** A long-running ssh client whose stderr the test can watch. */
function spawnSsh(args: string[]): { child: ChildProcess; stderr: () => string; stdout: () => string; done: Promise<number> } {
  const child = spawn('ssh', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const done = new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? -1)));
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
  void done.then(() => clearTimeout(kill));
  return { child, stderr: () => stderr, stdout: () => stdout, done };
}

test('an allowed command runs on the target, as the target user, with stdout, stderr and exit status passed through', { skip }, async () => {
  const r = await site.ssh('rtu-7', ['echo', 'hello', 'from', 'rtu']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'hello from rtu\n');

  const marker = join(site.target, 'allowed-marker');
  const t = await site.ssh('rtu-7', ['touch', marker]);
  assert.equal(t.code, 0, t.stderr);
  assert.equal(statSync(marker).uid, testUserIds().uid, 'the file was made by the target login, not by Penstock');

  const ls = await site.ssh('rtu-7', ['ls', '/nonexistent-penstock-path']);
  assert.equal(ls.code, 2);
  assert.match(ls.stderr, /No such file or directory/);

  const events = await site.gw.eventsWhen((ev) => outcomes(ev, (e) => e.action?.ssh?.command === 'ls /nonexistent-penstock-path').length > 0, 'the outcome of ls');
  const allowed = events.filter((e) => e.event === 'action.allowed' && e.action?.ssh?.command === `touch ${marker}`);
  assert.equal(allowed.length, 1);
  assert.equal(allowed[0]!.decision?.reason, 'rule_allows');
  const out = outcomes(events, (e) => e.action?.ssh?.command === 'ls /nonexistent-penstock-path');
  assert.equal(out[0]?.outcome?.exit_code, 2);
});

test('a denied command never reaches the target', { skip }, async () => {
  const marker = join(site.target, 'denied-marker');
  const r = await site.ssh('rtu-7', ['mkdir', marker]);
  assert.equal(r.code, 126);
  assert.match(r.stderr, /denied by policy \[object_not_granted|function_not_granted/);
  const rm = await site.ssh('rtu-7', ['rm', '-rf', site.target]);
  assert.equal(rm.code, 126);
  assert.match(rm.stderr, /\[rule_denies\]/);
  assert.equal(existsSync(marker), false);
  assert.equal(existsSync(site.target), true);
  const events = await site.gw.events();
  assert.ok(events.some((e) => e.event === 'action.denied' && e.action?.ssh?.command === `mkdir ${marker}`));
});

test('shell metacharacter injection is refused and nothing runs', { skip }, async () => {
  const marker = join(site.target, 'injected');
  const attempts = [
    `echo hi; touch ${marker}`,
    `echo hi && touch ${marker}`,
    `echo hi | touch ${marker}`,
    `echo $(touch ${marker})`,
    `echo \`touch ${marker}\``,
    `echo hi > ${marker}`,
    `echo hi\ntouch ${marker}`,
    `echo "$(touch ${marker})"`,
  ];
  for (const line of attempts) {
    const r = await site.ssh('rtu-7', [line]);
    assert.equal(r.code, 126, `${JSON.stringify(line)} was not refused: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /\[metacharacters\]/, line);
  }
  assert.equal(existsSync(marker), false, 'an injected command reached the target');
  // Quoting is honoured: the metacharacters inside quotes are plain words for echo.
  const quoted = await site.ssh('rtu-7', [`echo 'a; b' "c | d"`]);
  assert.equal(quoted.code, 0, quoted.stderr);
  assert.equal(quoted.stdout, 'a; b c | d\n');
});

test('approve: the command waits for plant staff, runs once approved with penstockctl, and the approver is journaled', { skip }, async () => {
  const marker = join(site.target, 'approved-marker');
  const ssh = spawnSsh([...site.sshArgs('rtu-7'), '--', 'touch', '-a', marker]);
  await until(() => /request (ap-[0-9a-f]+)/.test(ssh.stderr()), 'the approval notice');
  const id = /request (ap-[0-9a-f]+)/.exec(ssh.stderr())![1]!;
  assert.equal(existsSync(marker), false, 'ran before approval');
  const list = await site.gw.ctl(['--json', 'approvals', 'list']);
  assert.ok((JSON.parse(list.stdout) as { id: string }[]).some((a) => a.id === id));
  const ok = await site.gw.ctl(['approvals', 'approve', id, '--note', 'checked with the vendor']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(await ssh.done, 0, ssh.stderr());
  assert.equal(existsSync(marker), true);
  const events = await site.gw.events();
  const granted = events.find((e) => e.event === 'approval.granted' && e.detail?.approval === id);
  assert.ok(granted, 'approval.granted journaled');
  assert.equal(typeof (granted.detail?.by as { uid?: unknown })?.uid, 'number');
});

test('approve: a refusal by staff keeps the command off the target', { skip }, async () => {
  const marker = join(site.target, 'refused-marker');
  const ssh = spawnSsh([...site.sshArgs('rtu-7'), '--', 'touch', '-a', marker]);
  await until(() => /request (ap-[0-9a-f]+)/.test(ssh.stderr()), 'the approval notice');
  const id = /request (ap-[0-9a-f]+)/.exec(ssh.stderr())![1]!;
  assert.equal((await site.gw.ctl(['approvals', 'deny', id])).code, 0);
  assert.equal(await ssh.done, 126);
  assert.match(ssh.stderr(), /not approved \[approval_refused\]/);
  assert.equal(existsSync(marker), false);
});

test('while an approval is pending, nothing else starts on that connection (multiplexed channels and forwards are refused)', { skip }, async () => {
  const ctl = join(site.dir, 'mux.sock');
  const master = spawnSsh([...site.sshArgs('rtu-7', undefined, ['-M', '-S', ctl, '-N'])]);
  await until(() => existsSync(ctl), 'the control socket');
  const marker = join(site.target, 'pending-marker');
  const waiting = spawnSsh([...site.sshArgs('rtu-7', undefined, ['-S', ctl]), '--', 'touch', '-a', marker]);
  await until(() => /request (ap-[0-9a-f]+)/.test(waiting.stderr()), 'the approval notice');
  const id = /request (ap-[0-9a-f]+)/.exec(waiting.stderr())![1]!;
  const sneaky = await run('ssh', [...site.sshArgs('rtu-7', undefined, ['-S', ctl, '-o', 'ControlMaster=no']), '--', 'echo', 'sneaked']);
  // The master connection refuses the new session; (ssh then falls back to a connection of its own,
  // which is a new session with its own decisions — not this one.)
  assert.match(sneaky.stderr, /Session open refused by peer/);
  const port = await freePort();
  const fwd = await run('ssh', [...site.sshArgs('rtu-7', undefined, ['-S', ctl, '-O', 'forward', '-L', `${port}:plc-1:502`])]);
  // The mux master accepts the forward locally, but a channel through it is refused while pending.
  if (fwd.code === 0) {
    const r = await mbpoll(['-m', 'tcp', '-p', String(port), '-t', '4', '-r', '0', '-c', '1', '127.0.0.1']);
    assert.notEqual(r.code, 0, 'a tunnel carried traffic during a pending approval');
  }
  await site.gw.ctl(['approvals', 'deny', id]);
  assert.equal(await waiting.done, 126);
  master.child.kill('SIGTERM');
  await master.done;
  const events = await site.gw.events();
  assert.ok(events.some((e) => e.event === 'ssh.channel_refused' && e.detail?.reason === 'approval_pending'));
});

test('ssh with no target lists the targets and grants the principal holds now', { skip }, async () => {
  const r = await site.ssh('vendor-a', undefined);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /you are vendor-a/);
  assert.match(r.stdout, /rtu-7 +ssh +grant g-rtu \(ticket WO-4411\)/);
  assert.match(r.stdout, /plc-1 +modbus +grant g-plc/);
  assert.match(r.stdout, /approve ssh: exec touch -a \*/);
});

test('an interactive shell with a pty is recorded (input and output) and replayable with penstockctl', { skip }, async () => {
  const r = await site.ssh('rtu-7', undefined, { extra: ['-tt'], input: 'echo shell-$((40+2))\nexit 7\n' });
  assert.equal(r.code, 7, r.stderr);
  assert.match(r.stdout, /shell-42/);
  const events = await site.gw.eventsWhen((ev) => outcomes(ev, (e) => e.action?.verb === 'shell').length > 0, 'the shell\'s outcome');
  const shell = outcomes(events, (e) => e.action?.verb === 'shell').at(-1);
  const rec = shell?.outcome?.recording as { sha256: string; path: string };
  assert.ok(rec, 'the shell outcome names its recording');
  const text = readFileSync(rec.path);
  assert.equal(createHash('sha256').update(text).digest('hex'), rec.sha256, 'the journal vouches for the file');
  const lines = text.toString().trim().split('\n');
  assert.equal(JSON.parse(lines[0]!).version, 2);
  const ev = lines.slice(1).map((l) => JSON.parse(l) as [number, string, string]);
  assert.ok(ev.some(([, k, d]) => k === 'i' && d.includes('echo')), 'input recorded');
  assert.ok(ev.some(([, k, d]) => k === 'o' && d.includes('shell-42')), 'output recorded');

  const replay = await site.gw.ctl(['sessions', 'replay', rec.sha256, '--speed', '1000']);
  assert.equal(replay.code, 0, replay.stderr);
  assert.match(replay.stdout, /shell-42/);
});

test('every exec is recorded, and penstockctl sessions replay ID plays a session', { skip }, async () => {
  const r = await site.ssh('rtu-7', ['echo', 'recorded-line']);
  assert.equal(r.code, 0);
  const events = await site.gw.eventsWhen((ev) => outcomes(ev, (e) => e.action?.ssh?.command === 'echo recorded-line').length > 0, 'the outcome of echo');
  const out = outcomes(events, (e) => e.action?.ssh?.command === 'echo recorded-line').at(-1)!;
  const rec = out.outcome?.recording as { sha256: string; path: string };
  assert.equal(createHash('sha256').update(readFileSync(rec.path)).digest('hex'), rec.sha256);
  assert.ok(rec.path.endsWith(`recordings/${rec.sha256}.cast`));
  const replay = await site.gw.ctl(['sessions', 'replay', out.session!, '--speed', '100']);
  assert.equal(replay.code, 0, replay.stderr);
  assert.equal(replay.stdout, 'recorded-line\n');
});

test('sftp upload and download go through, each file journaled with its SHA-256 and size', { skip }, async () => {
  const local = join(site.dir, 'upload.bin');
  const data = randomBytes(300_000);
  writeFileSync(local, data);
  const sha = createHash('sha256').update(data).digest('hex');
  const remote = join(site.target, 'firmware.bin');
  const back = join(site.dir, 'download.bin');
  const batch = join(site.dir, 'batch');
  writeFileSync(batch, `put ${local} ${remote}\nget ${remote} ${back}\nls ${site.target}\n`);
  const r = await run('sftp', ['-b', batch, ...site.fileArgs(), 'rtu-7@127.0.0.1']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readFileSync(remote), data, 'the target holds the uploaded bytes');
  assert.equal(statSync(remote).uid, testUserIds().uid);
  assert.deepEqual(readFileSync(back), data);
  const events = await site.gw.eventsWhen(
    (ev) => ['upload', 'download'].every((verb) => outcomes(ev, (e) => e.action?.verb === verb && e.outcome?.path === remote).length > 0),
    'the upload\'s and the download\'s outcomes',
  );
  const up = outcomes(events, (e) => e.action?.verb === 'upload' && e.outcome?.path === remote).at(-1);
  const down = outcomes(events, (e) => e.action?.verb === 'download' && e.outcome?.path === remote).at(-1);
  assert.equal(up?.outcome?.sha256, sha);
  assert.equal(up?.outcome?.size, data.length);
  assert.equal(down?.outcome?.sha256, sha);
  assert.equal(down?.outcome?.complete, true);
  // The upload was decided with its real size, and journaled, before the file went to the target.
  const allowedUpload = events.find((e) => e.event === 'action.allowed' && e.action?.verb === 'upload' && e.action.ssh?.path === remote && e.action.ssh?.bytes === data.length);
  assert.ok(allowedUpload);
});

test('sftp outside the granted paths and over the size limit is refused; nothing lands on the target', { skip }, async () => {
  const local = join(site.dir, 'big.bin');
  writeFileSync(local, randomBytes(2_100_000));
  const batch = join(site.dir, 'batch2');
  const outside = '/tmp/penstock-outside-grant.bin';
  const tooBig = join(site.target, 'too-big.bin');
  writeFileSync(batch, `-put ${local} ${outside}\n-put ${local} ${tooBig}\n-get /etc/shadow ${join(site.dir, 'shadow')}\n`);
  const r = await run('sftp', ['-b', batch, ...site.fileArgs(), 'rtu-7@127.0.0.1']);
  assert.match(r.stderr, /Permission denied/);
  assert.equal(existsSync(outside), false);
  assert.equal(existsSync(tooBig), false);
  assert.equal(existsSync(join(site.dir, 'shadow')), false);
});

test('scp uses SFTP and is checked per file; legacy scp -O is refused', { skip }, async () => {
  const local = join(site.dir, 'scp.txt');
  writeFileSync(local, 'via scp\n');
  const remote = join(site.target, 'scp.txt');
  const common = site.fileArgs();
  const ok = await run('scp', [...common, local, `rtu-7@127.0.0.1:${remote}`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(readFileSync(remote, 'utf8'), 'via scp\n');
  const legacy = join(site.target, 'legacy.txt');
  const old = await run('scp', ['-O', ...common, local, `rtu-7@127.0.0.1:${legacy}`]);
  assert.notEqual(old.code, 0);
  assert.equal(existsSync(legacy), false);
});

test('ssh -L to a Modbus target carries mbpoll through the Modbus broker: reads allowed, writes refused per rule', { skip }, async () => {
  const port = await freePort();
  const tunnel = spawnSsh([...site.sshArgs('vendor-a', undefined, ['-N', '-o', 'ExitOnForwardFailure=yes', '-L', `${port}:plc-1:502`])]);
  try {
    await waitForPort(port);
    const read = await mbpoll(['-m', 'tcp', '-p', String(port), '-a', '1', '-t', '4', '-r', '10', '-c', '3', '127.0.0.1']);
    assert.equal(read.code, 0, read.stdout + read.stderr);
    assert.deepEqual([...mbpollValues(read.stdout).values()], [110, 111, 112]);
    const before = site.plc.writes().length;
    const write = await mbpoll(['-m', 'tcp', '-p', String(port), '-a', '1', '-t', '4', '-r', '10', '127.0.0.1', '999']);
    assert.notEqual(write.code, 0, 'the write must be refused');
    assert.match(write.stdout + write.stderr, /Illegal function|exception/i);
    await site.plc.logged(); // a stray write would be in the PLC's log by now
    assert.equal(site.plc.writes().length, before, 'the write never reached the PLC');
    const events = await site.gw.events();
    assert.ok(events.some((e) => e.event === 'action.denied' && e.action?.modbus !== undefined && e.target === 'plc-1'));
    assert.ok(outcomes(events, (e) => e.action?.ssh?.tunnel === 'modbus' && e.outcome?.tunnel === 'opened').length > 0);
  } finally {
    tunnel.child.kill('SIGTERM');
    await tunnel.done;
  }
});

test('agent forwarding, X11, remote forwarding, other subsystems and tunnels to non-targets are refused', { skip }, async () => {
  const remoteFwd = await run('ssh', [...site.sshArgs('vendor-a', undefined, ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', '0:127.0.0.1:22'])], { timeoutMs: 15_000 });
  assert.notEqual(remoteFwd.code, 0);
  assert.match(remoteFwd.stderr, /forwarding failed/i);
  const sub = await run('ssh', [...site.sshArgs('rtu-7', undefined, ['-s']), 'netconf'], { timeoutMs: 15_000 });
  assert.notEqual(sub.code, 0);
  const port = await freePort();
  const nonTarget = spawnSsh([...site.sshArgs('vendor-a', undefined, ['-N', '-L', `${port}:127.0.0.1:${site.sshd.port}`])]);
  await waitForPort(port);
  const probe = await run('ssh', ['-F', '/dev/null', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-p', String(port), 'penstocktest@127.0.0.1', 'true'], { timeoutMs: 15_000 });
  assert.notEqual(probe.code, 0, 'a tunnel to an arbitrary address must not open');
  nonTarget.child.kill('SIGTERM');
  await nonTarget.done;
  const withAgent = await site.ssh('rtu-7', ['echo', 'ok'], { extra: ['-A', '-o', 'ForwardX11=yes'] });
  assert.equal(withAgent.code, 0);
  const events = await site.gw.events();
  const kinds = new Set(events.filter((e) => e.event === 'ssh.channel_refused').map((e) => e.detail?.kind));
  for (const k of ['global_request', 'subsystem', 'tunnel']) assert.ok(kinds.has(k), `${k} refusal journaled`);
});

test('a target presenting an unpinned host key is refused before any credential is sent', { skip }, async () => {
  const r = await site.ssh('rtu-bogus', ['echo', 'hi']);
  assert.equal(r.code, 255);
  assert.match(r.stderr, /host key that is not pinned/);
  assert.doesNotMatch(r.stdout, /hi/);
});

test('certificates: a valid one logs the agent in; expired, not-yet-valid or naming another principal are refused and journaled', { skip }, async () => {
  const { execFileSync } = await import('node:child_process');
  const mk = (name: string) => {
    const p = join(site.dir, 'keys', name);
    execFileSync('cp', [site.keys.agent, p]);
    execFileSync('cp', [`${site.keys.agent}.pub`, `${p}.pub`]);
    execFileSync('chmod', ['600', p]);
    return p;
  };
  const withCert = (key: string) => ['-o', `CertificateFile=${key}-cert.pub`];
  const good = mk('agent_good');
  signCert(site.keys.ca, good, 'task-logs-7 run 1', ['task-logs-7'], '-5m:+10m');
  const ok = await site.ssh('rtu-7', ['uname', '-s'], { key: good, extra: withCert(good) });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'Linux\n');
  const denied = await site.ssh('rtu-7', ['cat', '/etc/hostname'], { key: good, extra: withCert(good) });
  assert.equal(denied.code, 126, 'the agent has only its own grant');

  const expired = mk('agent_expired');
  signCert(site.keys.ca, expired, 'expired one', ['task-logs-7'], '20200101:20200102');
  const e = await site.ssh('rtu-7', ['uname'], { key: expired, extra: withCert(expired) });
  assert.equal(e.code, 255);
  assert.match(e.stderr, /Permission denied/);

  const other = mk('agent_other');
  signCert(site.keys.ca, other, 'names vendor-b', ['other-b'], '-5m:+10m');
  const o = await site.ssh('agent-7+rtu-7', ['uname'], { key: other, extra: withCert(other) });
  assert.equal(o.code, 255);

  const forced = mk('agent_forced');
  signCert(site.keys.ca, forced, 'forced', ['task-logs-7'], '-5m:+10m', ['force-command=echo forced-by-cert']);
  const f = await site.ssh('rtu-7', ['uname'], { key: forced, extra: withCert(forced) });
  assert.equal(f.code, 0, f.stderr);
  assert.equal(f.stdout, 'forced-by-cert\n');

  const events = await site.gw.events();
  const failed = events.filter((ev) => ev.event === 'auth.failed').flatMap((ev) => (ev.detail?.attempts as { reason: string }[] | undefined) ?? []).map((a) => a.reason);
  assert.ok(failed.includes('certificate_expired'), failed.join(','));
  assert.ok(failed.includes('certificate_wrong_principal'), failed.join(','));
  const opened = events.find((ev) => ev.event === 'session.opened' && ev.principal === 'agent-7');
  assert.equal((opened?.detail?.attributes as Record<string, string>)?.cert_key_id, 'task-logs-7 run 1');
});

test('ssh -L to a Modbus target is itself decided: Modbus rules without an ssh tunnel rule get the tunnel refused, and the PLC sees nothing', { skip }, async () => {
  const { execFileSync } = await import('node:child_process');
  const key = join(site.dir, 'keys', 'agent_tunnel');
  execFileSync('cp', [site.keys.agent, key]);
  execFileSync('cp', [`${site.keys.agent}.pub`, `${key}.pub`]);
  execFileSync('chmod', ['600', key]);
  signCert(site.keys.ca, key, 'task-logs-7 tunnel', ['task-logs-7'], '-5m:+10m');
  await site.plc.logged(); // earlier tests' requests: their log lines can come after the answers
  const requestsBefore = site.plc.requests.length;
  const port = await freePort();
  const tunnel = spawnSsh([...site.sshArgs('agent-7', key, ['-o', `CertificateFile=${key}-cert.pub`, '-N', '-L', `${port}:plc-1:502`])]);
  try {
    await waitForPort(port); // the client's end listens; the channel through it is what is refused
    const read = await mbpoll(['-m', 'tcp', '-p', String(port), '-a', '1', '-t', '4', '-r', '10', '-c', '3', '127.0.0.1']);
    assert.notEqual(read.code, 0, 'mbpoll read through a refused tunnel');
    const events = await until(async () => {
      const all = await site.gw.events();
      return all.some((e) => e.event === 'action.denied' && e.principal === 'agent-7' && e.target === 'plc-1' && e.action?.ssh?.tunnel === 'modbus') ? all : undefined;
    }, 'the refused tunnel journaled as action.denied');
    assert.equal(events.filter((e) => e.event === 'action.allowed' && e.principal === 'agent-7' && e.action?.ssh?.tunnel !== undefined).length, 0);
    assert.equal(outcomes(events, (e) => e.principal === 'agent-7' && e.action?.ssh?.tunnel !== undefined).length, 0, 'no tunnel opened');
    assert.equal(events.filter((e) => e.principal === 'agent-7' && e.action?.modbus !== undefined).length, 0, 'no Modbus request was decided');
    await site.plc.logged();
    assert.equal(site.plc.requests.length, requestsBefore, 'the PLC saw no request');
  } finally {
    tunnel.child.kill('SIGTERM');
    await tunnel.done;
  }
});

test('an unknown key is refused and journaled', { skip }, async () => {
  const r = await site.ssh('rtu-7', ['echo', 'x'], { key: site.keys.stranger });
  assert.equal(r.code, 255);
  const events = await site.gw.events();
  assert.ok(events.some((e) => e.event === 'auth.failed' && (e.detail?.attempts as { reason: string }[]).some((a) => a.reason === 'unknown_key')));
});

test('penstockctl sessions kill ends the SSH session and the command on the target at once, with a message', { skip }, async () => {
  // A duration no other run on this machine uses: pgrep must find this command, not another checkout's.
  const nap = `47.${process.pid}`;
  const ssh = spawnSsh([...site.sshArgs('rtu-7'), '--', 'sleep', nap]);
  let id = '';
  await until(async () => {
    const r = await site.gw.ctl(['--json', 'sessions', 'list']);
    const s = (JSON.parse(r.stdout) as { id: string; target?: string; counters: { allowed: number } }[]).find((x) => x.target === 'rtu-7' && x.counters.allowed > 0);
    id = s?.id ?? '';
    return id !== '';
  }, 'the session');
  await until(async () => (await run('pgrep', ['-u', 'penstocktest', '-f', `sleep ${nap}`])).code === 0, 'sleep on the target');
  const k = await site.gw.ctl(['sessions', 'kill', id, '--reason', 'test']);
  assert.equal(k.code, 0, k.stderr);
  const code = await ssh.done;
  assert.notEqual(code, 0);
  assert.match(ssh.stderr(), /session ended by the gateway \(killed: test\)/);
  await until(async () => (await run('pgrep', ['-u', 'penstocktest', '-f', `sleep ${nap}`])).code !== 0, 'the command on the target to end');
});

test('a grant whose window ends ends the live SSH session it carries, and the command on the target, with a message', { skip, timeout: 60_000 }, async () => {
  // A grant issued at run time whose window closes a few seconds from now; its one rule is the only
  // one that allows this command, so the session runs on this grant.
  const now = Date.now();
  const grant = {
    id: 'g-expiring',
    principal: 'vendor-a',
    targets: ['rtu-7'],
    task: { ticket: 'WO-4413', purpose: 'short job' },
    window: { from: new Date(now - 60_000).toISOString(), to: new Date(now + 6_000).toISOString() },
    rules: [{ ssh: { exec: ['tail', '-f', '/etc/hostname'] } }],
  };
  const file = join(site.dir, 'expiring-grant.json');
  writeFileSync(file, JSON.stringify(grant));
  const issued = await site.gw.ctl(['grants', 'issue', '--file', file]);
  assert.equal(issued.code, 0, issued.stderr);
  const ssh = spawnSsh([...site.sshArgs('rtu-7'), '--', 'tail', '-f', '/etc/hostname']);
  await until(async () => (await run('pgrep', ['-u', 'penstocktest', '-f', 'tail -f /etc/hostname'])).code === 0, 'tail on the target');
  // The daemon's housekeeping tick (every second) notices the window's end.
  const code = await ssh.done;
  assert.notEqual(code, 0);
  assert.match(ssh.stderr(), /session ended by the gateway \(grant expired: grant g-expiring expired\)/);
  await until(async () => (await run('pgrep', ['-u', 'penstocktest', '-f', 'tail -f /etc/hostname'])).code !== 0, 'the command on the target to end');
  const events = await site.gw.events();
  const expired = events.find((e) => e.event === 'grant.expired' && e.detail?.grant === 'g-expiring');
  assert.ok(expired, 'grant.expired journaled');
  const ended = expired.detail?.sessions_ended as string[];
  assert.equal(ended.length, 1);
  assert.ok(events.some((e) => e.event === 'session.closed' && e.session === ended[0] && e.detail?.reason === 'grant_expired'));
  // The grant is over: the same command is now refused.
  const again = await site.ssh('rtu-7', ['tail', '-f', '/etc/hostname'], { timeoutMs: 15_000 });
  assert.equal(again.code, 126);
});
