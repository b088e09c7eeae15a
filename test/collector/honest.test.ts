// An honest appliance's evidence, published as src/fleet/wire.ts says, lands in PostgreSQL verified:
// every event byte-identical to what the appliance hashed, every checkpoint, queries by principal and
// target; and the stream order within a checkpoint does not matter (events are placed by seq).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCollector } from '../../src/collector/collector.ts';
import { until } from '../support.ts';
import { Publisher, appendEvents, applianceRow, collectorConfig, dbClient, eventCount, openAppliance, quietLog, startPeers, type Peers } from './harness.ts';

let peers: Peers;
before(async () => {
  peers = await startPeers();
});
after(async () => {
  await peers?.stop();
});

test('an honest appliance: every event and checkpoint lands in PostgreSQL, byte-identical, queryable by principal and target', async () => {
  const db = await peers.pg.createDatabase('honest');
  const a = await openAppliance(peers, 'penstock/gw-honest-01');
  await appendEvents(a, 700);
  await appendEvents(a, 300);
  const collector = await startCollector(collectorConfig(peers, db, [a]), quietLog);
  const pub = await Publisher.connect(peers);
  const client = await dbClient(db);
  try {
    await pub.publishJournal(a);
    await until(async () => (await applianceRow(client, a.id))?.next_seq === '1000', 'all 1000 events verified', 30_000);
    const rows = (await client.query('SELECT seq, body, principal, target, code, event, time FROM events WHERE appliance = $1 ORDER BY seq', [a.id])).rows;
    const journal = a.journal.readEvents(0, 1000);
    assert.equal(rows.length, 1000);
    rows.forEach((r, i) => {
      assert.equal(Number(r.seq), i);
      assert.equal(r.body, journal[i]!.bytes, `body of seq ${i} byte-identical`);
    });
    const cps = (await client.query('SELECT size, note FROM checkpoints WHERE appliance = $1 ORDER BY size', [a.id])).rows;
    assert.deepEqual(cps.map((c) => [Number(c.size), c.note]), a.journal.checkpoints().map((c) => [c.size, c.note]));
    const row = (await applianceRow(client, a.id))!;
    assert.equal(row.state, 'running');
    assert.equal(row.checkpoint_size, '1000');
    // "Everything principal P did on target T", against the appliance's own bodies.
    const pt = (await client.query(`SELECT seq FROM events WHERE principal = 'p1' AND target = 't0' ORDER BY time, seq`)).rows.map((r) => Number(r.seq));
    const expected = journal.filter((e) => { const b = JSON.parse(e.bytes); return b.principal === 'p1' && b.target === 't0'; }).map((e) => e.seq);
    assert.ok(expected.length > 100);
    assert.deepEqual(pt, expected);
    const plan = (await client.query(`EXPLAIN SELECT * FROM events WHERE principal = 'p1' AND target = 't0' ORDER BY time`)).rows.map((r) => r['QUERY PLAN']).join('\n');
    assert.match(plan, /events_principal_target_time|Seq Scan/, plan);
    // Status from the running collector.
    const st = collector.status().appliances[0]!;
    assert.equal(st.held, true);
    assert.ok(st.held && st.verified === 1000 && st.pending === 0);

    // A resend of everything (the duplicate window cannot help: other msg ids) changes nothing.
    for (const e of a.journal.readEvents(0, 50)) await pub.event(a.id, e.seq, e.bytes, { msgId: `resend-${e.seq}` });
    await appendEvents(a, 10);
    await pub.publishJournal(a, { fromSize: 1000 });
    await until(async () => (await applianceRow(client, a.id))?.next_seq === '1010', 'the next checkpoint after the resends', 30_000);
    assert.equal(await eventCount(client, a.id), 1010);
    assert.equal((await applianceRow(client, a.id))!.state, 'running');
  } finally {
    await client.end();
    await pub.close();
    await collector.close();
    await a.journal.close();
  }
});

test('transport reorder within a checkpoint (same labels, other stream order) is accepted', async () => {
  const db = await peers.pg.createDatabase('reorder_ok');
  const a = await openAppliance(peers, 'gw-shuffled');
  await appendEvents(a, 300);
  const collector = await startCollector(collectorConfig(peers, db, [a]), quietLog);
  const pub = await Publisher.connect(peers);
  const client = await dbClient(db);
  try {
    // Reversed, labels intact: a retry after a cut can leave events in any order below their checkpoint.
    await pub.publishJournal(a, { mutate: (events) => [...events].reverse() });
    await until(async () => (await applianceRow(client, a.id))?.next_seq === '300', 'the reversed events verified', 30_000);
    const bodies = (await client.query('SELECT body FROM events WHERE appliance = $1 ORDER BY seq', [a.id])).rows.map((r) => r.body);
    assert.deepEqual(bodies, a.journal.readEvents(0, 300).map((e) => e.bytes));
  } finally {
    await client.end();
    await pub.close();
    await collector.close();
    await a.journal.close();
  }
});
