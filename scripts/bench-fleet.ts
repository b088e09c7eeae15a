// Fleet figures (issue 16): N simulated gateways — each a real LmdbJournal with its own signing key and
// the real pusher, all in this process — against a three-node JetStream cluster on loopback (nats-server,
// stream replicated three ways), and the real `penstock-collector` (the bin, its own process) verifying
// into PostgreSQL. Not a test: nothing asserts a time. Phases:
//   1. backlog: every gateway holds one hour of evidence at BACKLOG_RATE events/s, written while it had
//      no link; then the links come up: how long until JetStream holds it all, and until PostgreSQL does
//      (the collector's verify rate);
//   2. steady: every gateway journals RATE events/s for SECONDS: end-to-end events/s and lag (time from
//      the append on the gateway to the verified row in PostgreSQL);
//   3. the same load while the stream's leader node is SIGKILLed, then started again: lag, and whether
//      everything still arrives exactly once.
//   PENSTOCK_BENCH_FLEET_GATEWAYS=20 PENSTOCK_BENCH_FLEET_RATE=50 PENSTOCK_BENCH_FLEET_SECONDS=20
//   PENSTOCK_BENCH_FLEET_BACKLOG_RATE=5 PENSTOCK_BENCH_FLEET_COLLECTORS=1
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { systemClock } from '../src/common/clock.ts';
import { pushSchema } from '../src/config/push.ts';
import { DEFAULT_STREAM } from '../src/fleet/wire.ts';
import { generateSigningKeyPem } from '../src/journal/checkpoint.ts';
import { LmdbJournal } from '../src/journal/journal.ts';
import { startPusher, type Pusher } from '../src/push/pusher.ts';
import { startNats } from '../test/peers/nats-server.ts';
import { startPostgres } from '../test/peers/postgres.ts';
import { tempDir } from '../test/support.ts';

const GATEWAYS = Number(process.env.PENSTOCK_BENCH_FLEET_GATEWAYS ?? 20);
const RATE = Number(process.env.PENSTOCK_BENCH_FLEET_RATE ?? 50);
const SECONDS = Number(process.env.PENSTOCK_BENCH_FLEET_SECONDS ?? 20);
const BACKLOG_RATE = Number(process.env.PENSTOCK_BENCH_FLEET_BACKLOG_RATE ?? 5);
const COLLECTORS = Number(process.env.PENSTOCK_BENCH_FLEET_COLLECTORS ?? 1);
const ROOT = new URL('../', import.meta.url).pathname;
const log = pino({ level: 'error' });

const tmp = tempDir('penstock-bench-fleet-');
const nats = await startNats({ nodes: 3, maxFileStore: '4G' });
const postgres = await startPostgres();
const dbUrl = await postgres.createDatabase('fleet');
const db = new pg.Client({ connectionString: dbUrl });
await db.connect();

interface Gateway {
  id: string;
  journal: LmdbJournal;
  pusher?: Pusher;
  /** [seq, ms when appended] every SAMPLE_EVERY seqs of the measured phases. */
  samples: [number, number][];
}

const gateways: Gateway[] = [];
for (let i = 0; i < GATEWAYS; i++) {
  const id = `gw-${String(i + 1).padStart(3, '0')}`;
  const journal = await LmdbJournal.open({
    path: join(tmp.dir, id), mapSizeMiB: 2048, appliance: id, signingKeyPem: generateSigningKeyPem(),
    clock: systemClock, checkpointEvery: 1000, checkpointSeconds: 60,
  });
  gateways.push({ id, journal, samples: [] });
}

let counter = 0;
/** An event the size of a real allowed Modbus write (about 600 bytes of canonical JSON). */
const appendOne = (g: Gateway) => g.journal.append({
  event: 'action.allowed', session: `s-${counter % 13}`, principal: `vendor-${counter % 7}`, target: `plc-${counter % 5}`, listener: 'mb',
  detail: { n: counter++, ticket: 'WO-4411', note: 'bench load: one holding register written through the Modbus front door' },
});

const collectorFile = join(tmp.dir, 'collector.yaml');
writeFileSync(join(tmp.dir, 'pg-url'), `${dbUrl}\n`, { mode: 0o600 });
writeFileSync(collectorFile, `collector: { id: central }
nats: { servers: [${nats.urls.map((u) => `"${u}"`).join(', ')}] }
stream: { create: true, replicas: 3 }
postgres: { url_file: ${join(tmp.dir, 'pg-url')} }
appliances:
${gateways.map((g) => `  - { id: ${g.id}, vkey: "${g.journal.publicKeyVkey()}" }`).join('\n')}
`);
const collectors: ChildProcess[] = [];
const startCollectorProcess = () => {
  const child = spawn(join(ROOT, 'bin/penstock-collector'), ['run', '--config', collectorFile], {
    stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, PENSTOCK_LOG_LEVEL: 'error' },
  });
  collectors.push(child);
};

const verified = async (): Promise<Map<string, number>> => {
  try {
    const r = await db.query<{ appliance: string; next_seq: string }>('SELECT appliance, next_seq FROM appliances');
    return new Map(r.rows.map((row) => [row.appliance, Number(row.next_seq)]));
  } catch {
    return new Map();
  }
};
const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
const totalSize = () => gateways.reduce((a, g) => a + g.journal.size(), 0);
const pushedTotal = () => gateways.reduce((a, g) => a + g.journal.cursor('push') + 1, 0);
const rssMiB = (pid: number) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};
const waitFor = async (probe: () => boolean | Promise<boolean>, limitMs: number): Promise<boolean> => {
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    if (await probe()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
};

console.log(`fleet: ${GATEWAYS} gateways (journal + pusher, one process), 3-node JetStream cluster (R3 stream), ${COLLECTORS} collector(s) into PostgreSQL`);

// ---- 1. one hour of backlog on every gateway, written with no link
const backlogPer = BACKLOG_RATE * 3600;
let t = performance.now();
for (const g of gateways) {
  for (let i = 0; i < backlogPer; i += 5000) await Promise.all(Array.from({ length: Math.min(5000, backlogPer - i) }, () => appendOne(g)));
  g.journal.checkpoint();
}
const backlogTotal = totalSize();
console.log(`backlog: ${backlogTotal.toLocaleString('en-US')} events (${GATEWAYS} x ${BACKLOG_RATE}/s x 3600 s) journaled offline in ${((performance.now() - t) / 1000).toFixed(1)} s`);

for (let i = 0; i < COLLECTORS; i++) startCollectorProcess();
const pushConfig = pushSchema.parse({ servers: nats.urls, batch_events: 500, checkpoint_seconds: 1 });
t = performance.now();
for (const g of gateways) g.pusher = startPusher({ journal: g.journal, appliance: g.id, config: pushConfig, log });
let pushedAt = 0;
const drained = await waitFor(async () => {
  if (!pushedAt && pushedTotal() >= backlogTotal) pushedAt = performance.now();
  return sum(await verified()) >= backlogTotal;
}, 30 * 60_000);
const drainS = (performance.now() - t) / 1000;
const pushS = ((pushedAt || performance.now()) - t) / 1000;
console.log(`backlog drained: ${drained ? '' : 'NOT '}all verified in ${drainS.toFixed(1)} s; in JetStream after ${pushS.toFixed(1)} s`);
console.log(`  push ${Math.round(backlogTotal / pushS).toLocaleString('en-US')} events/s (fleet); collector verify ${Math.round(backlogTotal / drainS).toLocaleString('en-US')} events/s into PostgreSQL`);

// ---- 2 and 3: steady load; then the stream leader killed under the same load
const SAMPLE_EVERY = 25;
async function steady(label: string, during?: () => Promise<void>): Promise<void> {
  for (const g of gateways) g.samples = [];
  const startSize = totalSize();
  const startVerified = sum(await verified());
  let running = true;
  const tickMs = 100;
  const perTick = RATE * (tickMs / 1000);
  let carry = 0;
  const load = (async () => {
    let next = performance.now();
    while (running) {
      carry += perTick;
      const n = Math.floor(carry);
      carry -= n;
      await Promise.all(gateways.map(async (g) => {
        for (let i = 0; i < n; i++) {
          const { seq } = await appendOne(g);
          if (seq % SAMPLE_EVERY === 0) g.samples.push([seq, performance.now()]);
        }
      }));
      next += tickMs;
      await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
    }
  })();
  let stoppedAt = 0;
  const lags: number[] = [];
  const seen = new Map<string, number>();
  let maxBehind = 0;
  const poll = (async () => {
    while (running || sum(await verified()) < totalSize()) {
      const v = await verified();
      const now = performance.now();
      for (const g of gateways) {
        const upTo = v.get(g.id) ?? 0;
        let i = seen.get(g.id) ?? 0;
        while (i < g.samples.length && g.samples[i]![0] < upTo) lags.push(now - g.samples[i++]![1]);
        seen.set(g.id, i);
      }
      maxBehind = Math.max(maxBehind, totalSize() - sum(v));
      if (!running && performance.now() - stoppedAt > 120_000) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const t0 = performance.now();
  const duringDone = during?.();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  await duringDone;
  running = false;
  stoppedAt = performance.now();
  await load;
  // Let the last events be covered by a checkpoint and verified.
  for (const g of gateways) g.journal.checkpoint();
  await poll;
  const elapsed = (performance.now() - t0) / 1000;
  const appended = totalSize() - startSize;
  const done = sum(await verified()) - startVerified;
  lags.sort((a, b) => a - b);
  const q = (p: number) => (lags.length ? lags[Math.min(lags.length - 1, Math.floor(p * lags.length))]! : NaN);
  console.log(`${label}: ${appended.toLocaleString('en-US')} events appended (${GATEWAYS} x ${RATE}/s), ${done.toLocaleString('en-US')} verified; end-to-end ${Math.round(done / elapsed).toLocaleString('en-US')} events/s over ${elapsed.toFixed(1)} s`);
  console.log(`  lag append -> verified row: p50 ${(q(0.5) / 1000).toFixed(2)} s, p99 ${(q(0.99) / 1000).toFixed(2)} s, max ${(q(1) / 1000).toFixed(2)} s (${lags.length} samples); most events behind at once: ${maxBehind.toLocaleString('en-US')}`);
}

await steady('steady');

const nc = await connect({ servers: nats.urls });
const jsm = await jetstreamManager(nc);
const leaderName = (await jsm.streams.info(DEFAULT_STREAM)).cluster?.leader;
const leader = nats.nodes.find((n) => n.name === leaderName) ?? nats.nodes[0]!;
await nc.close();
await steady(`stream leader ${leader.name} SIGKILLed under load`, async () => {
  await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 4));
  await leader.kill();
  const killedAt = performance.now();
  await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 2));
  await leader.start();
  console.log(`  (leader down ${((performance.now() - killedAt) / 1000).toFixed(1)} s, then started again)`);
});

// ---- exactly once, everywhere
const v = await verified();
const counts = await db.query<{ appliance: string; n: string; max: string }>('SELECT appliance, count(*) AS n, max(seq) AS max FROM events GROUP BY appliance');
let exact = true;
for (const g of gateways) {
  const row = counts.rows.find((r) => r.appliance === g.id);
  const n = Number(row?.n ?? 0);
  if (n !== v.get(g.id) || Number(row?.max ?? -1) !== n - 1) exact = false;
}
console.log(`exactly once: ${exact ? 'every verified seq stored once, no gaps' : 'MISMATCH between rows and verified positions'}; ${sum(v).toLocaleString('en-US')} of ${totalSize().toLocaleString('en-US')} events verified`);
console.log(`RSS: bench process (${GATEWAYS} journals + pushers) ${rssMiB(process.pid).toFixed(0)} MiB; collector ${collectors.map((c) => `${rssMiB(c.pid!).toFixed(0)} MiB`).join(', ')}; nats-server ${nats.nodes.map((n) => (n.pid ? `${rssMiB(n.pid).toFixed(0)}` : '-')).join('/')} MiB`);

for (const g of gateways) await g.pusher?.close();
for (const c of collectors) c.kill('SIGTERM');
await Promise.all(collectors.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
for (const g of gateways) await g.journal.close();
await db.end();
await nats.stop();
await postgres.stop();
tmp.cleanup();
