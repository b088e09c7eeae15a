// Credentials come from files named in the config: a NATS server that admits only an nkey user lets the
// collector in with its seed file, and the seed never reaches a log line. Without it, start-up fails.
// Also: the buffer bound (collector.max_pending_events) stops an appliance that never checkpoints.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createUser } from '@nats-io/nkeys';
import { nkeyAuthenticator } from '@nats-io/transport-node';
import { startCollector } from '../../src/collector/collector.ts';
import { collectorConfigSchema } from '../../src/collector/config.ts';
import { ApplianceVerifier } from '../../src/collector/verifier.ts';
import { isPenstockError } from '../../src/common/errors.ts';
import { startNats, type NatsCluster } from '../peers/nats-server.ts';
import { startPostgres, type Postgres } from '../peers/postgres.ts';
import { tempDir, until } from '../support.ts';
import { Publisher, appendEvents, applianceRow, dbClient, openAppliance, quietLog, type Peers } from './harness.ts';

const user = createUser();
const seed = new TextDecoder().decode(user.getSeed());
let nats: NatsCluster;
let pgServer: Postgres;
let dir: string;
let cleanup: () => void;

before(async () => {
  nats = await startNats({ extraConfig: `authorization { users = [ { nkey: ${user.getPublicKey()} } ] }` });
  pgServer = await startPostgres();
  ({ dir, cleanup } = tempDir('penstock-collector-auth-'));
});
after(async () => {
  await nats?.stop();
  await pgServer?.stop();
  cleanup?.();
});

test('an nkey seed file admits the collector; the seed never appears in its log', async () => {
  const seedFile = join(dir, 'collector.nk');
  writeFileSync(seedFile, `${seed}\n`, { mode: 0o600 });
  const db = await pgServer.createDatabase('auth');
  const peers = { nats, pg: pgServer, dir } as Peers;
  const a = await openAppliance(peers, 'gw-auth');
  await appendEvents(a, 200, 100);
  const raw = (nats_: Record<string, unknown>) => ({ collector: { id: 'ca' }, nats: { servers: nats.urls, ...nats_ }, postgres: { url: db }, appliances: [{ id: a.id, vkey: a.vkey }] });
  let logged = '';
  const log = pino({ level: 'debug' }, new Writable({ write(chunk, _enc, cb) { logged += chunk.toString(); cb(); } }));

  // Without credentials the server refuses, and start-up says so.
  await assert.rejects(startCollector(collectorConfigSchema.parse(raw({})), quietLog), /Authorization|authorization/);

  const collector = await startCollector(collectorConfigSchema.parse(raw({ nkey_seed_file: seedFile })), log);
  const pub = await Publisher.connect({ nats }, { authenticator: nkeyAuthenticator(user.getSeed()) });
  const client = await dbClient(db);
  try {
    await pub.publishJournal(a);
    await until(async () => (await applianceRow(client, a.id))?.next_seq === '200', 'verified through an nkey-authenticated connection', 30_000);
    assert.ok(logged.length > 0);
    assert.ok(!logged.includes(seed), 'the seed is not in the log');
    assert.ok(!logged.includes(seed.slice(2, 20)), 'nor any part of it');
  } finally {
    await client.end();
    await pub.close();
    await collector.close();
    await a.journal.close();
  }
});

test('past max_pending_events without a checkpoint the appliance stops with PS_COLLECTOR_BUFFER_FULL', () => {
  const v = new ApplianceVerifier('gw-b', 'gw-b+00000000+AA==', { next: 0, frontier: [], rootHash: null, streamSeq: 0 }, 100);
  const body = (seq: number) => Buffer.from(JSON.stringify({ appliance: 'gw-b', code: 'PS3001I', event: 'action.allowed', seq, time: '2026-12-05T10:00:00.000Z' }));
  for (let seq = 0; seq < 100; seq++) assert.equal(v.onEvent(seq, body(seq), seq + 1).kind, 'pending');
  const r = v.onEvent(100, body(100), 101);
  assert.equal(r.kind, 'violation');
  assert.ok(r.kind === 'violation' && isPenstockError(r.violation, 'PS_COLLECTOR_BUFFER_FULL'));
  assert.equal(r.kind === 'violation' && r.violation.details.seq, 100);
  // A resend of a buffered event with the same bytes is dropped; with other bytes it is tamper.
  assert.equal(v.onEvent(5, body(5), 200).kind, 'duplicate');
  const other = v.onEvent(5, Buffer.from(body(5).toString().replace('PS3001I', 'PS3002I')), 201);
  assert.ok(other.kind === 'violation' && isPenstockError(other.violation, 'PS_COLLECTOR_ALTERED'));
});
