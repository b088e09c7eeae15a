// The collector's verify rate on this machine: events/s from JetStream into PostgreSQL, verified, for
// one collector with 1 appliance and with 20. The evidence is published first (the collector not yet
// running), so the figure is the drain rate of a backlog, not the publisher's speed.
//
//   node_modules/.bin/node test/collector/verify-rate.ts [EVENTS_TOTAL] [CHECKPOINT_EVERY]
import { startCollector } from '../../src/collector/collector.ts';
import { ensureStream } from '../../src/collector/connect.ts';
import { until } from '../support.ts';
import { Publisher, appendEvents, collectorConfig, dbClient, openAppliance, quietLog, startPeers, type Appliance } from './harness.ts';

const TOTAL = Number(process.argv[2] ?? 60_000);
const EVERY = Number(process.argv[3] ?? 1000);

const peers = await startPeers();
try {
  for (const count of [1, 20]) {
    const per = Math.floor(TOTAL / count);
    const db = await peers.pg.createDatabase(`rate_${count}`);
    const apps: Appliance[] = [];
    for (let i = 0; i < count; i++) {
      const a = await openAppliance(peers, `gw-rate-${count}-${i}`);
      await appendEvents(a, per, EVERY);
      apps.push(a);
    }
    const pub = await Publisher.connect(peers);
    const config = collectorConfig(peers, db, apps, { id: 'rate' });
    // The stream as the collector would make it, so that the backlog is there before the collector is.
    await ensureStream(pub.nc, config, quietLog);
    const t0 = Date.now();
    await Promise.all(apps.map((a) => pub.publishJournal(a)));
    const publishSeconds = (Date.now() - t0) / 1000;
    const client = await dbClient(db);
    const started = Date.now();
    const collector = await startCollector(config, quietLog);
    await until(async () => Number((await client.query('SELECT count(*) AS n FROM appliances WHERE next_seq = $1', [per])).rows[0].n) === count || undefined, 'all verified', 600_000);
    const seconds = (Date.now() - started) / 1000;
    const events = Number((await client.query('SELECT count(*) AS n FROM events')).rows[0].n);
    console.log(JSON.stringify({ appliances: count, events, checkpoint_every: EVERY, seconds: Number(seconds.toFixed(2)), events_per_second: Math.round(events / seconds), publish_seconds: Number(publishSeconds.toFixed(2)) }));
    await collector.close();
    await client.end();
    await pub.close();
    for (const a of apps) await a.journal.close();
  }
} finally {
  await peers.stop();
}
