// An allowed command must not become a shell, and a stopped session must stop its command on the
// target. Real peers only: OpenSSH's ssh driven through a real pty (typist.py), a real sshd target
// whose pager secure mode is off (SetEnv SYSTEMD_PAGERSECURE=0, as systemd does by itself for logind
// sessions) and which accepts the pager variables (AcceptEnv). Assertions on the target: marker files
// absent, processes gone from its process table.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, signCert, sshSkipReason, until, type JournalEvent } from './harness.ts';
import { startSite, type Site } from './fixture.ts';

const skip = sshSkipReason();
/** The pager tests drive systemctl's pager and less on the target, through a pty made by Python. */
const missing = ['/usr/bin/systemctl', '/usr/bin/less', '/usr/bin/python3'].find((p) => !existsSync(p));
const pagerSkip = skip || (missing ? `${missing} is needed` : false);
const ptySkip = skip || (existsSync('/usr/bin/python3') ? false : '/usr/bin/python3 is needed to drive a pty');
let site: Site;
const TYPIST = new URL('./typist.py', import.meta.url).pathname;

before(async () => {
  if (skip) return;
  site = await startSite({
    sshdConfig: ['AcceptEnv PAGER SYSTEMD_PAGER SYSTEMD_PAGERSECURE LESSSECURE GIT_PAGER', 'SetEnv SYSTEMD_PAGERSECURE=0'],
    grants: `
  - id: g-pty
    principal: vendor-a
    targets: [rtu-7]
    task: { ticket: WO-9001, purpose: pager checks }
    rules:
      - ssh: { exec: [systemctl, status, --help] }
      - ssh: { exec: [tty] }
      - ssh: { exec: [tail, -f, "*"] }
      - ssh: { exec: [systemctl, --help], pty: true }
      - ssh: { exec: [less, "*"], pty: true }
  - id: g-agent-tty
    principal: agent-7
    targets: [rtu-7]
    task: { ticket: WO-9001, purpose: terminal checks by certificate }
    rules:
      - ssh: { exec: [tty] }
      - ssh: { exec: [tty, -s], pty: true }
`,
  });
});
after(async () => {
  if (skip) return;
  // Whatever a failed test left running on the target, by pid.
  const left = await run('pgrep', ['-u', 'penstocktest', '-f', `^sleep 91\\.7 0\\.0[0-9]${RUN}$`]);
  for (const pid of left.stdout.split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
  await site?.stop();
});

interface Typed {
  code: number;
  transcript: string;
  missed: string[];
  timed_out: boolean;
}

/** Run `argv` on a real pty, typing `send` once `expect` is on the screen, then `q` until it exits. */
async function typeAt(argv: string[], steps: { expect: string; send: string }[], timeout = 40): Promise<Typed> {
  const r = await run('/usr/bin/python3', [TYPIST, JSON.stringify({ argv, steps, quit: 'q', timeout })], { timeoutMs: (timeout + 20) * 1000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Typed;
}

const allowed = (events: JournalEvent[], command: string) => events.filter((e) => e.event === 'action.allowed' && e.action?.ssh?.command === command);

test('exec under a rule without pty: true gets no terminal on the target, so a pager escape typed at it runs nothing', { skip: pagerSkip }, async () => {
  const marker = join(site.target, 'escape-no-pty');
  const t = await typeAt(['ssh', ...site.sshArgs('rtu-7', undefined, ['-tt']), '--', 'systemctl', 'status', '--help'], [
    { expect: 'Query or send control commands', send: `!touch ${marker}\r` },
  ]);
  assert.deepEqual(t.missed, [], t.transcript);
  assert.equal(t.timed_out, false, t.transcript);
  assert.equal(existsSync(marker), false, 'the pager escape ran a command on the target');
  assert.match(t.transcript, /running without a terminal/);

  const tty = await typeAt(['ssh', ...site.sshArgs('rtu-7', undefined, ['-tt']), '--', 'tty'], []);
  assert.match(tty.transcript, /not a tty/, 'the target gave the command a terminal');
  const events = await site.gw.events();
  const a = allowed(events, 'systemctl status --help').at(-1);
  assert.ok(a, 'the command was allowed');
  assert.equal(a.action?.ssh?.pty, undefined, 'journaled as an exec without a terminal');
});

test('exec under a rule with pty: true gets a terminal and the safe pager environment: no escape, even where the target turned pager secure mode off', { skip: pagerSkip }, async () => {
  // systemctl pages through $SYSTEMD_PAGER (cat: no pager at all).
  const m1 = join(site.target, 'escape-systemctl');
  const s = await typeAt(['ssh', ...site.sshArgs('rtu-7', undefined, ['-tt']), '--', 'systemctl', '--help'], [
    { expect: 'Query or send control commands', send: `!touch ${m1}\r` },
  ]);
  assert.deepEqual(s.missed, [], s.transcript);
  assert.equal(existsSync(m1), false, 'systemctl\'s pager ran a command on the target');

  // less itself, in secure mode through LESSSECURE=1.
  const file = join(site.target, 'notes.txt');
  writeFileSync(file, 'pager-test-content line 1\nline 2\n');
  const m2 = join(site.target, 'escape-less');
  const l = await typeAt(['ssh', ...site.sshArgs('rtu-7', undefined, ['-tt']), '--', 'less', file], [
    { expect: 'pager-test-content', send: `!touch ${m2}\r` },
  ]);
  assert.deepEqual(l.missed, [], l.transcript);
  assert.equal(l.timed_out, false, l.transcript);
  assert.equal(existsSync(m2), false, 'less ran a command on the target');

  const events = await site.gw.events();
  assert.equal(allowed(events, `less ${file}`).at(-1)?.action?.ssh?.pty, true, 'journaled as an exec with a terminal');
  // The asciicast of the pty exec holds what was typed, and the journal vouches for it.
  const out = events.filter((e) => e.event === 'action.outcome' && e.action?.ssh?.command === `less ${file}`).at(-1);
  const rec = out?.outcome?.recording as { path: string } | undefined;
  assert.ok(rec, 'the outcome names its recording');
  const lines = readFileSync(rec.path, 'utf8').trim().split('\n').slice(1).map((x) => JSON.parse(x) as [number, string, string]);
  const typed = lines.filter(([, k]) => k === 'i').map(([, , d]) => d).join('');
  assert.ok(typed.includes(`!touch ${m2}`), `the keys typed are in the recording: ${JSON.stringify(typed)}`);
  assert.ok(lines.some(([, k, d]) => k === 'o' && d.includes('pager-test-content')), 'output recorded');
});

test('^C typed at a command that runs without a terminal interrupts it on the target', { skip: ptySkip, timeout: 60_000 }, async () => {
  const file = join(site.target, 'followed.log');
  writeFileSync(file, 'follow-me-line\n');
  const t = await typeAt(['ssh', ...site.sshArgs('rtu-7', undefined, ['-tt']), '--', 'tail', '-f', file], [{ expect: 'follow-me-line', send: '\x03' }], 15);
  assert.equal(t.timed_out, false, `tail -f did not stop on ^C: ${t.transcript}`);
  const pattern = `^tail -f ${file.replace(/[.]/g, '\\.')}$`;
  await until(async () => !(await onTarget(pattern)), 'tail to be gone from the target');
});

test('certificate logins get a terminal by the same rule: permit-pty alone does not give one', { skip: ptySkip }, async () => {
  const key = join(site.dir, 'keys', 'agent_tty');
  execFileSync('cp', [site.keys.agent, key]);
  execFileSync('cp', [`${site.keys.agent}.pub`, `${key}.pub`]);
  execFileSync('chmod', ['600', key]);
  signCert(site.keys.ca, key, 'task-logs-7 tty', ['task-logs-7'], '-5m:+10m'); // ssh-keygen's default extensions include permit-pty
  const args = (cmd: string[]) => ['ssh', ...site.sshArgs('rtu-7', key, ['-tt', '-o', `CertificateFile=${key}-cert.pub`]), '--', ...cmd];
  const without = await typeAt(args(['tty']), []);
  assert.match(without.transcript, /not a tty/);
  const withPty = await typeAt(args(['tty', '-s']), []);
  assert.equal(withPty.code, 0, `tty -s on the target found no terminal: ${withPty.transcript}`);
});

// ----------------------------------------------------------------- a stopped session stops its command

function spawnSsh(args: string[]): { child: ChildProcess; stderr: () => string; done: Promise<number> } {
  const child = spawn('ssh', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.resume();
  const done = new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? -1)));
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
  void done.then(() => clearTimeout(kill));
  return { child, stderr: () => stderr, done };
}

const onTarget = async (pattern: string) => (await run('pgrep', ['-u', 'penstocktest', '-f', pattern])).code === 0;

// This run's own mark in the commands it leaves on the target (all runs share the penstocktest user):
// another test run on the machine must neither find nor kill them.
const RUN = String(process.pid);
let scenario = 0;
for (const stop of ['kill', 'revoke', 'expiry'] as const) {
  for (const stdin of ['ssh -n', 'stdin open'] as const) {
    test(`${stop} ends the session and its command on the target (${stdin})`, { skip, timeout: 90_000 }, async () => {
      const n = ++scenario;
      const argv = ['sleep', '91.7', `0.0${n}${RUN}`];
      const pattern = `^sleep 91\\.7 0\\.0${n}${RUN}$`;
      const now = Date.now();
      const grantId = `g-stop-${n}`;
      const grant = {
        id: grantId,
        principal: 'vendor-a',
        targets: ['rtu-7'],
        task: { ticket: 'WO-9002', purpose: `stop by ${stop}` },
        window: { from: new Date(now - 60_000).toISOString(), to: new Date(now + (stop === 'expiry' ? 6_000 : 600_000)).toISOString() },
        rules: [{ ssh: { exec: argv } }],
      };
      const file = join(site.dir, `${grantId}.json`);
      writeFileSync(file, JSON.stringify(grant));
      const issued = await site.gw.ctl(['grants', 'issue', '--file', file]);
      assert.equal(issued.code, 0, issued.stderr);

      const ssh = spawnSsh([...site.sshArgs('rtu-7', undefined, stdin === 'ssh -n' ? ['-n'] : []), '--', ...argv]);
      await until(() => onTarget(pattern), 'the command on the target');
      if (stop === 'kill') {
        const a = allowed(await site.gw.events(), argv.join(' ')).at(-1);
        const k = await site.gw.ctl(['sessions', 'kill', a!.session!, '--reason', 'test']);
        assert.equal(k.code, 0, k.stderr);
      } else if (stop === 'revoke') {
        const r = await site.gw.ctl(['grants', 'revoke', grantId, '--reason', 'test']);
        assert.equal(r.code, 0, r.stderr);
      }
      assert.notEqual(await ssh.done, 0);
      assert.match(ssh.stderr(), /session ended by the gateway/);
      await until(async () => !(await onTarget(pattern)), 'the command to be gone from the target\'s process table', 10_000);
    });
  }
}
