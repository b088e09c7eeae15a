// Issue 15, grants from observation, end to end with real peers only: a vendor works under broad grants
// (mbpoll through the Modbus front door to a pymodbus PLC, OpenSSH ssh through the SSH front door to a
// real sshd); `penstockctl grants suggest` turns the journal into grant YAML; `penstockctl config check`
// accepts it; the broad grants are replaced by it (config reload); the same commands run again and are
// allowed, anything else is refused, asserted at the PLC and on the target's files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { freePort, mbpoll } from '../adapters/modbus/fixtures/harness.ts';
import { ROOT, penstockctl } from './daemon-harness.ts';
import { NODE, run, sshSkipReason, until } from '../adapters/ssh/harness.ts';
import { startSite, type Site } from '../adapters/ssh/fixture.ts';

const skip = sshSkipReason() || (existsSync('/usr/bin/mbpoll') ? false : 'mbpoll is not installed');
let site: Site;
let modbusPort: number;

before(async () => {
  if (skip) return;
  modbusPort = await freePort();
  site = await startSite({
    // A Modbus/TCP door where 127.0.0.1 is vendor-a, and a broad grant to learn under.
    listener: `  - { id: mb, protocol: modbus, mode: tcp, host: 127.0.0.1, port: ${modbusPort}, routes: [{ unit: 1, target: plc-1 }], bindings: [{ source: 127.0.0.1, principal: vendor-a }] }\n`,
    grants: [
      '  - { id: g-broad-plc, principal: vendor-a, targets: [plc-1], task: { ticket: WO-4411 }, rules: [{ modbus: { preset: readwrite } }] }',
      '  - { id: g-broad-rtu, principal: vendor-a, targets: [rtu-7], task: { ticket: WO-4411 }, rules: [{ ssh: { exec: [uname, "-..."] } }] }',
      '',
    ].join('\n'),
  });
});
after(async () => {
  await site?.stop();
});

const ctl = (args: string[]) => penstockctl(site.gw.files.adminSocket, args);
// Time-out 10 s (mbpoll's longest): the default 2 s is short on a loaded machine.
const mb = (args: string[]) => mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-o', '10', ...args]);

/** What the vendor did: the session to learn from, and later to replay. */
async function vendorSession(marker: string): Promise<void> {
  assert.equal((await mb(['-t', '4', '-r', '0', '-c', '10', '127.0.0.1'])).code, 0, 'read 0-9');
  assert.equal((await mb(['-t', '4', '-r', '10', '-c', '4', '127.0.0.1'])).code, 0, 'read 10-13');
  assert.equal((await mb(['-t', '4', '-r', '40', '-c', '2', '127.0.0.1'])).code, 0, 'read 40-41');
  assert.equal((await mb(['-t', '4', '-r', '12', '127.0.0.1', '400'])).code, 0, 'write 12 = 400');
  assert.equal((await mb(['-t', '4', '-r', '13', '127.0.0.1', '450'])).code, 0, 'write 13 = 450');
  for (const words of [['echo', 'hello'], ['echo', 'world'], ['cat', '/etc/hostname'], ['uname', '-s'], ['touch', marker]]) {
    const r = await site.ssh('rtu-7', words);
    assert.equal(r.code, 0, `${words.join(' ')}: ${r.stderr}`);
  }
}

test('grants suggest on a recorded mbpoll and ssh session: config check accepts it, and under it the same session is allowed while anything else is denied', { skip }, async () => {
  const marker = join(site.target, 'allowed-marker');
  await vendorSession(marker);
  // Refused during the visit: listed in the suggestion, never granted.
  assert.equal((await site.ssh('rtu-7', ['rm', '-rf', site.target])).code, 126);

  // Read aggregates are written when a Modbus connection closes: wait until the journal holds them.
  let yamlText = '';
  await until(async () => {
    const r = await ctl(['grants', 'suggest', '--principal', 'vendor-a']);
    assert.equal(r.code, 0, r.stderr);
    yamlText = r.stdout;
    return /holding_register 0-13, 40-41/.test(yamlText) && /rm -rf/.test(yamlText);
  }, 'the read aggregates and the refused rm in the suggestion', 30_000);

  const suggested = parse(yamlText) as { grants: { id: string; targets: string[]; rules: Record<string, Record<string, unknown>>[] }[] };
  const plcGrant = suggested.grants.find((g) => g.targets[0] === 'plc-1')!;
  const rtuGrant = suggested.grants.find((g) => g.targets[0] === 'rtu-7')!;
  assert.deepEqual(plcGrant.rules.map((r) => r.modbus), [
    { effect: 'allow', function_codes: [3], units: [1], tables: ['holding_register'], addresses: [{ from: 0, to: 13 }, { from: 40, to: 41 }] },
    { effect: 'allow', function_codes: [6], units: [1], tables: ['holding_register'], addresses: [{ from: 12, to: 13 }], min: 400, max: 450 },
  ]);
  assert.deepEqual(rtuGrant.rules.map((r) => r.ssh!.exec ?? r.ssh), [['echo', '*'], ['cat', '/etc/hostname'], ['uname', '-s'], ['touch', marker]]);
  assert.match(yamlText, /denied, not granted/);
  assert.match(yamlText, /# .*2 actions, first 20/); // echo hello and echo world: one rule, two actions

  // Into the config in place of every grant vendor-a held; config check accepts it.
  const original = readFileSync(site.gw.files.config, 'utf8');
  const narrowed = `${original.slice(0, original.indexOf('\ngrants:\n'))}\n${yamlText}`;
  const candidate = join(site.dir, 'suggested.yaml');
  writeFileSync(candidate, narrowed);
  const check = await run(NODE, [join(ROOT, 'src/cli/penstockctl.ts'), 'config', 'check', candidate]);
  assert.equal(check.code, 0, `${check.stdout}${check.stderr}`);
  writeFileSync(site.gw.files.config, narrowed);
  const reload = await ctl(['config', 'reload']);
  assert.equal(reload.code, 0, reload.stdout + reload.stderr);
  const grants = JSON.parse((await ctl(['--json', 'grants', 'list'])).stdout) as { id: string }[];
  assert.deepEqual(grants.map((g) => g.id).sort(), suggested.grants.map((g) => g.id).sort());

  // The same session again: allowed, and it reaches the PLC and the target.
  rmSync(marker);
  await site.plc.logged(); // the PLC's log lines can come after its answers
  const before = site.plc.requests.length;
  await vendorSession(marker);
  assert.ok(existsSync(marker), 'touch ran on the target');
  await site.plc.logged();
  const reached = site.plc.requests.slice(before);
  assert.deepEqual(reached.filter((r) => r.fc === 6).map((r) => [r.address, r.value]), [[12, 400], [13, 450]]);

  // Anything else: refused, and nothing of it reaches the PLC or the target.
  const mark = site.plc.requests.length;
  assert.notEqual((await mb(['-t', '4', '-r', '20', '-c', '2', '127.0.0.1'])).code, 0, 'another register');
  assert.notEqual((await mb(['-t', '4', '-r', '12', '127.0.0.1', '600'])).code, 0, 'a value above what was written');
  assert.notEqual((await mb(['-t', '4', '-r', '14', '127.0.0.1', '420'])).code, 0, 'a register never written');
  assert.notEqual((await mb(['-t', '0', '-r', '0', '-c', '1', '127.0.0.1'])).code, 0, 'another table');
  await site.plc.logged();
  assert.deepEqual(site.plc.requests.slice(mark), [], 'the PLC saw none of them');
  const other = join(site.target, 'other-marker');
  for (const words of [['touch', other], ['cat', '/etc/passwd'], ['uname', '-a'], ['echo', '-e', 'x']]) {
    const r = await site.ssh('rtu-7', words);
    assert.equal(r.code, 126, `${words.join(' ')} must be refused: ${r.stdout}${r.stderr}`);
  }
  assert.equal(existsSync(other), false, 'the refused touch never ran');
});
