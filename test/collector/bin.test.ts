// The shipped bin (bin/penstock-collector on dist/, as `npm test` builds it): `schema` applies twice,
// `run` starts and stops cleanly on SIGTERM, a config error is reported with its line, and an appliance
// stopped because the pinned key was wrong is shown by `status` and picked up again after `resume`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { startCollector } from '../../src/collector/collector.ts';
import { collectorConfigSchema } from '../../src/collector/config.ts';
import { generateSigningKeyPem, NoteSigner } from '../../src/journal/checkpoint.ts';
import { until } from '../support.ts';
import { Publisher, appendEvents, applianceRow, dbClient, openAppliance, quietLog, startPeers, type Peers } from './harness.ts';

const BIN = join(import.meta.dirname, '../../bin/penstock-collector');
const run = promisify(execFile);

let peers: Peers;
before(async () => {
  assert.ok(existsSync(join(import.meta.dirname, '../../dist/collector/main.js')), 'dist/ is built (npm run build)');
  peers = await startPeers();
});
after(async () => {
  await peers?.stop();
});

async function bin(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(BIN, args, { timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('schema prints SQL that applies twice (idempotent)', async () => {
  const { code, stdout } = await bin(['schema']);
  assert.equal(code, 0);
  assert.match(stdout, /CREATE TABLE IF NOT EXISTS events/);
  const db = await dbClient(await peers.pg.createDatabase('schema'));
  try {
    await db.query(stdout);
    await db.query(stdout);
    const tables = (await db.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)).rows.map((r) => r.tablename);
    assert.deepEqual(tables, ['appliances', 'checkpoints', 'collector_alerts', 'events']);
  } finally {
    await db.end();
  }
});

test('a config error: exit 2, FILE:LINE:COL and the field, nothing started', async () => {
  const file = join(peers.dir, 'bad.yaml');
  writeFileSync(file, 'collector:\n  id: c1\nnats:\n  servers: [nats://127.0.0.1:1]\n  creds: x\npostgres:\n  url: postgres://u@h/db\nappliances: []\n');
  const r = await bin(['run', '--config', file]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`${file}:5:3: nats.creds: unknown field`));
  assert.match(r.stderr, new RegExp(`${file}:8:1: appliances: list at least one appliance`));
});

test('run starts, and stops cleanly on SIGTERM', async () => {
  const db = await peers.pg.createDatabase('sigterm');
  const a = await openAppliance(peers, 'gw-term');
  const file = join(peers.dir, 'term.yaml');
  writeFileSync(file, stringify({ collector: { id: 'ct' }, nats: { servers: peers.nats.urls }, postgres: { url: db }, appliances: [{ id: a.id, vkey: a.vkey }] }));
  const child = spawn(BIN, ['run', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (c: Buffer) => {
    log += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await until(() => /collector started/.test(log), 'collector started', 30_000);
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000, 'still running'))]);
    assert.equal(code, 0, log);
    assert.match(log, /collector stopped/);
  } finally {
    child.kill('SIGKILL');
    await a.journal.close();
  }
});

test('a wrong pinned key stops the appliance; status shows it; after the key is fixed, resume verifies everything', async () => {
  const db = await peers.pg.createDatabase('resume');
  const a = await openAppliance(peers, 'gw-rekeyed');
  await appendEvents(a, 300, 100);
  const wrongKey = new NoteSigner(a.id, generateSigningKeyPem()).vkey;
  const raw = (vkey: string) => ({ collector: { id: 'cr', lock_retry_seconds: 0.3 }, nats: { servers: peers.nats.urls }, postgres: { url: db }, appliances: [{ id: a.id, vkey }] });
  const file = join(peers.dir, 'resume.yaml');
  writeFileSync(file, stringify(raw(wrongKey)));
  let collector = await startCollector(collectorConfigSchema.parse(raw(wrongKey)), quietLog);
  const pub = await Publisher.connect(peers);
  const client = await dbClient(db);
  try {
    await pub.publishJournal(a);
    await until(async () => (await applianceRow(client, a.id))?.state === 'stopped', 'stopped on the wrong key', 30_000);
    const st = await bin(['status', '--config', file, '--json']);
    assert.equal(st.code, 0, st.stderr);
    const shown = JSON.parse(st.stdout).appliances[0];
    assert.equal(shown.state, 'stopped');
    assert.equal(shown.stop_reason, 'PS_COLLECTOR_BAD_SIGNATURE');
    assert.equal(shown.verified_seq, -1);
    assert.equal(shown.stop_detail.checkpoint_size, 100);
    assert.equal(shown.lag_messages, 303, 'every message is still ahead of the stored position');
    const text = await bin(['status', '--config', file]);
    assert.match(text.stdout, /gw-rekeyed {2}stopped .*PS_COLLECTOR_BAD_SIGNATURE/);

    // The operator pins the right key, restarts, and resumes.
    await collector.close();
    writeFileSync(file, stringify(raw(a.vkey)));
    collector = await startCollector(collectorConfigSchema.parse(raw(a.vkey)), quietLog);
    const r = await bin(['resume', a.id, '--config', file]);
    assert.equal(r.code, 0, r.stderr);
    await until(async () => (await applianceRow(client, a.id))?.next_seq === '300', 'verified after resume', 30_000);
    const alerts = (await client.query('SELECT code, detail FROM collector_alerts WHERE appliance = $1 ORDER BY id', [a.id])).rows;
    assert.deepEqual(alerts.map((x) => x.code), ['PS_COLLECTOR_BAD_SIGNATURE', 'resumed']);
    assert.equal(alerts[1].detail.was.reason, 'PS_COLLECTOR_BAD_SIGNATURE');
    const after = JSON.parse((await bin(['status', '--config', file, '--json'])).stdout).appliances[0];
    assert.deepEqual([after.state, after.verified_seq, after.checkpoint_size, after.lag_messages], ['running', 299, 300, 0]);
    assert.equal((await bin(['resume', a.id, '--config', file])).code, 1, 'nothing to resume');
  } finally {
    await client.end();
    await pub.close();
    await collector.close();
    await a.journal.close();
  }
});
