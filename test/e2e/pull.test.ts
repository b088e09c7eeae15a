// Issue 3, end to end: the daemon runs with its pull API on real mutual TLS; events come from real
// traffic (Modbus writes through the front door, admin requests); central PAM's reference puller
// (`penstockctl journal pull`, as a process) pulls; the daemon is SIGKILLed mid-pull and restarted;
// the puller ends with every event exactly once, and the pulled files verify offline against the
// pinned appliance key. A client certificate from another CA is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { spawn } from 'node:child_process';
import { fingerprintOf, makeSvid, makeTestPki, type CertPair, type TestPki } from '../sync/certs.ts';
import { Plc, freePort } from '../adapters/modbus/fixtures/harness.ts';
import { MbapDecoder, encodeMbap } from '../../src/adapters/modbus/mbap.ts';
import { encodeRequest } from '../../src/adapters/modbus/pdu.ts';
import { NODE, ROOT, startDaemon, tempDir, until, type CtlResult, type DaemonProcess } from './daemon-harness.ts';

const tmp = tempDir('penstock-e2e-pull-');
let pki: TestPki;
/** An X.509-SVID the config names by its SPIFFE ID (a pull client by `spiffe_id`). */
let svid: CertPair;
const PULLER_ID = 'spiffe://pam.example/puller/2';
let plc: Plc;
let daemon: DaemonProcess;
let syncPort: number;
let modbusPort: number;
let plcPort: number;
const WRITES = Number(process.env.PENSTOCK_E2E_PULL_WRITES ?? 600);

function config(): string {
  return `appliance: { id: e2e-pull-gw, site: Test, zone: dmz, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
journal: { checkpoint_every: 50, checkpoint_seconds: 1 }
sessions: { actions_per_second: 100000 }
sync:
  host: 127.0.0.1
  port: ${syncPort}
  page_size: 10
  tls: { cert: ${pki.server.certPath}, key: ${pki.server.keyPath}, client_ca: ${pki.ca.certPath} }
  clients:
    - { name: central-pam, fingerprint: "${fingerprintOf(pki.client)}", roles: [read, ack] }
    - { name: second-pam, spiffe_id: "${PULLER_ID}", roles: [read, ack] }
listeners:
  - { id: mb, protocol: modbus, mode: tcp, host: 127.0.0.1, port: ${modbusPort}, routes: [{ unit: 1, target: plc-1 }], bindings: [{ source: 127.0.0.1, principal: vendor-1 }] }
principals:
  - { id: vendor-1, kind: vendor, owner: ACME, purpose: Maintenance }
targets:
  - { id: plc-1, protocol: modbus, zone: cell-a, host: 127.0.0.1, port: ${plcPort} }
grants:
  - id: g-write
    principal: vendor-1
    targets: [plc-1]
    task: { ticket: WO-9 }
    rules: [{ modbus: { access: write, tables: [holding_register], addresses: ["0-99"] } }]
`;
}

/** `count` register writes over one Modbus/TCP connection: each journals allowed + outcome. */
async function writeMany(count: number): Promise<void> {
  const socket = connect(modbusPort, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const decoder = new MbapDecoder();
  let pending: ((b: Uint8Array) => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    for (const r of decoder.push(chunk)) if ('frame' in r) pending?.(r.frame.pdu);
  });
  for (let i = 0; i < count; i++) {
    const pdu = await new Promise<Uint8Array>((resolve) => {
      pending = resolve;
      socket.write(encodeMbap(i & 0xffff, 1, encodeRequest({ kind: 'write_single_register', fc: 6, address: i % 100, value: i } as Parameters<typeof encodeRequest>[0])));
    });
    assert.equal(pdu[0], 6, `write ${i} answered without exception`);
  }
  socket.destroy();
}

function pull(out: string, client = pki.client, extra: string[] = []): Promise<CtlResult> {
  const vkeyFile = join(tmp.dir, 'appliance.vkey');
  return new Promise((resolve) => {
    const child = spawn(NODE, [join(ROOT, 'src/cli/penstockctl.ts'), 'journal', 'pull', `https://127.0.0.1:${syncPort}`,
      '--cert', client.certPath, '--key', client.keyPath, '--ca', pki.ca.certPath, '--out', out, '--vkey', vkeyFile, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

before(async () => {
  pki = makeTestPki();
  svid = makeSvid(pki, 'puller-svid', [PULLER_ID]);
  [syncPort, modbusPort, plcPort] = [await freePort(), await freePort(), await freePort()];
  plc = await Plc.start('tcp', plcPort);
  daemon = await startDaemon(tmp.dir, config());
  // Pin the appliance key the way an operator would: read on the gateway itself, over the admin socket.
  const key = await daemon.ctl(['journal', 'key']);
  assert.equal(key.code, 0, key.stderr);
  (await import('node:fs')).writeFileSync(join(tmp.dir, 'appliance.vkey'), key.stdout.trim());
});

after(async () => {
  await daemon?.stop();
  await plc?.stop();
  pki?.cleanup();
  tmp.cleanup();
});

test('a client certificate from another CA is refused', async () => {
  const r = await pull(join(tmp.dir, 'untrusted-out'), pki.untrustedClient);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /PS_SYNC_(UNAVAILABLE|TLS|REFUSED)/);
  assert.ok(!existsSync(join(tmp.dir, 'untrusted-out', 'events-000001.jsonl')) || readFileSync(join(tmp.dir, 'untrusted-out', 'events-000001.jsonl'), 'utf8') === '', 'nothing pulled');
});

test('pull survives a SIGKILLed daemon mid-pull and ends with every event exactly once, verified', async () => {
  await writeMany(WRITES);
  const out = join(tmp.dir, 'pam');
  // First pull: small pages, and the daemon is killed while it runs.
  const first = pull(out, pki.client, ['--page-size', '5']);
  await until(() => existsSync(join(out, 'state.json')) || undefined, 'the puller to store its first page', 20_000);
  await daemon.kill();
  const r1 = await first;
  assert.notEqual(r1.code, 0, 'the first pull was cut off by the kill');
  assert.match(r1.stderr, /PS_SYNC_UNAVAILABLE/);

  // The daemon restarts on the same journal (nothing it acknowledged is lost), and more happens.
  daemon = await startDaemon(tmp.dir, config());
  await writeMany(20);
  // A timed checkpoint (checkpoint_seconds: 1) covers the new events: the pull holds up to a checkpoint.
  const written = (await daemon.json<{ size: number }>(['journal', 'status'])).size;
  await until(async () => ((await daemon.json<{ checkpoint?: { size: number } }>(['journal', 'status'])).checkpoint?.size ?? 0) >= written, 'a checkpoint covering the new writes', 20_000);
  const r2 = await pull(out);
  assert.equal(r2.code, 0, r2.stderr);

  // Every event exactly once, in order, and the files verify offline with the pinned key.
  const files = readdirSync(out).filter((f) => /^events-\d+\.jsonl$/.test(f)).sort();
  const lines = files.flatMap((f) => readFileSync(join(out, f), 'utf8').split('\n').filter(Boolean));
  const seqs = lines.map((l) => (JSON.parse(l) as { seq: number }).seq);
  assert.deepEqual(seqs, seqs.map((_, i) => i), 'seq 0..n-1, each once, in order');
  const state = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')) as { cursor: number };
  assert.equal(state.cursor, lines.length);
  const allowed = lines.filter((l) => (JSON.parse(l) as { event: string }).event === 'action.allowed').length;
  assert.equal(allowed, WRITES + 20, 'every journaled write was pulled');
  const notes = readdirSync(join(out, 'checkpoints')).filter((f) => f.endsWith('.note')).sort();
  const lastNote = notes.at(-1)!;
  assert.equal(Number(lastNote.replace('.note', '')), lines.length, 'the held checkpoint covers every pulled event');

  const { verifyExport } = await import('../../src/journal/verify.ts');
  const vkey = readFileSync(join(tmp.dir, 'appliance.vkey'), 'utf8').trim();
  const check = verifyExport({ lines, checkpointNote: readFileSync(join(out, 'checkpoints', lastNote), 'utf8'), vkey });
  assert.equal(check.ok, true, JSON.stringify(check));
  assert.equal((check as { size: number }).size, lines.length);

  // Upstream acknowledged what it holds: the gateway can see it.
  const status = await daemon.json<{ acknowledged: number }>(['journal', 'status']);
  assert.equal(status.acknowledged, lines.length - 1);
  const v = await daemon.ctl(['journal', 'verify']);
  assert.equal(v.code, 0, v.stdout);
});

test('a pull client named by the SPIFFE ID of its X.509-SVID pulls; an SVID naming no client is refused', async () => {
  const out = join(tmp.dir, 'pam-svid');
  const r = await pull(out, svid);
  assert.equal(r.code, 0, r.stderr);
  const lines = readdirSync(out).filter((f) => /^events-\d+\.jsonl$/.test(f)).flatMap((f) => readFileSync(join(out, f), 'utf8').split('\n').filter(Boolean));
  assert.ok(lines.length > 0, 'events pulled');
  assert.deepEqual(lines.map((l) => (JSON.parse(l) as { seq: number }).seq), lines.map((_, i) => i));

  const stranger = makeSvid(pki, 'stranger-svid', ['spiffe://pam.example/puller/3']);
  const refused = await pull(join(tmp.dir, 'pam-stranger'), stranger);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /unknown_client/);
});
