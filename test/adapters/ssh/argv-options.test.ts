// Options of an allowed command must not reach the target unless a rule names them (issue 11, defect 4).
// Real OpenSSH client, the real daemon, a real sshd target; assertions on the far side: a connection
// the target's systemctl would make to a host the vendor picked, and marker files a command writes
// only when it is given an option.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sshSkipReason, until } from './harness.ts';
import { startSite, type Site } from './fixture.ts';

const skip = sshSkipReason();
let site: Site;

before(async () => {
  if (skip) return;
  site = await startSite({
    grants: `
  - id: g-options
    principal: vendor-a
    targets: [rtu-7]
    task: { ticket: WO-4420, purpose: option handling }
    rules:
      - ssh: { exec: [systemctl, status, "*"] }
      - ssh: { exec: [systemctl, "--host=*", status, "*"] }
      - ssh: { exec: [sort, "*"] }
      - ssh: { exec: [sort, "--output=*", "*"] }
`,
  });
});
after(async () => {
  await site?.stop();
});

/** A TCP listener standing in for "a host the vendor chose": counts the connections it gets. */
async function listener(): Promise<{ server: Server; port: number; connections: () => number }> {
  let n = 0;
  const server = createServer((c) => {
    n++;
    c.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port, connections: () => n };
}

test('systemctl status --host=… under `systemctl status *` is refused, and the target connects nowhere', { skip }, async () => {
  const l = await listener();
  try {
    const r = await site.ssh('rtu-7', ['systemctl', 'status', `--host=rtu@127.0.0.1:${l.port}`]);
    assert.equal(r.code, 126, r.stderr);
    assert.match(r.stderr, /object_not_granted/);
    assert.equal(l.connections(), 0, 'the target opened no connection to the host the vendor named');
    // Where a rule names --host=*, the listener sees the target's ssh arrive: the check above can fail.
    const named = await site.ssh('rtu-7', ['systemctl', `--host=rtu@127.0.0.1:${l.port}`, 'status', 'bridge']);
    assert.notEqual(named.code, 126, named.stderr);
    await until(() => l.connections() > 0, 'the target to connect to the named host');
  } finally {
    l.server.close();
  }
  const events = await site.gw.events();
  const denied = events.filter((e) => e.event === 'action.denied' && String(e.action?.ssh?.command).includes('--host='));
  assert.ok(denied.length >= 1, 'the refusal is journaled');
  assert.equal(denied[0]!.decision?.reason, 'object_not_granted');
});

test('an option slipped into an operand wildcard never runs; the same option named by a rule does', { skip }, async () => {
  const sneaked = [join(site.target, 'opt-long'), join(site.target, 'opt-short'), join(site.target, 'opt-after-dashdash')];
  for (const argv of [['sort', `--output=${sneaked[0]}`], ['sort', `-o${sneaked[1]}`], ['sort', '--', `--output=${sneaked[2]}`]]) {
    const r = await site.ssh('rtu-7', argv, { extra: ['-n'] });
    assert.equal(r.code, 126, `${argv.join(' ')}: ${r.stderr}`);
  }
  for (const m of sneaked) assert.equal(existsSync(m), false, `${m} was written on the target`);
  // The rule that names --output=* lets it through: the marker appears, so the check above can fail.
  const named = join(site.target, 'opt-named');
  const ok = await site.ssh('rtu-7', ['sort', `--output=${named}`, '/etc/hostname'], { extra: ['-n'] });
  assert.equal(ok.code, 0, ok.stderr);
  await until(() => existsSync(named), 'the named option to write its file');
  assert.equal(readFileSync(named, 'utf8'), readFileSync('/etc/hostname', 'utf8'));
});
