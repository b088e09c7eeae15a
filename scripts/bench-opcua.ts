// OPC UA figures, side by side in one run: a node-opcua client against the plant server
// (test/adapters/opcua/fixtures/plant.ts, its own process) directly, and through the real Penstock daemon
// (dist/main.js --config FILE with the unit's V8 flags, as bin/penstock and the systemd unit start it:
// real core, LMDB journal, vault, admin socket, OPC UA front door). Both paths use SignAndEncrypt with Basic256Sha256 (the
// gateway also re-encrypts toward the plant). Ratios are through / direct.
//
//   node scripts/bench-opcua.ts [--seconds N] [--json] [--gateway-flags="…"] [--gateway-env="K=V …"]
//                               [--daemon-main FILE] [--heap-spaces] [--profile DIR]
//
// --gateway-flags: Node/V8 flags for the daemon. Default: PENSTOCK_V8_FLAGS of systemd/penstock.service
//   (test/systemd/unit.test.ts checks bin/penstock passes the same). --gateway-flags="" runs none.
// --gateway-env: the daemon's environment settings instead of the unit's (its malloc thresholds), e.g.
//   MALLOC_ARENA_MAX=2 or UV_THREADPOOL_SIZE=2; --gateway-env="" runs without any.
// --daemon-main: the daemon's entry point (default dist/main.js, built by npm ci / npm run build; pass
//   src/main.ts to see what Node's type stripping costs).
// --profile: run the daemon under --cpu-prof, writing its .cpuprofile to DIR when the bench ends (the
//   daemon is stopped first, before the plant, so that it exits on its own and writes the profile), and
//   DIR/phases.json: when each measured loop ran, in the profile's clock (CLOCK_MONOTONIC µs), so that a
//   profile can be cut to one phase (samples between start_us and end_us).
// --heap-spaces: also print V8 heap spaces (a few lines loaded with --import that answer SIGUSR2; off by
//   default so the measured process is exactly the shipped one).
//
// A third column, "relay", is a bare TCP byte relay between the client and the plant (its own Node
// process, nothing decoded): the floor any gateway on this path pays, the extra hop and process. It is
// meaningful with SignAndEncrypt: an OPC UA secure channel is end to end, so through a byte relay the
// client still signs and encrypts for the plant, and only Penstock adds a second channel (decrypt,
// decide, re-encrypt) on top of the hop.
//
// Figures: reads/s of one node, nodes/s in 100-node batches, write round trip, subscription notification
// latency (a write on the plant to the notification at the client), nodes/s when 4 sessions read the same
// 100 nodes at once (reads that arrive together share one upstream read), and the daemon's RSS after start and
// with 20 OPC UA sessions open (each with a live subscription), split into anonymous memory (V8 heap,
// malloc) and file-backed pages (the node binary's text, LMDB's journal map, shared libraries).
// Nothing here asserts a time.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { AttributeIds, DataType, TimestampsToReturn, UserTokenType, Variant, MessageSecurityMode, SecurityPolicy, type ClientSession, type DataValue } from 'node-opcua';
import { connect, freePort, makeIdentity, makeVault, tempDir } from '../test/adapters/opcua/fixtures/harness.ts';
import { hashOpcuaPassword } from '../src/adapters/opcua/identity.ts';
import { opcuaTargetSchema } from '../src/adapters/opcua/schema.ts';
import { shippedDaemon } from './shipped-daemon.ts';

const root = join(new URL('.', import.meta.url).pathname, '..');

const shipped = shippedDaemon(root);

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    'gateway-flags': { type: 'string' },
    'gateway-env': { type: 'string' },
    'daemon-main': { type: 'string', default: shipped.main },
    'heap-spaces': { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});
const GATEWAY_FLAGS = args['gateway-flags'] === undefined ? shipped.flags : args['gateway-flags'].split(/\s+/).filter(Boolean);
const GATEWAY_ENV: Record<string, string> = args['gateway-env'] === undefined ? shipped.env : Object.fromEntries(args['gateway-env'].split(/\s+/).filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
const SECONDS = Number(args.seconds);
const tmp = tempDir('penstock-bench-opcua-');
const children: ChildProcess[] = [];
let closing = false;

/** JSON lines a child prints on stdout, by child. */
const messages = new Map<ChildProcess, (msg: Record<string, unknown>) => void>();
const stderrTails = new Map<ChildProcess, () => string>();

function spawnChild(argv: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const name = relative(root, argv.find((a) => !a.startsWith('-')) ?? '?');
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
  children.push(child);
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('{')) messages.get(child)?.(JSON.parse(line) as Record<string, unknown>);
  });
  let stderrTail = '';
  child.stderr!.on('data', (b: Buffer) => (stderrTail = (stderrTail + b.toString()).slice(-4000)));
  stderrTails.set(child, () => stderrTail);
  child.once('exit', (code, signal) => {
    if (!closing) console.error(`${name} exited (${code ?? signal}) during the run:\n${stderrTail}`);
  });
  return child;
}

/** A child that prints a JSON line with `ready` (the plant). */
function startReporting(argv: string[], env?: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; ready: Record<string, unknown> }> {
  const child = spawnChild(argv, env);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} did not become ready`)), 90_000);
    child.once('exit', (code) => reject(new Error(`${argv.join(' ')} exited ${code}`)));
    messages.set(child, (msg) => {
      if (!msg.ready) return;
      clearTimeout(timer);
      messages.delete(child);
      resolve({ child, ready: msg });
    });
  });
}

/** A bare TCP byte relay to the plant (RELAY_TO), on an ephemeral port it reports as a JSON line. */
const RELAY = `const net = require('node:net');
const to = Number(process.env.RELAY_TO);
const server = net.createServer((c) => {
  const u = net.connect(to, '127.0.0.1');
  c.setNoDelay(true);
  u.setNoDelay(true);
  c.pipe(u);
  u.pipe(c);
  const end = () => { c.destroy(); u.destroy(); };
  c.on('error', end).on('close', end);
  u.on('error', end).on('close', end);
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ ready: true, port: server.address().port })));`;

/** Prints process.memoryUsage and the V8 heap spaces (MiB) as one JSON line on each SIGUSR2. */
const HEAP_SPACES_HOOK = `import v8 from 'node:v8';
const mib = (n) => Math.round((n / 1048576) * 10) / 10;
process.on('SIGUSR2', () => {
  const m = process.memoryUsage();
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().filter((s) => s.physical_space_size > 0).map((s) => [s.space_name, { committed: mib(s.physical_space_size), used: mib(s.space_used_size) }]));
  process.stdout.write(JSON.stringify({ memory: { heap_total: mib(m.heapTotal), heap_used: mib(m.heapUsed), external: mib(m.external), array_buffers: mib(m.arrayBuffers), malloced: mib(v8.getHeapStatistics().malloced_memory), spaces } }) + '\\n');
});`;

/** V8's own account of the daemon's memory (only with --heap-spaces: without the hook SIGUSR2 would kill it). */
function heapSpacesOf(child: ChildProcess): Promise<Record<string, unknown> | undefined> {
  if (!args['heap-spaces']) return Promise.resolve(undefined);
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

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const KB = (text: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) / 1024;
const round1 = (n: number) => Math.round(n * 10) / 10;

interface RssSplit {
  rss: number;
  /** Peak RSS so far (VmHWM). */
  peak: number;
  anon: number;
  file: number;
  shmem: number;
  /** Resident MiB of the largest file-backed mappings, by file (node binary, data.mdb, …). */
  files: Record<string, number>;
}

/** RSS and its split, in MiB, from /proc (what the kernel and a cgroup limit see). */
function rssOf(pid: number): RssSplit {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const byFile = new Map<string, number>();
  let current: string | undefined;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) current = head[1]!.startsWith('/') ? head[1]! : undefined;
    else if (current && line.startsWith('Rss:')) byFile.set(current, (byFile.get(current) ?? 0) + KB(line, 'Rss'));
  }
  const files = Object.fromEntries([...byFile].filter(([, mib]) => mib >= 0.5).sort((a, b) => b[1] - a[1]).map(([f, mib]) => [f.replace(tmp.dir, '$TMP'), round1(mib)]));
  return { rss: round1(KB(status, 'VmRSS')), peak: round1(KB(status, 'VmHWM')), anon: round1(KB(status, 'RssAnon')), file: round1(KB(status, 'RssFile')), shmem: round1(KB(status, 'RssShmem')), files };
}

/** With --profile: when each measured loop ran (CLOCK_MONOTONIC µs, the clock of V8's .cpuprofile time stamps). */
const phases: { phase: string; start_us: number; end_us: number }[] = [];
let phaseName = '';
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

async function loop(fn: () => Promise<void>): Promise<{ ops: number; perSecond: number }> {
  const startUs = monotonicUs();
  const end = performance.now() + SECONDS * 1000;
  let ops = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    await fn();
    ops++;
  }
  if (phaseName) phases.push({ phase: phaseName, start_us: startUs, end_us: monotonicUs() });
  return { ops, perSecond: ops / ((performance.now() - t0) / 1000) };
}

function percentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))]!;
}

function median(xs: number[]): number {
  return percentile(xs, 0.5);
}

/** CPU time (user + system) a process has used so far, in ms (/proc/PID/stat; 10 ms ticks). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

function cpuOf(pids: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuMs(pid)]));
}

/** CPU ms each process spent per operation since `before`. */
function cpuPer(pids: Record<string, number>, before: Record<string, number>, ops: number): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, round1(((cpuMs(pid) - before[name]!) / ops) * 100) / 100]));
}

interface Figures {
  single_reads_per_s: number;
  /** Round trip of one single-node read, ms: median and 99th percentile. */
  single_read_ms: { p50: number; p99: number };
  batch_nodes_per_s: number;
  /** CPU ms each process spent per 100-node batch (where the time goes: one leg or two). */
  batch_cpu_ms: Record<string, number>;
  /** 100-node batches with 4 requests in flight on the session (what a historian or SCADA poller does). */
  batch4_nodes_per_s: number;
  batch4_cpu_ms: Record<string, number>;
  write_rtt_ms: number;
  notification_ms: number;
}

/** `id(path)` turns a browse path below Objects (`Bench/V000`) into the node id on that side. */
async function measure(path: string, read: ClientSession, writer: ClientSession, id: (path: string) => string, pids: Record<string, number>): Promise<Figures> {
  const v0 = id('Bench/V000');
  const batch = Array.from({ length: 100 }, (_, i) => ({ nodeId: id(`Bench/V${String(i).padStart(3, '0')}`), attributeId: AttributeIds.Value }));
  for (let i = 0; i < 20; i++) await read.read({ nodeId: v0, attributeId: AttributeIds.Value }); // warm-up
  const singleMs: number[] = [];
  phaseName = `${path} single`;
  const single = await loop(async () => {
    const t = performance.now();
    const dv = await read.read({ nodeId: v0, attributeId: AttributeIds.Value });
    singleMs.push(performance.now() - t);
    if (!dv.statusCode.isGood()) throw new Error(`read failed: ${dv.statusCode.name}`);
  });
  let cpuBefore = cpuOf(pids);
  phaseName = `${path} batch`;
  const batched = await loop(async () => {
    const dvs = await read.read(batch);
    if (!dvs.every((d) => d.statusCode.isGood())) throw new Error('batch read failed');
  });
  const batch_cpu_ms = cpuPer(pids, cpuBefore, batched.ops);
  cpuBefore = cpuOf(pids);
  phaseName = `${path} batch4`;
  const batched4 = await loop(async () => {
    const all = await Promise.all([read.read(batch), read.read(batch), read.read(batch), read.read(batch)]);
    if (!all.every((dvs) => dvs.every((d) => d.statusCode.isGood()))) throw new Error('batch read failed');
  });
  const batch4_cpu_ms = cpuPer(pids, cpuBefore, batched4.ops * 4);
  const rtts: number[] = [];
  let k = 0;
  phaseName = `${path} write`;
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
  return { single_reads_per_s: single.perSecond, single_read_ms: { p50: Math.round(median(singleMs) * 100) / 100, p99: Math.round(percentile(singleMs, 0.99) * 100) / 100 }, batch_nodes_per_s: batched.perSecond * 100, batch_cpu_ms, batch4_nodes_per_s: batched4.perSecond * 400, batch4_cpu_ms, write_rtt_ms: median(rtts), notification_ms: median(lat) };
}

/** Figures of path `a` ÷ those of path `b`. */
function ratios(a: Figures, b: Figures): Record<string, number> {
  return {
    single_reads: a.single_reads_per_s / b.single_reads_per_s,
    batch_reads: a.batch_nodes_per_s / b.batch_nodes_per_s,
    batch_reads_4_in_flight: a.batch4_nodes_per_s / b.batch4_nodes_per_s,
    write_rtt: a.write_rtt_ms / b.write_rtt_ms,
    notification_latency: a.notification_ms / b.notification_ms,
  };
}

/** nodes/s when every session reads the same 100 nodes, all at once, round after round (a SCADA's clients polling one tag list). */
async function sameNodes(path: string, sessions: ClientSession[], id: (path: string) => string, pids: Record<string, number>): Promise<{ nodes_per_s: number; cpu_ms_per_batch: Record<string, number> }> {
  const batch = Array.from({ length: 100 }, (_, i) => ({ nodeId: id(`Bench/V${String(i).padStart(3, '0')}`), attributeId: AttributeIds.Value }));
  const before = cpuOf(pids);
  phaseName = `${path} same-nodes`;
  const r = await loop(async () => {
    const all = await Promise.all(sessions.map((s) => s.read(batch)));
    if (!all.every((dvs) => dvs.every((d) => d.statusCode.isGood()))) throw new Error('batch read failed');
  });
  return { nodes_per_s: r.perSecond * 100 * sessions.length, cpu_ms_per_batch: cpuPer(pids, before, r.ops * sessions.length) };
}

const SAME_NODES_SESSIONS = 4;

/** The security mode and policy a client's channel runs with, e.g. `SignAndEncrypt/Basic256Sha256`. */
function legOf(client: { securityMode: MessageSecurityMode; securityPolicy: string }): string {
  return `${MessageSecurityMode[client.securityMode]}/${client.securityPolicy.replace(/^.*#/, '')}`;
}
/** The plant leg: the bench's target names neither security_mode nor security_policy (schema.ts defaults). */
const UPSTREAM_LEG = `${opcuaTargetSchema.shape.security_mode.parse(undefined)}/${opcuaTargetSchema.shape.security_policy.parse(undefined)}`;

try {
  const [plantPort, gwPort] = [await freePort(), await freePort()];
  const plant = await startReporting([join(root, 'test/adapters/opcua/fixtures/plant.ts'), String(plantPort), join(tmp.dir, 'plant')]);
  const relay = await startReporting(['-e', RELAY], { ...process.env, RELAY_TO: String(plantPort) });
  const app = await makeIdentity(tmp.dir, 'bench-client');
  const password = 'bench-password';
  const vault = makeVault(tmp.dir, { 'bench-opcua': hashOpcuaPassword(password) });
  const configFile = join(tmp.dir, 'penstock.yaml');
  writeFileSync(configFile, `
appliance: { id: gw-bench, site: bench, zone: plant, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
admin: { socket: ${tmp.dir}/run/admin.sock }
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
  // The daemon as shipped; only --heap-spaces adds the SIGUSR2 hook.
  const hook = args['heap-spaces'] ? [`--import=data:text/javascript;base64,${Buffer.from(HEAP_SPACES_HOOK).toString('base64')}`] : [];
  const profile = args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [];
  const gateway = spawnChild([...GATEWAY_FLAGS, ...hook, ...profile, args['daemon-main'], '--config', configFile], { ...process.env, ...GATEWAY_ENV });
  const gwPid = gateway.pid!;
  const gwEndpoint = `opc.tcp://127.0.0.1:${gwPort}`;
  const sign = { mode: MessageSecurityMode.SignAndEncrypt, policy: SecurityPolicy.Basic256Sha256 };
  const connectThrough = () => connect(gwEndpoint, { identity: app, user: { type: UserTokenType.UserName, userName: 'bench', password }, ...sign });

  // Ready: a read of a plant node through the daemon comes back Good (listener bound, target mirrored).
  const startedAt = performance.now();
  const through = await (async () => {
    let c: Awaited<ReturnType<typeof connect>> | undefined;
    for (;;) {
      if (gateway.exitCode !== null || gateway.signalCode !== null) throw new Error(`the daemon exited (${gateway.exitCode ?? gateway.signalCode}):\n${stderrTails.get(gateway)!()}`);
      if (performance.now() - startedAt > 90_000) throw new Error(`the daemon did not serve a Good read within 90 s:\n${stderrTails.get(gateway)!()}`);
      // Try OPC UA only once the port accepts (node-opcua's client logs every refused attempt).
      if (!c && (await accepts(gwPort))) c = await connectThrough().catch(() => undefined);
      const dv = await c?.session.read({ nodeId: 'ns=1;s=plant/Bench/V000', attributeId: AttributeIds.Value }).catch(() => undefined);
      if (c && dv?.statusCode.isGood()) return c;
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const readyMs = performance.now() - startedAt;
  // The first session stays open: RSS "after start" is the daemon serving one idle client.
  await new Promise((r) => setTimeout(r, 1000));
  const rssIdle = rssOf(gwPid);
  const heapIdle = await heapSpacesOf(gateway);

  const anonymous = { identity: app, user: { type: UserTokenType.Anonymous }, ...sign } as const;
  const direct = await connect(String(plant.ready.endpoint), anonymous);
  const writer = await connect(String(plant.ready.endpoint), anonymous);
  const relayed = await connect(`opc.tcp://127.0.0.1:${String(relay.ready.port)}`, anonymous);

  // The plant's ids are dotted; the gateway's are `<target>/<browse path>`.
  const pids = { bench_client: process.pid, plant: plant.child.pid!, relay: relay.child.pid!, daemon: gwPid };
  const plantId = (p: string) => `ns=1;s=${p.replace(/\//g, '.')}`;
  const gatewayId = (p: string) => `ns=1;s=plant/${p}`;
  const d = await measure('direct', direct.session, writer.session, plantId, pids);
  const r = await measure('relay', relayed.session, writer.session, plantId, pids);
  const g = await measure('penstock', through.session, writer.session, gatewayId, pids);

  // Several sessions reading the same nodes at the same time, on each path.
  const fellows = { direct: [] as Awaited<ReturnType<typeof connect>>[], through: [] as Awaited<ReturnType<typeof connect>>[] };
  for (let i = 1; i < SAME_NODES_SESSIONS; i++) {
    fellows.direct.push(await connect(String(plant.ready.endpoint), anonymous));
    fellows.through.push(await connectThrough());
  }
  const same = {
    direct: await sameNodes('direct', [direct.session, ...fellows.direct.map((c) => c.session)], plantId, pids),
    through: await sameNodes('penstock', [through.session, ...fellows.through.map((c) => c.session)], gatewayId, pids),
  };
  for (const c of [...fellows.direct, ...fellows.through]) await c.close();

  // RSS with 20 sessions, each with a live subscription on the drum level.
  const extra = [];
  for (let i = 0; i < 19; i++) extra.push(await connectThrough());
  for (const c of [through, ...extra]) {
    const sub = await c.session.createSubscription2({ requestedPublishingInterval: 250, requestedMaxKeepAliveCount: 20, requestedLifetimeCount: 200, publishingEnabled: true });
    await sub.monitor({ nodeId: 'ns=1;s=plant/Boiler/Drum/Level', attributeId: AttributeIds.Value }, { samplingInterval: 0, queueSize: 1 }, TimestampsToReturn.Both);
    await c.session.read({ nodeId: 'ns=1;s=plant/Bench/V000', attributeId: AttributeIds.Value });
  }
  await new Promise((r) => setTimeout(r, 1000));
  const rss20 = rssOf(gwPid);
  const heap20 = await heapSpacesOf(gateway);
  const plantRss = rssOf(plant.child.pid!).rss;

  const result = {
    seconds_per_cell: SECONDS,
    daemon: { main: relative(root, args['daemon-main']), flags: GATEWAY_FLAGS, env: GATEWAY_ENV, ready_s: round1(readyMs / 1000) },
    direct: d,
    bare_relay: r,
    through_penstock: g,
    same_nodes_sessions: SAME_NODES_SESSIONS,
    same_nodes: same,
    ratio: { ...ratios(g, d), same_nodes: same.through.nodes_per_s / same.direct.nodes_per_s },
    /** Through Penstock ÷ through the bare relay. */
    ratio_to_relay: ratios(g, r),
    gateway_rss_mib: { idle_after_start: rssIdle, with_20_sessions: rss20 },
    ...(heapIdle && heap20 ? { gateway_heap_mib: { idle_after_start: heapIdle, with_20_sessions: heap20 } } : {}),
    plant_rss_mib: plantRss,
  };
  if (args.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    const f = (n: number, digits = 0) => n.toFixed(digits).padStart(10);
    const row = (label: string, dv: number, rv: number | undefined, gv: number, digits = 0) =>
      console.log(`  ${label.padEnd(44)}${f(dv, digits)}${rv === undefined ? ' '.repeat(10) : f(rv, digits)}${f(gv, digits)}${f(gv / dv, 2)}${rv === undefined ? '' : f(gv / rv, 2)}`);
    console.log('OPC UA (SignAndEncrypt / Basic256Sha256)         direct     relay  penstock   ÷direct    ÷relay');
    console.log(`    legs: client→plant (direct, and end to end through the relay) ${legOf(direct.client)}; through Penstock client→gateway ${legOf(through.client)}, gateway→plant ${UPSTREAM_LEG} (the target's default)`);
    row('reads/s, one node', d.single_reads_per_s, r.single_reads_per_s, g.single_reads_per_s);
    console.log(`    read round trip p50 / p99 ms: direct ${d.single_read_ms.p50} / ${d.single_read_ms.p99}; relay ${r.single_read_ms.p50} / ${r.single_read_ms.p99}; penstock ${g.single_read_ms.p50} / ${g.single_read_ms.p99} (added p50 ${(g.single_read_ms.p50 - d.single_read_ms.p50).toFixed(2)} ms over direct, ${(g.single_read_ms.p50 - r.single_read_ms.p50).toFixed(2)} over the relay)`);
    row('nodes/s, 100-node batches', d.batch_nodes_per_s, r.batch_nodes_per_s, g.batch_nodes_per_s);
    const cpu = (c: Record<string, number>) => Object.entries(c).filter(([, ms]) => ms >= 0.01).map(([name, ms]) => `${name} ${ms.toFixed(2)}`).join(', ');
    console.log(`    CPU ms per batch: direct ${cpu(d.batch_cpu_ms)}; relay ${cpu(r.batch_cpu_ms)}; penstock ${cpu(g.batch_cpu_ms)}`);
    row('nodes/s, 100-node batches, 4 in flight', d.batch4_nodes_per_s, r.batch4_nodes_per_s, g.batch4_nodes_per_s);
    console.log(`    CPU ms per batch: direct ${cpu(d.batch4_cpu_ms)}; relay ${cpu(r.batch4_cpu_ms)}; penstock ${cpu(g.batch4_cpu_ms)}`);
    row(`nodes/s, ${SAME_NODES_SESSIONS} sessions reading the same 100 nodes`, same.direct.nodes_per_s, undefined, same.through.nodes_per_s);
    console.log(`    CPU ms per batch: direct ${cpu(same.direct.cpu_ms_per_batch)}; penstock ${cpu(same.through.cpu_ms_per_batch)}`);
    row('write round trip, median ms', d.write_rtt_ms, r.write_rtt_ms, g.write_rtt_ms, 2);
    row('notification latency, median ms', d.notification_ms, r.notification_ms, g.notification_ms, 2);
    console.log(`  daemon: ${result.daemon.main} ${GATEWAY_FLAGS.join(' ') || '(no flags)'}${Object.keys(GATEWAY_ENV).length > 0 ? ` env ${Object.entries(GATEWAY_ENV).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}; served its first read ${result.daemon.ready_s} s after spawn`);
    const split = (r: RssSplit) => `${r.rss.toFixed(0)} MiB (anon ${r.anon.toFixed(0)}, file ${r.file.toFixed(0)}, shmem ${r.shmem.toFixed(0)}; peak so far ${r.peak.toFixed(0)})`;
    console.log(`  daemon RSS after start:     ${split(rssIdle)}`);
    console.log(`  daemon RSS with 20 sessions: ${split(rss20)}   (plant server: ${plantRss.toFixed(0)} MiB)`);
    const top = Object.entries(rss20.files).slice(0, 4).map(([file, mib]) => `${file.split('/').slice(-2).join('/')} ${mib.toFixed(0)}`);
    console.log(`  file-backed with 20 sessions (MiB): ${top.join(', ')}`);
    if (heapIdle && heap20) {
      const heap = (m: Record<string, unknown>) => `V8 heap ${String(m.heap_used)} used of ${String(m.heap_total)}, external ${String(m.external)}`;
      console.log(`  V8 (MiB): after start ${heap(heapIdle)}; with 20 sessions ${heap(heap20)}`);
    }
  }
  for (const c of [direct, writer, relayed, through, ...extra]) await c.close();
  if (args.profile) {
    mkdirSync(args.profile, { recursive: true });
    writeFileSync(join(args.profile, 'phases.json'), `${JSON.stringify(phases, null, 1)}\n`);
  }
} finally {
  closing = true;
  // Last started, first stopped: the daemon before the plant it holds a session to.
  for (const c of [...children].reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => {
          console.error(`${c.spawnargs.find((a) => a.endsWith('.js') || a.endsWith('.ts')) ?? c.pid} did not stop within 15 s of SIGTERM: killed`);
          c.kill('SIGKILL');
        }, 15_000);
        c.once('exit', () => {
          clearTimeout(t);
          r(undefined);
        });
      });
    }
  }
  tmp.cleanup();
}
