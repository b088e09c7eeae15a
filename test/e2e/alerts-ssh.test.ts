// Issue 15, privilege expansion end to end: a vendor's interactive SSH shell (OpenSSH's ssh -tt through
// the real daemon to a real sshd) is running a command on the target when staff issue a new grant for
// that vendor on that target (penstockctl grants issue). The journal then holds one
// alert.privilege_expansion naming that session, its principal and chain, and the grant.issued event
// that raised it. Grants for another principal, or for a target the session is not on, raise nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { run, sshSkipReason, until } from '../adapters/ssh/harness.ts';
import { startSite, type Site } from '../adapters/ssh/fixture.ts';

const skip = sshSkipReason();
let site: Site;

before(async () => {
  if (!skip) site = await startSite();
});
after(async () => {
  await site?.stop();
});

interface Stored { seq: number; event: string; session?: string; principal?: string; chain?: string[]; target?: string; detail?: Record<string, unknown> }

/** Every journal event so far, with its seq (penstockctl journal tail --json). */
async function journal(): Promise<Stored[]> {
  const r = await site.gw.ctl(['--json', 'journal', 'tail', '-n', '2000']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { events: { seq: number; event: Omit<Stored, 'seq'> }[] }).events.map((e) => ({ ...e.event, seq: e.seq }));
}

/** penstockctl grants issue with the quick flags, valid for the next hour. */
async function issue(id: string, principal: string, target: string, rule: string): Promise<number> {
  const to = new Date(Date.now() + 3600_000).toISOString();
  const r = await site.gw.ctl(['grants', 'issue', '--id', id, '--principal', principal, '--target', target, '--ticket', 'WO-4420', '--until', to, '--rule', rule]);
  assert.equal(r.code, 0, r.stderr);
  // Journaled lazily (it gates nothing): penstockctl can have its answer before the commit.
  const issued = await until(async () => (await journal()).find((e) => e.event === 'grant.issued' && e.detail?.grant === id), `grant.issued for ${id} journaled`, 30_000);
  return issued.seq;
}

const onTarget = (marker: string) => run('pgrep', ['-u', 'penstocktest', '-f', marker]);

test('a grant issued to a vendor on its target while its SSH shell runs raises alert.privilege_expansion naming that session; grants for another principal or another target raise nothing', { skip, timeout: 90_000 }, async () => {
  const marker = 'sleep 4711';
  const ssh = spawn('ssh', [...site.sshArgs('rtu-7', undefined, ['-tt'])], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  ssh.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number>((resolve) => ssh.once('close', (code) => resolve(code ?? -1)));
  const killer = setTimeout(() => ssh.kill('SIGKILL'), 80_000);
  try {
    ssh.stdin.write(`${marker}\n`);
    // The far side: the shell's command runs on the target as its login.
    await until(async () => (await onTarget(marker)).code === 0, `${marker} on the target (ssh: ${stderr})`, 30_000);
    const opened = await until(async () => (await journal()).find((e) => e.event === 'session.opened' && e.principal === 'vendor-a' && e.target === 'rtu-7'), 'the shell session in the journal', 30_000);
    const session = opened.session!;

    // Controls first, so that by the time the widening grant's alert is journaled the detectors have
    // seen them (they follow the journal in order).
    const otherPrincipal = await issue('g-other-b', 'vendor-b', 'rtu-7', 'ssh:exec=uptime');
    const otherTarget = await issue('g-other-plc', 'vendor-a', 'plc-1', 'modbus:preset=readonly');
    const widening = await issue('g-wider', 'vendor-a', 'rtu-7', 'ssh:exec=systemctl status *');

    const events = await until(async () => {
      const all = await journal();
      return all.some((e) => e.event === 'alert.privilege_expansion' && e.session === session) ? all : undefined;
    }, 'alert.privilege_expansion for the shell session', 30_000);
    const alerts = events.filter((e) => e.event === 'alert.privilege_expansion');
    assert.equal(alerts.length, 1, `one alert: ${JSON.stringify(alerts)}`);
    const a = alerts[0]!;
    assert.equal(a.session, session);
    assert.equal(a.principal, 'vendor-a');
    assert.deepEqual(a.chain, ['vendor-a']);
    assert.equal(a.target, 'rtu-7');
    assert.equal(a.detail?.grant, 'g-wider');
    assert.deepEqual(a.detail?.triggers, [widening], 'the grant.issued of g-wider raised it');
    assert.equal(a.detail?.session_opened_seq, opened.seq);
    for (const control of [otherPrincipal, otherTarget]) {
      assert.ok(!alerts.some((x) => (x.detail?.triggers as number[]).includes(control)), `grant.issued seq ${control} raised nothing`);
    }
    assert.ok(a.seq > widening);

    // The default action is log: the session and its command on the target go on.
    assert.equal((await onTarget(marker)).code, 0, 'the command still runs on the target');
    const live = JSON.parse((await site.gw.ctl(['--json', 'sessions', 'list'])).stdout) as { id: string }[];
    assert.ok(live.some((s) => s.id === session), 'the session is still live');

    // Ctrl-C the command, leave the shell; the target is left clean.
    ssh.stdin.write('\x03');
    await until(async () => (await onTarget(marker)).code !== 0, `${marker} to end on the target`, 30_000);
    ssh.stdin.write('exit 0\n');
    assert.equal(await closed, 0, stderr);
  } finally {
    clearTimeout(killer);
    if (ssh.exitCode === null && ssh.signalCode === null) ssh.kill('SIGKILL');
  }
});
