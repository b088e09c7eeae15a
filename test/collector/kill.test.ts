// Kill safety: collectors run as child processes (src/collector/main.ts, as the bin runs it) and are
// SIGKILLed at random moments during a burst of thousands of events; restarted, they end with every
// seq of every appliance in PostgreSQL exactly once, byte-identical, verified. Two collectors at once
// share the appliances through their advisory locks, and when one is killed the other takes its share.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { stringify } from 'yaml';
import { APPLIANCE_LOCK_CLASS } from '../../src/collector/schema.ts';
import { until } from '../support.ts';
import { Publisher, appendEvents, applianceRow, dbClient, openAppliance, startPeers, type Appliance, type Peers } from './harness.ts';

const NODE = join(import.meta.dirname, '../../node_modules/.bin/node');
const MAIN = join(import.meta.dirname, '../../src/collector/main.ts');

let peers: Peers;
before(async () => {
  peers = await startPeers();
});
after(async () => {
  await peers?.stop();
});

function writeConfig(name: string, db: string, appliances: readonly Appliance[], id: string): string {
  const file = join(peers.dir, `${name}-${id}.yaml`);
  writeFileSync(file, stringify({
    collector: { id, lock_retry_seconds: 0.3 },
    nats: { servers: peers.nats.urls },
    stream: { create: true },
    postgres: { url: db },
    appliances: appliances.map((a) => ({ id: a.id, vkey: a.vkey })),
  }));
  return file;
}

interface Child {
  proc: ChildProcess;
  log: () => string;
  exited: Promise<number | null>;
}

function spawnCollector(config: string): Child {
  const proc = spawn(NODE, [MAIN, 'run', '--config', config, '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr!.on('data', (c: Buffer) => {
    log += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, log: () => log, exited };
}

async function kill(c: Child): Promise<void> {
  c.proc.kill('SIGKILL');
  await c.exited;
}

/** Every seq 0..n-1 exactly once per appliance, bodies identical to the journal, position at n. */
async function assertComplete(client: pg.Client, apps: readonly Appliance[], n: number): Promise<void> {
  for (const a of apps) {
    const r = await client.query('SELECT count(*) AS n, count(DISTINCT seq) AS d, min(seq) AS lo, max(seq) AS hi FROM events WHERE appliance = $1', [a.id]);
    assert.deepEqual({ ...r.rows[0] }, { n: String(n), d: String(n), lo: '0', hi: String(n - 1) }, a.id);
    const bodies = (await client.query('SELECT body FROM events WHERE appliance = $1 ORDER BY seq', [a.id])).rows.map((x) => x.body as string);
    const journal = a.journal.readEvents(0, n).map((e) => e.bytes);
    assert.ok(bodies.every((b, i) => b === journal[i]), `${a.id}: every body byte-identical`);
    const row = (await applianceRow(client, a.id))!;
    assert.equal(row.state, 'running', JSON.stringify(row.stop_detail));
    assert.equal(row.next_seq, String(n));
  }
}

const allVerified = (client: pg.Client, apps: readonly Appliance[], n: number) => async () => {
  // A stop is a failure at once (an honest fleet must never be stopped), not a time-out later.
  const stopped = (await client.query(`SELECT appliance, stop_detail FROM appliances WHERE state = 'stopped'`)).rows;
  if (stopped.length > 0) throw new Error(`an honest appliance was stopped: ${JSON.stringify(stopped)}`);
  const r = await client.query('SELECT count(*) AS n FROM appliances WHERE next_seq = $1', [n]);
  return Number(r.rows[0].n) === apps.length ? true : undefined;
};

async function appliances(prefix: string, count: number, events: number, every: number): Promise<Appliance[]> {
  const apps: Appliance[] = [];
  for (let i = 0; i < count; i++) {
    const a = await openAppliance(peers, `${prefix}-${i}`);
    await appendEvents(a, events, every);
    apps.push(a);
  }
  return apps;
}

test('SIGKILL of the collector at random moments during a burst: every seq exactly once, verified', async () => {
  const db = await peers.pg.createDatabase('kill');
  const N = 3000;
  const apps = await appliances('gw-kill', 3, N, 250);
  const config = writeConfig('kill', db, apps, 'ck');
  const client = await dbClient(db);
  const pub = await Publisher.connect(peers);
  let child = spawnCollector(config);
  try {
    await pub.streamReady();
    // The burst, published while collectors are killed and restarted under it; pipelined, so events of
    // the next checkpoint often sit before the checkpoint in the stream.
    const burst = Promise.all(apps.map((a) => pub.publishJournal(a, { pipeline: true })));
    let kills = 0;
    for (let round = 0; round < 6; round++) {
      await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * 900)));
      await kill(child);
      kills++;
      child = spawnCollector(config);
    }
    await burst;
    await until(allVerified(client, apps, N), 'every appliance verified to the end', 120_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${child.log().slice(-3000)}`);
    });
    assert.equal(kills, 6);
    await assertComplete(client, apps, N);
    const alerts = (await client.query('SELECT count(*) AS n FROM collector_alerts')).rows[0].n;
    assert.equal(alerts, '0');
  } finally {
    await kill(child);
    await client.end();
    await pub.close();
    for (const a of apps) await a.journal.close();
  }
});

test('two collectors share the appliances; when one is killed the other takes its share', async () => {
  const db = await peers.pg.createDatabase('shared');
  const N = 2000;
  const apps = await appliances('gw-shared', 6, N, 200);
  const client = await dbClient(db);
  const pub = await Publisher.connect(peers);
  const one = spawnCollector(writeConfig('shared', db, apps, 'one'));
  const two = spawnCollector(writeConfig('shared', db, apps, 'two'));
  const holders = async () => (await client.query<{ pid: number; n: string }>(
    `SELECT pid, count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid AND granted GROUP BY pid`, [APPLIANCE_LOCK_CLASS])).rows;
  try {
    await pub.streamReady();
    // Both come up and split the six appliances three and three.
    const split = await until(async () => {
      const h = await holders();
      return h.length === 2 && h.every((x) => x.n === '3') ? h : undefined;
    }, 'the appliances split between the two collectors', 30_000);
    assert.equal(split.length, 2);
    const burst = Promise.all(apps.map((a) => pub.publishJournal(a, { pipeline: true })));
    await new Promise((r) => setTimeout(r, 500 + Math.floor(Math.random() * 500)));
    await kill(one);
    // The survivor takes all six.
    await until(async () => {
      const h = await holders();
      return h.length === 1 && h[0]!.n === '6' ? true : undefined;
    }, 'the surviving collector holds every appliance', 30_000);
    await burst;
    await until(allVerified(client, apps, N), 'every appliance verified to the end', 120_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${two.log().slice(-3000)}`);
    });
    await assertComplete(client, apps, N);
    assert.match(one.log(), /appliance taken/);
    assert.match(two.log(), /appliance taken/);
  } finally {
    await kill(one);
    await kill(two);
    await client.end();
    await pub.close();
    for (const a of apps) await a.journal.close();
  }
});

test('PostgreSQL killed and NATS restarted under the collector: it carries on from the stored position', async () => {
  const db = await peers.pg.createDatabase('outage');
  const N = 2000;
  const apps = await appliances('gw-outage', 2, N, 200);
  const child = spawnCollector(writeConfig('outage', db, apps, 'co'));
  const pub = await Publisher.connect(peers);
  try {
    await pub.streamReady();
    // Running before the outage (a collector that cannot reach PostgreSQL at start-up exits, for systemd to restart).
    await until(() => /collector started/.test(child.log()), 'the collector running', 30_000);
    await Promise.all(apps.map((a) => pub.publishJournal(a, { toSize: 1000, pipeline: true })));
    // PostgreSQL dies mid-flow (every backend with it: the collector's locks and pool) and comes back.
    await peers.pg.kill();
    await new Promise((r) => setTimeout(r, 500));
    await peers.pg.start();
    // NATS restarts on the same store.
    await peers.nats.nodes[0]!.stop();
    await peers.nats.nodes[0]!.start();
    const pub2 = await Publisher.connect(peers);
    try {
      await Promise.all(apps.map((a) => pub2.publishJournal(a, { fromSize: 1000, pipeline: true })));
    } finally {
      await pub2.close();
    }
    // The peer's start() may resolve on the first start's "ready" line (it matches the log's tail): wait
    // until the server really takes connections again.
    const client = await until(() => dbClient(db).catch(() => undefined), 'PostgreSQL back', 30_000);
    try {
      await until(allVerified(client, apps, N), 'every appliance verified after the outages', 120_000).catch((err) => {
        throw new Error(`${(err as Error).message}\n${child.log().slice(-3000)}`);
      });
      await assertComplete(client, apps, N);
    } finally {
      await client.end();
    }
  } finally {
    await kill(child);
    await pub.close().catch(() => {});
    for (const a of apps) await a.journal.close();
  }
});
