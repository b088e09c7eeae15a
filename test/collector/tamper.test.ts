// A hostile appliance, played by the test's own publisher: each kind of tampering stops that appliance
// alone, with the spot named in its appliances row and in an alert row, while an honest appliance on
// the same collector keeps flowing. Each hostile appliance first publishes one honest checkpoint
// (size 100), so the tampering always meets a verified tree.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { startCollector, type Collector } from '../../src/collector/collector.ts';
import { generateSigningKeyPem, NoteSigner } from '../../src/journal/checkpoint.ts';
import { until } from '../support.ts';
import { Publisher, appendEvents, applianceRow, collectorConfig, dbClient, eventCount, openAppliance, quietLog, startPeers, type Appliance, type Peers } from './harness.ts';

interface Hostile extends Appliance {
  key: string;
}

let peers: Peers;
let pub: Publisher;
let client: pg.Client;
let collector: Collector;
let honest: Appliance;
const hostile = new Map<string, Hostile>();
const CASES = ['altered', 'missing', 'swapped', 'relabelled', 'other-key', 'rollback', 'fork', 'foreign', 'resend-altered'] as const;

before(async () => {
  peers = await startPeers();
  const db = await peers.pg.createDatabase('tamper');
  honest = await openAppliance(peers, 'gw-honest');
  for (const c of CASES) {
    const key = generateSigningKeyPem();
    const a = { ...(await openAppliance(peers, `gw-${c}`, key)), key };
    await appendEvents(a, 100);
    await appendEvents(a, 100);
    hostile.set(c, a);
  }
  collector = await startCollector(collectorConfig(peers, db, [honest, ...hostile.values()]), quietLog);
  pub = await Publisher.connect(peers);
  client = await dbClient(db);
  // Every appliance's first checkpoint is honest.
  for (const a of hostile.values()) await pub.publishJournal(a, { toSize: 100 });
  for (const a of hostile.values()) await until(async () => (await applianceRow(client, a.id))?.next_seq === '100', `${a.id} at its first checkpoint`, 30_000);
});

after(async () => {
  await client?.end();
  await pub?.close();
  await collector?.close();
  for (const a of [honest, ...hostile.values()]) await a?.journal.close();
  await peers?.stop();
});

/** The second segment of a hostile appliance (events 100..199, then checkpoint 200), rewritten by `mutate`. */
async function publishSecond(a: Appliance, mutate: (events: { seq: number; bytes: string; headerSeq?: number }[]) => { seq: number; bytes: string; headerSeq?: number }[]): Promise<void> {
  await pub.publishJournal(a, { fromSize: 100, mutate: (events) => mutate(events) });
}

async function stopped(a: Appliance, code: string): Promise<{ detail: Record<string, unknown>; alert: Record<string, unknown> }> {
  const row = await until(async () => {
    const r = await applianceRow(client, a.id);
    return r?.state === 'stopped' ? r : undefined;
  }, `${a.id} stopped`, 30_000);
  assert.equal(row.stop_reason, code, JSON.stringify(row.stop_detail));
  assert.equal(row.next_seq, '100', 'nothing past the verified checkpoint was stored');
  assert.equal(await eventCount(client, a.id), 100);
  const alert = (await client.query('SELECT * FROM collector_alerts WHERE appliance = $1 ORDER BY id', [a.id])).rows;
  assert.equal(alert.length, 1);
  assert.equal(alert[0].code, code);
  assert.equal(alert[0].collector, 'c1');
  assert.equal(alert[0].detail.appliance, a.id);
  assert.deepEqual({ ...alert[0].detail }, { ...row.stop_detail });
  return { detail: row.stop_detail!, alert: alert[0] };
}

const reseq = (bytes: string, from: number, to: number) => bytes.replace(`"seq":${from},`, `"seq":${to},`);

test('an altered event body: stopped at the checkpoint that does not match, seq and stream ranges named', async () => {
  const a = hostile.get('altered')!;
  await publishSecond(a, (events) => events.map((e) => (e.seq === 150 ? { ...e, bytes: e.bytes.replace('"i":50', '"i":5000') } : e)));
  const { detail } = await stopped(a, 'PS_COLLECTOR_ALTERED');
  assert.deepEqual(detail.seq_range, [100, 199]);
  assert.equal(detail.checkpoint_size, 200);
  const [lo, hi] = detail.stream_seq_range as [number, number];
  assert.ok(hi - lo >= 99, 'the stream range covers the 100 events');
});

test('a missing event: "gap: seq 150 missing"', async () => {
  const a = hostile.get('missing')!;
  await publishSecond(a, (events) => events.filter((e) => e.seq !== 150));
  const { detail } = await stopped(a, 'PS_COLLECTOR_GAP');
  assert.equal(detail.seq, 150);
  assert.equal(detail.checkpoint_size, 200);
  assert.match(String(detail.message), /gap: seq 150 missing/);
});

test('two events swapped under their original labels: header seq is not the body seq', async () => {
  const a = hostile.get('swapped')!;
  let streamOf150 = -1;
  await publishSecond(a, (events) => {
    const out = [...events];
    const i = out.findIndex((e) => e.seq === 150);
    const [x, y] = [out[i]!, out[i + 1]!];
    out[i] = { ...y, headerSeq: 150 };
    out[i + 1] = { ...x, headerSeq: 151 };
    return out;
  });
  const { detail } = await stopped(a, 'PS_COLLECTOR_REORDERED');
  assert.equal(detail.seq, 150);
  assert.equal(detail.body_seq, 151);
  streamOf150 = detail.stream_seq as number;
  // The stream sequence named is the message that carried label 150.
  const jsm = await (await import('@nats-io/jetstream')).jetstreamManager(pub.nc);
  const m = await jsm.streams.getMessage('PENSTOCK_EVIDENCE', { seq: streamOf150 });
  assert.equal(m!.header.get('Penstock-Seq'), '150');
});

test('two events swapped and relabelled (bodies and headers agree): only the root catches it', async () => {
  const a = hostile.get('relabelled')!;
  await publishSecond(a, (events) => events.map((e) => {
    if (e.seq === 150) return { seq: 150, bytes: reseq(events.find((x) => x.seq === 151)!.bytes, 151, 150) };
    if (e.seq === 151) return { seq: 151, bytes: reseq(events.find((x) => x.seq === 150)!.bytes, 150, 151) };
    return e;
  }));
  const { detail } = await stopped(a, 'PS_COLLECTOR_ALTERED');
  assert.deepEqual(detail.seq_range, [100, 199]);
});

test('a checkpoint signed by another key (same name, right root) is refused', async () => {
  const a = hostile.get('other-key')!;
  const forger = new NoteSigner(a.id, generateSigningKeyPem());
  for (const e of a.journal.readEvents(100, 100)) await pub.event(a.id, e.seq, e.bytes);
  const cpStream = await pub.checkpoint(a.id, 200, forger.checkpoint(200, a.journal.rootAt(200)));
  const { detail } = await stopped(a, 'PS_COLLECTOR_BAD_SIGNATURE');
  assert.equal(detail.checkpoint_size, 200);
  assert.equal(detail.stream_seq, cpStream);
});

test('a rollback: a validly signed checkpoint smaller than the verified one, never seen before', async () => {
  const a = hostile.get('rollback')!;
  const signer = new NoteSigner(a.id, a.key);
  const cpStream = await pub.checkpoint(a.id, 60, signer.checkpoint(60, a.journal.rootAt(60)));
  const { detail } = await stopped(a, 'PS_COLLECTOR_ROLLBACK');
  assert.equal(detail.checkpoint_size, 60);
  assert.equal(detail.stream_seq, cpStream);
  assert.equal(detail.verified_size, 100);
});

test('a fork: a validly signed checkpoint of the verified size with another root', async () => {
  const a = hostile.get('fork')!;
  const signer = new NoteSigner(a.id, a.key);
  await pub.checkpoint(a.id, 100, signer.checkpoint(100, new Uint8Array(randomBytes(32))), { msgId: 'fork-100' });
  const { detail } = await stopped(a, 'PS_COLLECTOR_FORK');
  assert.equal(detail.checkpoint_size, 100);
});

test('an event of another appliance on this appliance\'s subject', async () => {
  const a = hostile.get('foreign')!;
  const other = hostile.get('altered')!.journal.readEvents(100, 1)[0]!;
  const s = await pub.event(a.id, 100, other.bytes);
  const { detail } = await stopped(a, 'PS_COLLECTOR_FOREIGN');
  assert.equal(detail.seq, 100);
  assert.equal(detail.stream_seq, s);
  assert.equal(detail.body_appliance, 'gw-altered');
});

test('a resend of a stored event with another body is tamper, found at the next checkpoint', async () => {
  const a = hostile.get('resend-altered')!;
  const e = a.journal.readEvents(42, 1)[0]!;
  const s = await pub.event(a.id, 42, e.bytes.replace('"i":42', '"i":43'), { msgId: 'resend-42' });
  await publishSecond(a, (events) => events);
  const { detail } = await stopped(a, 'PS_COLLECTOR_ALTERED');
  assert.equal(detail.seq, 42);
  assert.equal(detail.stream_seq, s);
});

test('the honest appliance kept flowing through all of it', async () => {
  await appendEvents(honest, 250);
  await pub.publishJournal(honest);
  await until(async () => (await applianceRow(client, honest.id))?.next_seq === '250', 'the honest appliance verified', 30_000);
  assert.equal((await applianceRow(client, honest.id))!.state, 'running');
  assert.equal(Number((await client.query(`SELECT count(*) AS n FROM collector_alerts WHERE appliance = $1`, [honest.id])).rows[0].n), 0);
  const st = collector.status().appliances;
  for (const c of CASES) assert.equal(st.find((x) => x.appliance === `gw-${c}`)!.held && (st.find((x) => x.appliance === `gw-${c}`) as { state: string }).state, 'stopped', c);
});
