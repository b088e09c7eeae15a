// OPC UA figures, side by side in one run: a node-opcua client against the plant server
// (test/adapters/opcua/fixtures/plant.ts, its own process) directly, and through Penstock's OPC UA front
// door (real core, LMDB journal and vault, its own process). Both paths use SignAndEncrypt with
// Basic256Sha256 (the gateway also re-encrypts toward the plant). Ratios are through / direct.
//
//   node scripts/bench-opcua.ts [--seconds N] [--json] [--gateway-flags="--max-semi-space-size=2"]
//
// --gateway-flags: V8/Node flags for the gateway process only (what the systemd unit would pass).
//
// Figures: reads/s of one node, nodes/s in 100-node batches, write round trip, subscription notification
// latency (a write on the plant to the notification at the client), and the gateway's RSS with 20 OPC UA
// sessions open (each with a live subscription). Nothing here asserts a time.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { AttributeIds, DataType, TimestampsToReturn, UserTokenType, Variant, MessageSecurityMode, SecurityPolicy, type ClientSession, type DataValue } from 'node-opcua';
import { connect, freePort, makeIdentity, makeVault, tempDir } from '../test/adapters/opcua/fixtures/harness.ts';
import { hashOpcuaPassword } from '../src/adapters/opcua/identity.ts';

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '3' }, json: { type: 'boolean', default: false }, 'gateway-flags': { type: 'string', default: '' } } });
const GATEWAY_FLAGS = args['gateway-flags'].split(/\s+/).filter(Boolean);
const SECONDS = Number(args.seconds);
const root = join(new URL('.', import.meta.url).pathname, '..');
const tmp = tempDir('penstock-bench-opcua-');
const children: ChildProcess[] = [];
let closing = false;

/** JSON lines a child printed after `ready`, by child. */
const messages = new Map<ChildProcess, (msg: Record<string, unknown>) => void>();

function start(argv: string[]): Promise<{ child: ChildProcess; ready: Record<string, unknown> }> {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv.find((a) => !a.startsWith('-'))} did not become ready`)), 90_000);
    child.once('exit', (code) => reject(new Error(`${argv.find((a) => !a.startsWith('-'))} exited ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const msg = JSON.parse(line) as Record<string, unknown>;
      messages.get(child)?.(msg);
      if (msg.ready) {
        clearTimeout(timer);
        resolve({ child, ready: msg });
      }
    });
    let stderrTail = '';
    child.stderr!.on('data', (b: Buffer) => (stderrTail = (stderrTail + b.toString()).slice(-4000)));
    child.once('exit', (code, signal) => {
      if (!closing) console.error(`${argv.find((a) => !a.startsWith('-'))} exited (${code ?? signal}) during the run:\n${stderrTail}`);
    });
  });
}

/** The gateway's own account of its memory (gateway-main.ts answers SIGUSR2). */
function memoryOf(child: ChildProcess): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ unavailable: 'no answer to SIGUSR2' }), 5000);
    messages.set(child, (msg) => {
      if (!msg.memory) return;
      clearTimeout(timer);
      messages.delete(child);
      resolve(msg.memory as Record<string, unknown>);
    });
    child.kill('SIGUSR2');
  });
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

async function loop(fn: () => Promise<void>): Promise<{ ops: number; perSecond: number }> {
  const end = performance.now() + SECONDS * 1000;
  let ops = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    await fn();
    ops++;
  }
  return { ops, perSecond: ops / ((performance.now() - t0) / 1000) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface Figures {
  single_reads_per_s: number;
  batch_nodes_per_s: number;
  /** 100-node batches with 4 requests in flight on the session (what a historian or SCADA poller does). */
  batch4_nodes_per_s: number;
  write_rtt_ms: number;
  notification_ms: number;
}

/** `id(path)` turns a browse path below Objects (`Bench/V000`) into the node id on that side. */
async function measure(read: ClientSession, writer: ClientSession, id: (path: string) => string): Promise<Figures> {
  const v0 = id('Bench/V000');
  const batch = Array.from({ length: 100 }, (_, i) => ({ nodeId: id(`Bench/V${String(i).padStart(3, '0')}`), attributeId: AttributeIds.Value }));
  for (let i = 0; i < 20; i++) await read.read({ nodeId: v0, attributeId: AttributeIds.Value }); // warm-up
  const single = await loop(async () => {
    const dv = await read.read({ nodeId: v0, attributeId: AttributeIds.Value });
    if (!dv.statusCode.isGood()) throw new Error(`read failed: ${dv.statusCode.name}`);
  });
  const batched = await loop(async () => {
    const dvs = await read.read(batch);
    if (!dvs.every((d) => d.statusCode.isGood())) throw new Error('batch read failed');
  });
  const batched4 = await loop(async () => {
    const all = await Promise.all([read.read(batch), read.read(batch), read.read(batch), read.read(batch)]);
    if (!all.every((dvs) => dvs.every((d) => d.statusCode.isGood()))) throw new Error('batch read failed');
  });
  const rtts: number[] = [];
  let k = 0;
  await loop(async () => {
    const t = performance.now();
    const [s] = await read.write([{ nodeId: id('Boiler/Setpoint'), attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.Double, value: 10 + (k++ % 50) }) } }]);
    if (!s!.isGood()) throw new Error(`write failed: ${s!.name}`);
    rtts.push(performance.now() - t);
  });
  // Notification latency: the knob is written on the plant directly (`writer`), watched via `read`.
  const sub = await read.createSubscription2({ requestedPublishingInterval: 10, requestedMaxKeepAliveCount: 100, requestedLifetimeCount: 1000, publishingEnabled: true });
  const item = await sub.monitor({ nodeId: id('Bench/Knob'), attributeId: AttributeIds.Value }, { samplingInterval: 0, queueSize: 10 }, TimestampsToReturn.Both);
  const waiters = new Map<number, (t: number) => void>();
  item.on('changed', (dv: DataValue) => waiters.get(dv.value.value as number)?.(performance.now()));
  await new Promise((r) => setTimeout(r, 300));
  const lat: number[] = [];
  for (let i = 1; i <= 40; i++) {
    const value = 1000 + i + Math.random();
    const got = new Promise<number>((resolve) => waiters.set(value, resolve));
    const t = performance.now();
    await writer.write([{ nodeId: 'ns=1;s=Bench.Knob', attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.Double, value }) } }]);
    lat.push((await got) - t);
    waiters.delete(value);
  }
  await sub.terminate();
  return { single_reads_per_s: single.perSecond, batch_nodes_per_s: batched.perSecond * 100, batch4_nodes_per_s: batched4.perSecond * 400, write_rtt_ms: median(rtts), notification_ms: median(lat) };
}

try {
  const [plantPort, gwPort] = [await freePort(), await freePort()];
  const plant = await start([join(root, 'test/adapters/opcua/fixtures/plant.ts'), String(plantPort), join(tmp.dir, 'plant')]);
  const app = await makeIdentity(tmp.dir, 'bench-client');
  const password = 'bench-password';
  const vault = makeVault(tmp.dir, { 'bench-opcua': hashOpcuaPassword(password) });
  writeFileSync(join(tmp.dir, 'penstock.yaml'), `
appliance: { id: gw-bench, site: bench, zone: plant, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
journal: { path: ${tmp.dir}/journal }
vault: { file: ${vault.file}, key_file: ${vault.keyFile} }
sessions: { actions_per_second: 1000000 }
listeners:
  - { id: opcua-bench, protocol: opcua, host: 127.0.0.1, port: ${gwPort}, targets: [plant], trusted_clients: [${app.certFile}], max_sessions: 64 }
principals:
  - { id: bench-vendor, kind: vendor, owner: bench, purpose: benchmark, credentials: { opcua_user: { username: bench, password: "vault:bench-opcua" } } }
targets:
  - { id: plant, protocol: opcua, zone: plant, endpoint: "opc.tcp://127.0.0.1:${plantPort}", server_certificate: ${String(plant.ready.cert)} }
grants:
  - id: g-bench
    principal: bench-vendor
    targets: [plant]
    task: { ticket: BENCH-1 }
    rules:
      - opcua: { verbs: [browse, read, subscribe], browse_paths: [Objects/Bench, Objects/Boiler] }
      - opcua: { verbs: [write], nodes: ["ns=1;s=plant/Boiler/Setpoint"], min: 0, max: 100 }
`);
  const gateway = await start([...GATEWAY_FLAGS, join(root, 'test/adapters/opcua/fixtures/gateway-main.ts'), tmp.dir]);
  const gwPid = Number(gateway.ready.pid);
  const rssIdle = rssMiB(gwPid);
  const memoryIdle = await memoryOf(gateway.child);

  const sign = { mode: MessageSecurityMode.SignAndEncrypt, policy: SecurityPolicy.Basic256Sha256 };
  const direct = await connect(String(plant.ready.endpoint), { identity: app, user: { type: UserTokenType.Anonymous }, ...sign });
  const writer = await connect(String(plant.ready.endpoint), { identity: app, user: { type: UserTokenType.Anonymous }, ...sign });
  const through = await connect(String(gateway.ready.endpoint), { identity: app, user: { type: UserTokenType.UserName, userName: 'bench', password }, ...sign });

  // The plant's ids are dotted; the gateway's are `<target>/<browse path>`.
  const d = await measure(direct.session, writer.session, (p) => `ns=1;s=${p.replace(/\//g, '.')}`);
  const g = await measure(through.session, writer.session, (p) => `ns=1;s=plant/${p}`);

  // RSS with 20 sessions, each with a live subscription on the drum level.
  const extra = [];
  for (let i = 0; i < 19; i++) extra.push(await connect(String(gateway.ready.endpoint), { identity: app, user: { type: UserTokenType.UserName, userName: 'bench', password }, ...sign }));
  for (const c of [through, ...extra]) {
    const sub = await c.session.createSubscription2({ requestedPublishingInterval: 250, requestedMaxKeepAliveCount: 20, requestedLifetimeCount: 200, publishingEnabled: true });
    await sub.monitor({ nodeId: 'ns=1;s=plant/Boiler/Drum/Level', attributeId: AttributeIds.Value }, { samplingInterval: 0, queueSize: 1 }, TimestampsToReturn.Both);
    await c.session.read({ nodeId: 'ns=1;s=plant/Bench/V000', attributeId: AttributeIds.Value });
  }
  await new Promise((r) => setTimeout(r, 1000));
  const rss20 = rssMiB(gwPid);
  const memory20 = await memoryOf(gateway.child);
  const plantRss = rssMiB(Number(plant.ready.pid));

  const result = {
    seconds_per_cell: SECONDS,
    gateway_flags: GATEWAY_FLAGS,
    direct: d,
    through_penstock: g,
    ratio: {
      single_reads: g.single_reads_per_s / d.single_reads_per_s,
      batch_reads: g.batch_nodes_per_s / d.batch_nodes_per_s,
      batch_reads_4_in_flight: g.batch4_nodes_per_s / d.batch4_nodes_per_s,
      write_rtt: g.write_rtt_ms / d.write_rtt_ms,
      notification_latency: g.notification_ms / d.notification_ms,
    },
    gateway_rss_mib: { idle_after_start: rssIdle, with_20_sessions: rss20 },
    gateway_memory_mib: { idle_after_start: memoryIdle, with_20_sessions: memory20 },
    plant_rss_mib: plantRss,
  };
  if (args.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    const f = (n: number, digits = 0) => n.toFixed(digits).padStart(10);
    console.log('OPC UA (SignAndEncrypt / Basic256Sha256 on both legs)      direct   penstock     ratio');
    console.log(`  reads/s, one node                                   ${f(d.single_reads_per_s)} ${f(g.single_reads_per_s)} ${f(result.ratio.single_reads, 2)}`);
    console.log(`  nodes/s, 100-node batches                           ${f(d.batch_nodes_per_s)} ${f(g.batch_nodes_per_s)} ${f(result.ratio.batch_reads, 2)}`);
    console.log(`  nodes/s, 100-node batches, 4 in flight              ${f(d.batch4_nodes_per_s)} ${f(g.batch4_nodes_per_s)} ${f(result.ratio.batch_reads_4_in_flight, 2)}`);
    console.log(`  write round trip, median ms                         ${f(d.write_rtt_ms, 2)} ${f(g.write_rtt_ms, 2)} ${f(result.ratio.write_rtt, 2)}`);
    console.log(`  notification latency, median ms                     ${f(d.notification_ms, 2)} ${f(g.notification_ms, 2)} ${f(result.ratio.notification_latency, 2)}`);
    if (GATEWAY_FLAGS.length > 0) console.log(`  gateway flags: ${GATEWAY_FLAGS.join(' ')}`);
    console.log(`  gateway RSS: ${rssIdle.toFixed(0)} MiB after start, ${rss20.toFixed(0)} MiB with 20 sessions (plant server: ${plantRss.toFixed(0)} MiB)`);
    const heap = (m: Record<string, unknown>) => `V8 heap ${String(m.heap_used)} used of ${String(m.heap_total)}, external ${String(m.external)}`;
    console.log(`  gateway memory (MiB): after start ${heap(memoryIdle)}; with 20 sessions ${heap(memory20)}`);
  }
  for (const c of [direct, writer, through, ...extra]) await c.close();
} finally {
  closing = true;
  for (const c of children) {
    if (c.exitCode === null) {
      c.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
        c.once('exit', () => {
          clearTimeout(t);
          r(undefined);
        });
      });
    }
  }
  tmp.cleanup();
}
