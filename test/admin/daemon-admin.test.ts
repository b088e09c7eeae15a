// The admin socket of the real daemon (src/main.ts as a process), driven by the real penstockctl and by
// raw clients: config.check never reads a path for the client and never echoes a secret file, config
// text is bounded, and read-only requests are journaled as aggregates while state changes are not.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { adminRequest } from '../../src/admin/client.ts';
import { MAX_CONFIG_BYTES } from '../../src/config/limits.ts';
import { startDaemon, tempDir, until, type DaemonProcess } from '../e2e/daemon-harness.ts';
import { nodeAs, rawExchange, request, runCtl } from './fixture.ts';

const uid = process.getuid!();
const canSwitchUsers = uid === 0;
const NOBODY = 65534;

const tmp = tempDir('penstock-admin-daemon-');
const keyHex = randomBytes(32).toString('hex');
const keyFile = join(tmp.dir, 'state', 'vault.key');
let daemon: DaemonProcess;

function config(): string {
  return `# admin socket test site
appliance:
  id: admin-gw
  site: Test site
  zone: dmz
  state_dir: ${tmp.dir}/state
  runtime_dir: ${tmp.dir}/run
admin:
  group: nogroup
vault:
  key_file: ${keyFile}
journal:
  aggregate_reads_seconds: 2
principals:
  - { id: vendor-1, kind: vendor, owner: ACME, purpose: Maintenance }
targets:
  - { id: plc-1, protocol: modbus, zone: cell-a, host: 127.0.0.1, port: 1502 }
grants:
  - id: g-maint
    principal: vendor-1
    targets: [plc-1]
    task: { ticket: WO-1 }
    rules:
      - modbus: { preset: readonly }
`;
}

/** Every 8-character window of the key: none may appear anywhere in a reply. */
function assertNoKeyBytes(text: string, what: string): void {
  assert.ok(!text.includes(keyHex), `${what}: the whole key`);
  for (let i = 0; i + 8 <= keyHex.length; i++) {
    const part = keyHex.slice(i, i + 8);
    assert.ok(!text.includes(part), `${what}: key bytes ${part} at ${i}`);
  }
}

interface JournalEvent {
  seq: number;
  event: { event: string; detail?: { command?: string; count?: number; ok?: boolean; operator?: { uid: number; verified: boolean } } };
}

async function tail(count: number): Promise<JournalEvent[]> {
  const r = (await adminRequest(daemon.socket, 'journal.tail', { count })) as { events: JournalEvent[] };
  return r.events;
}

before(async () => {
  mkdirSync(join(tmp.dir, 'state'), { recursive: true, mode: 0o750 });
  writeFileSync(keyFile, `${keyHex}\n`, { mode: 0o600 });
  // nobody must be able to reach the socket (group nogroup) through the temp directory and run/.
  chmodSync(tmp.dir, 0o755);
  mkdirSync(join(tmp.dir, 'run'), { mode: 0o750 });
  if (canSwitchUsers) chownSync(join(tmp.dir, 'run'), 0, NOBODY);
  daemon = await startDaemon(tmp.dir, config());
});

after(async () => {
  await daemon?.stop();
  tmp.cleanup();
});

describe('config.check over the admin socket', () => {
  it('never reads a path for the client: the old {file} request is refused and reveals no byte of the vault key', async () => {
    const { responses } = await rawExchange(daemon.socket, request(1, 'config.check', { file: keyFile }), 1);
    const reply = JSON.stringify(responses);
    assert.equal((responses[0]!.error as { code: string }).code, 'PS_ADMIN_BAD_REQUEST');
    assertNoKeyBytes(reply, 'reply to {file}');
  });

  it('the vault key sent as text is reported by type only, never quoted', async () => {
    const { responses } = await rawExchange(daemon.socket, request(2, 'config.check', { text: `${keyHex}\n`, name: keyFile }), 1);
    const reply = JSON.stringify(responses);
    assert.equal(responses[0]!.ok, true, reply);
    const result = responses[0]!.result as { ok: boolean; issues: { message: string }[] };
    assert.equal(result.ok, false);
    assert.ok(result.issues.some((i) => /expected a map, got a string/.test(i.message)), reply);
    assertNoKeyBytes(reply, 'reply to {text}');
  });

  it('penstockctl --daemon reads the file with the caller\'s rights: nobody cannot have the key checked', { skip: canSwitchUsers ? false : 'needs root' }, async () => {
    const r = await runCtl(['--socket', daemon.socket, '--json', 'config', 'check', '--daemon', keyFile], { asUid: NOBODY });
    assert.equal(r.code, 1, r.stderr);
    const out = JSON.parse(r.stdout) as { ok: boolean; issues: { code?: string; message: string }[] };
    assert.equal(out.issues[0]!.code, 'PS_CONFIG_READ');
    assert.match(out.issues[0]!.message, /EACCES/);
    assertNoKeyBytes(r.stdout + r.stderr, 'penstockctl as nobody');
    // The same user can use the socket (the refusal above was its own file access, not the socket).
    const status = await runCtl(['--socket', daemon.socket, 'status'], { asUid: NOBODY });
    assert.equal(status.code, 0, status.stderr);
  });

  it('refuses /dev/zero and a huge file at once with a stable code, locally and through the daemon', async () => {
    const huge = join(tmp.dir, 'huge.yaml');
    writeFileSync(huge, 'appliance:\n');
    truncateSync(huge, 64 * 1024 * 1024); // sparse: 64 MiB that read as zeros
    for (const [file, code] of [['/dev/zero', 'PS_CONFIG_READ'], [huge, 'PS_CONFIG_TOO_LARGE']] as const) {
      for (const mode of [['--daemon'], []]) {
        const started = Date.now();
        const r = await runCtl(['--socket', daemon.socket, '--json', 'config', 'check', ...mode, file]);
        assert.equal(r.code, 1, `${file} ${mode}: ${r.stderr}`);
        const out = JSON.parse(r.stdout) as { issues: { code?: string }[] };
        assert.equal(out.issues[0]!.code, code, `${file} ${mode}`);
        assert.ok(Date.now() - started < 10_000, `${file} ${mode} took ${Date.now() - started} ms`);
      }
    }
    // Text one byte over the bound, sent by a raw client: refused by the daemon with the same code.
    const big = `# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`;
    const { responses } = await rawExchange(daemon.socket, request(3, 'config.check', { text: big }), 1);
    assert.equal((responses[0]!.error as { code: string }).code, 'PS_CONFIG_TOO_LARGE');
    const status = await runCtl(['--socket', daemon.socket, 'status']);
    assert.equal(status.code, 0, 'the daemon is still serving');
  });

  it('a normal check through the daemon still works: OK for a good file, errors with file, line and field for a bad one', async () => {
    const good = join(tmp.dir, 'good.yaml');
    const bad = join(tmp.dir, 'bad.yaml');
    writeFileSync(good, config());
    writeFileSync(bad, config().replace('  zone: dmz\n', '  zone: dmz\n  colour: blue\n'));
    const ok = await runCtl(['--socket', daemon.socket, 'config', 'check', '--daemon', good]);
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.match(ok.stdout, /configuration OK/);
    const err = await runCtl(['--socket', daemon.socket, 'config', 'check', '--daemon', bad]);
    assert.equal(err.code, 1, err.stderr);
    assert.match(err.stdout, new RegExp(`${bad.replace(/[.]/g, '\\.')}:6:\\d+: appliance\\.colour: unknown field`));
  });
});

describe('admin requests in the journal', () => {
  /** A uid of its own (no passwd entry), so its requests are told apart from the rest of this file's. */
  const READER_UID = 47_114;
  /** 50 status requests, each on its own connection as penstockctl makes them, as READER_UID. */
  const FIFTY_STATUS = `const net = require('node:net');
const one = () => new Promise((resolve, reject) => {
  const s = net.createConnection(process.argv[1]);
  let buf = '';
  s.on('connect', () => s.write(JSON.stringify({ id: 1, command: 'status', params: {} }) + '\\n'));
  s.on('data', (d) => { buf += d; if (buf.includes('\\n')) { s.destroy(); JSON.parse(buf).ok ? resolve() : reject(new Error(buf)); } });
  s.on('error', reject);
});
(async () => { for (let i = 0; i < 50; i++) await one(); console.log('done'); })().catch((e) => { console.error(e.message); process.exit(1); });`;

  it('50 status calls add at most a couple of aggregate events; a grant revoke adds its own event at once', { skip: canSwitchUsers ? false : 'needs root' }, async () => {
    const start = (await tail(1))[0]!.seq + 1;
    const reader = await nodeAs(READER_UID, FIFTY_STATUS, [daemon.socket], { gid: NOBODY });
    assert.equal(reader.code, 0, reader.stderr);
    const revoke = await runCtl(['--socket', daemon.socket, 'grants', 'revoke', 'g-maint', '--reason', 'work done']);
    assert.equal(revoke.code, 0, revoke.stderr);
    // The revoke is journaled before it runs, on its own, with the kernel's uid.
    const afterRevoke = (await tail(50)).filter((e) => e.seq >= start);
    const revokes = afterRevoke.filter((e) => e.event.event === 'admin.request' && e.event.detail?.command === 'grants.revoke');
    assert.equal(revokes.length, 1);
    assert.equal(revokes[0]!.event.detail!.count, undefined, 'not an aggregate');
    assert.deepEqual(revokes[0]!.event.detail!.operator, { uid, user: 'root', verified: true });
    // The revocation itself gates nothing: it is journaled lazily, and may follow penstockctl's answer.
    await until(async () => (await tail(50)).some((e) => e.seq >= start && e.event.event === 'grant.revoked'), 'grant.revoked journaled');

    // The status calls arrive counted, once the interval (2 s here) has passed.
    const ofReader = (e: JournalEvent) => e.seq >= start && e.event.event === 'admin.request' && e.event.detail?.command === 'status' && e.event.detail.operator?.uid === READER_UID;
    const statusEvents = await until(async () => {
      const events = (await tail(200)).filter(ofReader);
      return events.reduce((n, e) => n + (e.event.detail!.count ?? 0), 0) >= 50 ? events : undefined;
    }, 'aggregated status events', 20_000);
    assert.ok(statusEvents.length <= 2, `${statusEvents.length} events for 50 status calls`);
    assert.equal(statusEvents.reduce((n, e) => n + e.event.detail!.count!, 0), 50);
    assert.ok(statusEvents.every((e) => e.event.detail!.operator!.verified));
  });
});
