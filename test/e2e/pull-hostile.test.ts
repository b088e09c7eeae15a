// Issue 10 §4, end to end against the real daemon: what anyone who reaches the pull port can do to it.
// Refused handshakes must not flood the journal, idle connections from one address must not lock out
// the real puller, TLS must offer ECDHE with AEAD only, and a certificate under client_ca gets only the
// roles its sync.clients entry names. Peers: node:tls and plain TCP, openssl s_client, curl, and the
// reference puller (`penstockctl journal pull`) as a process.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { execFile, spawn } from 'node:child_process';
import { fingerprintOf, makeClientCert, makeTestPki, type CertPair, type TestPki } from '../sync/certs.ts';
import { freePort } from '../support.ts';
import { NODE, ROOT, startDaemon, tempDir, until, type CtlResult, type DaemonProcess } from './daemon-harness.ts';

const tmp = tempDir('penstock-e2e-pull-hostile-');
let pki: TestPki;
let auditor: CertPair;
let stranger: CertPair;
let daemon: DaemonProcess;
let syncPort: number;

function config(auditorRoles = '[read]'): string {
  return `appliance: { id: e2e-hostile-gw, site: Test, zone: dmz, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
journal: { checkpoint_every: 5, checkpoint_seconds: 1 }
sync:
  host: 127.0.0.1
  port: ${syncPort}
  tls: { cert: ${pki.server.certPath}, key: ${pki.server.keyPath}, client_ca: ${pki.ca.certPath} }
  clients:
    - { name: central-pam, fingerprint: "${fingerprintOf(pki.client)}", roles: [read, ack] }
    - { name: auditor, subject: "CN=auditor", roles: ${auditorRoles} }
`;
}

interface JournalRow {
  seq: number;
  event: { event: string; listener?: string; detail?: { remote?: string; reason?: string; folded?: number; reasons?: Record<string, number> } };
}

async function syncRefusals(): Promise<JournalRow['event'][]> {
  const { events } = await daemon.json<{ events: JournalRow[] }>(['journal', 'tail', '--count', '2000']);
  return events.map((e) => e.event).filter((e) => e.event === 'auth.failed' && e.listener === 'sync');
}

/** How many refusals the events stand for: one each, or the number folded into an aggregate. */
const represented = (events: JournalRow['event'][]) => events.reduce((n, e) => n + Math.max(1, e.detail?.folded ?? 0), 0);

function run(cmd: string, args: string[], input = ''): Promise<CtlResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

function pull(out: string): Promise<CtlResult> {
  return new Promise((resolve) => {
    const child = spawn(NODE, [join(ROOT, 'src/cli/penstockctl.ts'), 'journal', 'pull', `https://127.0.0.1:${syncPort}`,
      '--cert', pki.client.certPath, '--key', pki.client.keyPath, '--ca', pki.ca.certPath, '--out', out, '--vkey', join(tmp.dir, 'appliance.vkey')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function curl(client: CertPair, method: string, path: string, body?: string): Promise<{ status: number; json: { error?: { code: string } } & Record<string, unknown> }> {
  const args = ['-sS', '--cacert', pki.ca.certPath, '--cert', client.certPath, '--key', client.keyPath, '-X', method,
    '-w', '\n%{http_code}', `https://127.0.0.1:${syncPort}${path}`];
  if (body !== undefined) args.push('-H', 'content-type: application/json', '--data', body);
  return run('curl', args).then((r) => {
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    return { status: Number(lines.pop()), json: JSON.parse(lines.join('\n')) };
  });
}

/** One refused handshake: plain TCP speaking HTTP, or TLS with a client certificate from another CA. */
function refusedHandshake(kind: 'plain' | 'wrong-ca'): Promise<void> {
  return new Promise((resolve) => {
    const socket = kind === 'plain'
      ? tcpConnect(syncPort, '127.0.0.1', () => socket.write('GET /v1/checkpoint HTTP/1.1\r\nhost: x\r\n\r\n'))
      : tlsConnect({ host: '127.0.0.1', port: syncPort, ca: pki.ca.cert, cert: pki.untrustedClient.cert, key: pki.untrustedClient.key, servername: 'localhost' }, () => socket.write('GET / HTTP/1.1\r\n\r\n'));
    socket.on('error', () => {});
    socket.on('data', () => {});
    socket.once('close', () => resolve());
  });
}

before(async () => {
  pki = makeTestPki();
  auditor = makeClientCert(pki, 'auditor', 'auditor');
  stranger = makeClientCert(pki, 'stranger', 'stranger');
  syncPort = await freePort();
  daemon = await startDaemon(tmp.dir, config());
  const key = await daemon.ctl(['journal', 'key']);
  assert.equal(key.code, 0, key.stderr);
  writeFileSync(join(tmp.dir, 'appliance.vkey'), key.stdout.trim());
});

after(async () => {
  await daemon?.stop();
  pki?.cleanup();
  tmp.cleanup();
});

test('300 refused handshakes (plain TCP and a certificate from another CA) add a handful of journal events that say how many were folded', { timeout: 120_000 }, async (t) => {
  assert.equal((await syncRefusals()).length, 0);
  const kinds = Array.from({ length: 300 }, (_, i): 'plain' | 'wrong-ca' => (i % 2 === 0 ? 'plain' : 'wrong-ca'));
  // Four at a time: below the per-source connection cap, so every one is a handshake refusal.
  for (let i = 0; i < kinds.length; i += 4) await Promise.all(kinds.slice(i, i + 4).map(refusedHandshake));
  // The aggregate is journaled when the fold interval (10 s) ends.
  const events = await until(async () => {
    const e = await syncRefusals();
    return represented(e) >= 300 ? e : undefined;
  }, 'the folded refusals to be journaled', 40_000);
  t.diagnostic(`${events.length} auth.failed events for 300 refused handshakes`);
  assert.ok(events.length <= 5, `${events.length} events for 300 refusals`);
  assert.equal(represented(events), 300);
  const aggregate = events.find((e) => (e.detail?.folded ?? 0) > 0)!;
  assert.ok(aggregate, 'one event carries the folded count');
  assert.equal(aggregate.detail?.remote, '127.0.0.1');
  const reasons = aggregate.detail?.reasons ?? {};
  assert.equal(Object.values(reasons).reduce((a, b) => a + b, 0), aggregate.detail?.folded);
  assert.ok((reasons.UNABLE_TO_VERIFY_LEAF_SIGNATURE ?? 0) > 100, JSON.stringify(reasons));
});

test('40 connections held open from 127.0.0.2 do not lock the real puller out from 127.0.0.1', { timeout: 120_000 }, async () => {
  // The attacker keeps 40 idle TCP connections open, reopening any the gateway closes.
  const sockets = new Set<Socket>();
  let stopped = false;
  let maxHeld = 0;
  const open = (): void => {
    if (stopped) return;
    const s = tcpConnect({ host: '127.0.0.1', port: syncPort, localAddress: '127.0.0.2' });
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => {
      sockets.delete(s);
      setTimeout(open, 50);
    });
  };
  for (let i = 0; i < 40; i++) open();
  const counter = setInterval(() => (maxHeld = Math.max(maxHeld, sockets.size)), 20);
  try {
    await until(() => sockets.size === 40 || undefined, 'the 40 idle connections to be open', 5_000).catch(() => {});
    const r = await pull(join(tmp.dir, 'pam-under-load'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pulled|cursor|\d/);
  } finally {
    stopped = true;
    clearInterval(counter);
    for (const s of sockets) s.destroy();
  }
  assert.ok(maxHeld >= 8, `the attacker held ${maxHeld} connections`);
});

test('TLS 1.2 offers ECDHE with AEAD only: CBC/SHA-1, CBC/SHA-2, ARIA and CCM suites are refused (openssl s_client)', { timeout: 120_000 }, async () => {
  const sClient = (cipher: string) => run('openssl', ['s_client', '-connect', `127.0.0.1:${syncPort}`, '-tls1_2', '-cipher', cipher, '-brief',
    '-CAfile', pki.ca.certPath, '-cert', pki.client.certPath, '-key', pki.client.keyPath]);
  for (const cipher of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
    const r = await sClient(cipher);
    assert.equal(r.code, 0, `${cipher}: ${r.stderr}`);
    assert.match(r.stderr + r.stdout, new RegExp(`Ciphersuite: ${cipher}`), cipher);
  }
  for (const cipher of ['AES128-SHA', 'ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384', 'ECDHE-ECDSA-ARIA128-GCM-SHA256', 'ECDHE-ECDSA-AES128-CCM']) {
    const r = await sClient(cipher);
    assert.notEqual(r.code, 0, `${cipher} was accepted: ${r.stderr}`);
    assert.doesNotMatch(r.stderr + r.stdout, /Ciphersuite:/, cipher);
  }
});

test('sync.clients: a read-only client cannot acknowledge, an unlisted certificate under client_ca gets nothing (curl)', { timeout: 120_000 }, async () => {
  const before = await daemon.json<{ acknowledged: number }>(['journal', 'status']);
  const cp = await curl(auditor, 'GET', '/v1/checkpoint');
  assert.equal(cp.status, 200);
  const size = cp.json.size as number;
  const ack = await curl(auditor, 'POST', '/v1/ack', JSON.stringify({ seq: size - 1, checkpoint_size: size }));
  assert.equal(ack.status, 403);
  assert.equal(ack.json.error?.code, 'forbidden');
  const unknown = await curl(stranger, 'GET', '/v1/checkpoint');
  assert.equal(unknown.status, 403);
  assert.equal(unknown.json.error?.code, 'unknown_client');
  const after = await daemon.json<{ acknowledged: number; first_retained: number }>(['journal', 'status']);
  assert.equal(after.acknowledged, before.acknowledged, 'the refused ack moved nothing');
  // central PAM itself may: the same request succeeds with its certificate.
  const ok = await curl(pki.client, 'POST', '/v1/ack', JSON.stringify({ seq: size - 1, checkpoint_size: size }));
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
});

test('a reload that changes sync.clients applies to the next request', { timeout: 120_000 }, async () => {
  const cp = await curl(auditor, 'GET', '/v1/checkpoint');
  const size = cp.json.size as number;
  writeFileSync(daemon.configFile, config('[read, ack]'));
  const reload = await daemon.ctl(['config', 'reload']);
  assert.equal(reload.code, 0, reload.stdout + reload.stderr);
  const ack = await curl(auditor, 'POST', '/v1/ack', JSON.stringify({ seq: size - 1, checkpoint_size: size }));
  assert.equal(ack.status, 200, JSON.stringify(ack.json));
  writeFileSync(daemon.configFile, config('[read]'));
  assert.equal((await daemon.ctl(['config', 'reload'])).code, 0);
  const again = await curl(auditor, 'POST', '/v1/ack', JSON.stringify({ seq: size - 1, checkpoint_size: size }));
  assert.equal(again.status, 403);
  assert.equal(again.json.error?.code, 'forbidden');
});
