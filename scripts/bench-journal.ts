// Journal benchmark (not a test): append rates, verify rate, proof sizes and times, bytes per event, and
// the data file's growth per event before and after a verify.
//   node scripts/bench-journal.ts            one table for people (append rates with each append's wait, p50/p99, and CPU per append) (PENSTOCK_BENCH_MAX=1000000 sets the largest tree)
//   node scripts/bench-journal.ts --json     also one JSON line (prefixed `BENCH_JOURNAL_JSON `) for scripts/bench.ts
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../src/common/clock.ts';
import { generateSigningKeyPem } from '../src/journal/checkpoint.ts';
import { LmdbJournal } from '../src/journal/journal.ts';
import { leafHash, verifyConsistency, verifyInclusion } from '../src/journal/merkle.ts';

const MAX = Number(process.env.PENSTOCK_BENCH_MAX ?? 1_000_000);
const dir = mkdtempSync(join(process.env.PENSTOCK_BENCH_DIR ?? tmpdir(), 'penstock-bench-'));
const journal = await LmdbJournal.open({
  path: dir,
  mapSizeMiB: 4096,
  appliance: 'penstock/gw-bench-01',
  signingKeyPem: generateSigningKeyPem(),
  clock: systemClock,
  checkpointEvery: 10_000,
  checkpointSeconds: 10,
});

const event = (i: number) => ({
  event: 'action.allowed' as const,
  session: `sess-${i % 97}`,
  principal: 'vendor-acme',
  chain: ['vendor-acme', 'work-order:WO-4411'],
  target: 'plc-boiler-1',
  listener: 'modbus-main',
  action: { target: 'plc-boiler-1', verb: 'write' as const, object: { kind: 'modbus' as const, unit: 1, functionCode: 6, table: 'holding_register' as const, address: 40010 + (i % 50), quantity: 1, values: [i % 65536] } },
  decision: { effect: 'allow' as const, reason: 'rule_allows' as const, grant: 'g-4411', rule: 'g-4411#2', explanation: 'rule 2 of grant g-4411 allows writes to 40010-40060' },
});

const JSON_OUT = process.argv.includes('--json');
const fileBytes = () => statSync(join(dir, 'data.mdb')).size;
const rows: [string, string][] = [];
const figures: Record<string, unknown> = {};
const perSecond = (n: number, ms: number) => Math.round((n / ms) * 1000);
const rate = (n: number, ms: number) => `${perSecond(n, ms).toLocaleString('en-US')}/s`;
const record = (key: string, label: string, n: number, ms: number) => {
  figures[key] = perSecond(n, ms);
  rows.push([label, rate(n, ms)]);
};

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]!;
const micros = (ms: number) => `${Math.round(ms * 1000).toLocaleString('en-US')} µs`;
/** Times each append from its call to its resolution (durably committed), and the process's CPU per append (every thread). */
async function appendRun(key: string, label: string, writers: number, perWriter: number): Promise<void> {
  const latencies: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: writers }, async (_, w) => {
    for (let i = 0; i < perWriter; i++) {
      const t = performance.now();
      await journal.append(event(w * perWriter + i));
      latencies.push(performance.now() - t);
    }
  }));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const n = writers * perWriter;
  latencies.sort((a, b) => a - b);
  figures[`${key}P50Us`] = Math.round(quantile(latencies, 0.5) * 1000);
  figures[`${key}P99Us`] = Math.round(quantile(latencies, 0.99) * 1000);
  figures[`${key}CpuUsPerAppend`] = Number(((cpu.user + cpu.system) / n).toFixed(1));
  record(key, label, n, ms);
  rows.push([`  one append's wait (call → durable), p50 / p99`, `${micros(quantile(latencies, 0.5))} / ${micros(quantile(latencies, 0.99))}`]);
  rows.push([`  CPU per append (all threads, user + system)`, `${figures[`${key}CpuUsPerAppend`]} µs`]);
}
await appendRun('appendsPerSecOneAtATime', 'appends/s, one at a time (each awaited: one durable commit each)', 1, 2000);
for (const writers of [64, 1024]) {
  await appendRun(`appendsPerSec${writers}Concurrent`, `appends/s, ${writers} concurrent appenders (each awaits its own)`, writers, Math.ceil(100_000 / writers));
}
// Grow to the largest tree in bursts of grouped appends, then measure proofs at each power of ten.
const t1 = performance.now();
let grown = 0;
while (journal.size() < MAX) {
  const burst = Math.min(10_000, MAX - journal.size());
  await Promise.all(Array.from({ length: burst }, (_, i) => journal.append(event(i))));
  grown += burst;
}
if (grown > 0) record('appendsPerSecBursts', `appends/s, bursts of 10,000 in flight (${grown.toLocaleString('en-US')} events)`, grown, performance.now() - t1);
journal.checkpoint();
{
  const t0 = performance.now();
  const v = journal.verifyAll();
  if (!v.ok) throw new Error(`verify failed: ${v.problem}`);
  record('verifyEventsPerSec', `verifyAll events/s (${v.size.toLocaleString('en-US')} events, every hash, node and checkpoint)`, v.size, performance.now() - t0);
}
{
  const h = journal.health();
  figures.events = h.size;
  figures.accountedBytesPerEvent = Math.round(h.bytes / h.size);
  figures.fileBytesPerEvent = Math.round(fileBytes() / h.size);
  rows.push(['journal bytes/event (event body + tree nodes + checkpoints, as accounted)', String(figures.accountedBytesPerEvent)]);
  rows.push(['LMDB file bytes/event (data.mdb, with page overhead)', String(figures.fileBytesPerEvent)]);
}
{
  // The file before and after a verify, as `penstockctl journal verify` runs it (worker thread): what
  // 3,000 writes, one commit each, add to data.mdb. A read transaction a verify leaves open stops LMDB
  // reusing pages, and the growth per event jumps (it was ~25 KB instead of ~1 KB).
  const n = 3000;
  const growthPerEvent = async (): Promise<number> => {
    const before = fileBytes();
    for (let i = 0; i < n; i++) await journal.append(event(i));
    return Math.round((fileBytes() - before) / n);
  };
  figures.fileGrowthPerEventBeforeVerify = await growthPerEvent();
  const t0 = performance.now();
  const v = await journal.verify();
  if (!v.ok) throw new Error(`verify failed: ${v.problem}`);
  record('verifyWorkerEventsPerSec', `verify in the worker thread, events/s (${v.size.toLocaleString('en-US')} events)`, v.size, performance.now() - t0);
  figures.fileGrowthPerEventAfterVerify = await growthPerEvent();
  figures.fileBytesPerEventAfterVerify = Math.round(fileBytes() / journal.size());
  const h = journal.health();
  figures.lmdbPages = h.lmdb.pages;
  figures.lmdbFreePages = h.lmdb.freePages;
  rows.push([`data.mdb growth per event, ${n.toLocaleString('en-US')} single appends before a verify`, `${figures.fileGrowthPerEventBeforeVerify} B`]);
  rows.push([`data.mdb growth per event, ${n.toLocaleString('en-US')} single appends after a verify`, `${figures.fileGrowthPerEventAfterVerify} B`]);
  rows.push(['LMDB file bytes/event after the verify and those appends', String(figures.fileBytesPerEventAfterVerify)]);
  rows.push(['LMDB pages in the file / free for reuse (journal status)', `${h.lmdb.pages.toLocaleString('en-US')} / ${h.lmdb.freePages.toLocaleString('en-US')}`]);
}
const proofs: Record<string, unknown>[] = [];
const proofRows: string[] = [];
for (let n = 1000; n <= MAX; n *= 10) {
  const reps = 200;
  const root = journal.rootAt(n);
  let incBytes = 0, incMake = 0, incVerify = 0, conBytes = 0, conMake = 0, conVerify = 0;
  const oldRoot = journal.rootAt(n >> 1);
  for (let r = 0; r < reps; r++) {
    const seq = Math.floor(Math.random() * n);
    let t = performance.now();
    const proof = journal.inclusionProof(seq, n);
    incMake += performance.now() - t;
    incBytes = Math.max(incBytes, proof.length * 32);
    const leaf = leafHash(Buffer.from(journal.readEvents(seq, 1)[0]!.bytes));
    t = performance.now();
    if (!verifyInclusion(seq, n, leaf, proof, root)) throw new Error('inclusion failed');
    incVerify += performance.now() - t;
    const old = 1 + Math.floor(Math.random() * (n - 1));
    t = performance.now();
    const cproof = journal.consistencyProof(old, n);
    conMake += performance.now() - t;
    if (r === 0) {
      const half = journal.consistencyProof(n >> 1, n);
      conBytes = half.length * 32;
      if (!verifyConsistency(n >> 1, n, oldRoot, root, half)) throw new Error('consistency failed');
    }
    const oldR = journal.rootAt(old);
    t = performance.now();
    if (!verifyConsistency(old, n, oldR, root, cproof)) throw new Error('consistency failed');
    conVerify += performance.now() - t;
  }
  const perRep = (ms: number) => Number(((ms / reps) * 1000).toFixed(1));
  proofs.push({ treeSize: n, inclusionBytes: incBytes, inclusionMakeUs: perRep(incMake), inclusionVerifyUs: perRep(incVerify), consistencyBytes: conBytes, consistencyMakeUs: perRep(conMake), consistencyVerifyUs: perRep(conVerify) });
  proofRows.push(`| ${n.toLocaleString('en-US')} | ${incBytes} B | ${perRep(incMake)} µs | ${perRep(incVerify)} µs | ${conBytes} B | ${perRep(conMake)} µs | ${perRep(conVerify)} µs |`);
}
figures.proofs = proofs;
await journal.close();

console.log('\nPenstock journal benchmark');
console.log('| measurement | result |\n| --- | --- |');
for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
console.log('\n| tree size | inclusion proof | make | verify | consistency proof (n/2 → n) | make | verify |');
console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of proofRows) console.log(r);
if (JSON_OUT) console.log(`BENCH_JOURNAL_JSON ${JSON.stringify(figures)}`);
rmSync(dir, { recursive: true, force: true });
