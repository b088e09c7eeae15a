// Modbus figures, side by side in one run: a libmodbus client (scripts/plc-sim/modbus-load.c) against a
// libmodbus simulated PLC (scripts/plc-sim/modbus-server.c) directly, through two bare relays (the
// yardstick: what any hop costs that does no work) and through Penstock (plain Modbus/TCP front door,
// real core and LMDB journal, in its own process), in alternating 1 s slices. Round trips per second
// and p50/p99 latency for reads (FC 3, 4 registers) and writes (FC 6), with 1 and 16 concurrent clients,
// as ratios to direct and to the Node relay, and the latency Penstock adds over that relay; a second
// gateway with every alert detector on (src/alerts), in the same slices; the gateway's RSS; and for writes,
// the gateway's LMDB commits per write. Both C programs are compiled here with `cc … -lmodbus`.
//
//   node scripts/bench-modbus.ts [--seconds N] [--json] [--only read|write] [--relays node,socat|none]
//                                [--no-alerts] [--profile DIR]
//
//   --relays   the bare relays measured beside Penstock (default both): `node`, a 10-line Node byte relay
//              (one JS thread, as Penstock), and `socat` (C, a process per connection). Neither decodes,
//              decides or journals anything; each opens one PLC connection per client.
//   --no-alerts  skip the second gateway with every detector on
//   --profile  run the gateway under --cpu-prof, writing its .cpuprofile to DIR when the bench ends
//
// Through Penstock every request is decoded, decided by policy and counted; reads are aggregated in the
// journal, each write is journaled durably (fsync) before it is forwarded, then its outcome. Two upstream
// settings are measured for 16 clients: the shared link with one request in flight (the safe default for
// PLCs that serve one request at a time) and with pipelining (target max_in_flight: 16). The relays have
// no shared link (a PLC connection per client), so they are the same in both 16-client rows.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { open as openLmdb } from 'lmdb';
import { compilePlcSim, freePort } from './bench-support.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    only: { type: 'string' },
    relays: { type: 'string', default: 'node,socat' },
    alerts: { type: 'boolean', default: true },
    profile: { type: 'string' },
  },
  allowNegative: true,
});
const RELAYS = args.relays === 'none' ? [] : args.relays.split(',').map((r) => r.trim());
for (const r of RELAYS) if (r !== 'node' && r !== 'socat') throw new Error(`--relays: unknown relay ${r} (node, socat or none)`);
const SECONDS = Number(args.seconds);
const here = new URL('.', import.meta.url).pathname;
const root = join(here, '..');
const dir = mkdtempSync(join(tmpdir(), 'penstock-bench-modbus-'));
const children: ChildProcess[] = [];

// The floor: a bare Node relay, one PLC connection per client, bytes piped both ways with no decoding,
// no policy and no journal, so that what Penstock adds can be told from what any Node hop costs.
const RELAY = `
const net = require('node:net');
const plcPort = Number(process.argv[1]);
const server = net.createServer({ noDelay: true }, (client) => {
  const plc = net.connect({ host: '127.0.0.1', port: plcPort, noDelay: true });
  client.pipe(plc).pipe(client);
  const end = () => { client.destroy(); plc.destroy(); };
  client.on('error', end).on('close', end);
  plc.on('error', end).on('close', end);
});
server.listen(0, '127.0.0.1', () => console.log('relay ' + server.address().port));
`;

interface LoadResult { ok: number; errors: number; seconds: number; p50_us: number; p99_us: number; cpu_us?: number }

/** CPU time (user + system, every thread) a process has used so far, in µs; clock-tick resolution. */
function cpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
}
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

function start(cmd: string, argv: string[], ready: (line: string) => boolean): Promise<ChildProcess> {
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} did not become ready`)), 20_000);
    child.once('exit', (code) => reject(new Error(`${cmd} exited ${code}`)));
    const onLine = (line: string) => {
      if (ready(line)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
  });
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port (polled: some programs say nothing). */
async function acceptsConnections(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      }).once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing accepts connections on port ${port}`);
}

function loadFor(seconds: number, loader: string, port: number, unit: number, clients: number, kind: 'read' | 'write'): LoadResult {
  const out = execFileSync(loader, ['127.0.0.1', String(port), String(unit), String(clients), String(seconds), kind], { encoding: 'utf8' });
  return JSON.parse(out) as LoadResult;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * Run the same load against several endpoints in one-second slices taken in turn, SECONDS slices each,
 * so that a noisy machine (shared cores, other work) slows every side alike instead of whichever side
 * happened to run during a slow spell. Counts add up; p50/p99 are the medians of the slices' values.
 */
function loadInTurns(loader: string, endpoints: { port: number; unit: number; pid?: number }[], clients: number, kind: 'read' | 'write'): LoadResult[] {
  const slices: LoadResult[][] = endpoints.map(() => []);
  const cpu = endpoints.map(() => 0);
  for (let i = 0; i < SECONDS; i++) {
    endpoints.forEach((e, j) => {
      const before = e.pid ? cpuUs(e.pid) : 0;
      slices[j]!.push(loadFor(1, loader, e.port, e.unit, clients, kind));
      if (e.pid) cpu[j]! += cpuUs(e.pid) - before;
    });
  }
  return slices.map((s, j) => ({
    ...(endpoints[j]!.pid ? { cpu_us: cpu[j]! / Math.max(1, s.reduce((n, r) => n + r.ok, 0)) } : {}),
    ok: s.reduce((n, r) => n + r.ok, 0),
    errors: s.reduce((n, r) => n + r.errors, 0),
    seconds: s.reduce((n, r) => n + r.seconds, 0),
    p50_us: median(s.map((r) => r.p50_us)),
    p99_us: median(s.map((r) => r.p99_us)),
  }));
}

function rss(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon') };
}

try {
  const server = compilePlcSim(dir, 'modbus-server');
  const loader = compilePlcSim(dir, 'modbus-load');
  const plcPort = await freePort();
  await start(server, [String(plcPort)], (l) => l.startsWith('ready'));

  writeFileSync(join(dir, 'penstock.yaml'), `
appliance: { id: gw-bench, site: Bench, zone: lab, state_dir: ${dir}/state }
sessions: { actions_per_second: 10000000 }
listeners:
  - id: mb-bench
    protocol: modbus
    mode: tcp
    port: 0
    max_connections: 64
    bindings: [{ source: 127.0.0.1, principal: bench }]
    routes:
      - { unit: 1, target: plc-pipelined }
      - { unit: 2, target: plc-serial }
principals:
  - { id: bench, kind: service, owner: Bench, purpose: Benchmark }
targets:
  - { id: plc-pipelined, protocol: modbus, zone: lab, host: 127.0.0.1, port: ${plcPort}, unit: 1, max_in_flight: 16 }
  - { id: plc-serial, protocol: modbus, zone: lab, host: 127.0.0.1, port: ${plcPort}, unit: 1 }
grants:
  - id: g-bench
    principal: bench
    targets: [plc-pipelined, plc-serial]
    task: { ticket: BENCH }
    rules:
      - modbus: { access: readwrite, tables: [holding_register], addresses: ["0-99"] }
`);
  let gatewayPort = 0;
  const profileArgs = args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [];
  const gateway = await start(process.execPath, [...profileArgs, join(root, 'test/adapters/modbus/fixtures/gateway-main.ts'), dir], (l) => {
    if (!l.startsWith('{"ready"')) return false;
    gatewayPort = (JSON.parse(l) as { ports: Record<string, number> }).ports['mb-bench']!;
    return true;
  });
  // The same gateway with every detector following its journal, on its own state (issue 15).
  let alertsPort = 0;
  let alertsPid = 0;
  if (args.alerts) {
    const alertsDir = join(dir, 'alerts');
    mkdirSync(alertsDir);
    writeFileSync(join(alertsDir, 'penstock.yaml'), readFileSync(join(dir, 'penstock.yaml'), 'utf8').replace(`state_dir: ${dir}/state`, `state_dir: ${alertsDir}/state`));
    const alerts = await start(process.execPath, [join(root, 'test/adapters/modbus/fixtures/gateway-main.ts'), alertsDir, '--alerts'], (l) => {
      if (!l.startsWith('{"ready"')) return false;
      alertsPort = (JSON.parse(l) as { ports: Record<string, number> }).ports['mb-bench']!;
      return true;
    });
    alertsPid = alerts.pid!;
  }
  const rssIdle = rss(gateway.pid!);
  const relayPorts: Partial<Record<'node' | 'socat', number>> = {};
  let relayPid = 0;
  if (RELAYS.includes('node')) {
    relayPid = (await start(process.execPath, ['-e', RELAY, String(plcPort)], (l) => {
      if (!l.startsWith('relay ')) return false;
      relayPorts.node = Number(l.slice(6));
      return true;
    })).pid!;
  }
  if (RELAYS.includes('socat')) {
    const port = await freePort();
    // Silent (its log lines would fill a pipe nobody drains while a load slice runs): ready once it accepts.
    children.push(spawn('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr,nodelay,backlog=128`, `TCP:127.0.0.1:${plcPort},nodelay`], { stdio: 'ignore' }));
    await acceptsConnections(port);
    relayPorts.socat = port;
  }

  // Warm-up, not measured: a fresh Node process spends its first second or so compiling the hot path,
  // which would otherwise land in the first slice of the first cell (its CPU per round trip above all).
  // Writes: the gateway's LMDB commits (each one fsync-bound) per write, from LMDB's own transaction count
  // (the test gateway keeps its journal in DIR/journal).
  const journalEnv = openLmdb({ path: join(dir, 'journal'), readOnly: true, maxDbs: 8 });
  const commitsSoFar = () => (journalEnv.getStats() as { lastTxnId: number }).lastTxnId;
  const kinds = args.only ? [args.only as 'read' | 'write'] : (['read', 'write'] as const);
  for (const port of [gatewayPort, alertsPort, relayPorts.node ?? 0]) {
    if (port === 0) continue;
    for (const kind of kinds) for (const [clients, unit] of [[1, 2], [16, 1]] as const) loadFor(1, loader, port, port === relayPorts.node ? 1 : unit, clients, kind);
  }

  type Path = 'direct' | 'node' | 'socat' | 'penstock' | 'alerts';
  type Row = { kind: 'read' | 'write'; clients: number; upstream: string; commitsPerWrite?: number } & Partial<Record<Path, LoadResult>>;
  const rows: Row[] = [];
  for (const kind of kinds) {
    for (const [clients, unit, upstream] of [[1, 2, 'shared, 1 in flight'], [16, 2, 'shared, 1 in flight'], [16, 1, 'shared, pipelined ×16']] as const) {
      // pid: the process whose CPU time per round trip is reported (socat forks a process per client).
      const paths: [Path, { port: number; unit: number; pid?: number }][] = [['direct', { port: plcPort, unit: 1 }]];
      if (relayPorts.node) paths.push(['node', { port: relayPorts.node, unit: 1, pid: relayPid }]);
      if (relayPorts.socat) paths.push(['socat', { port: relayPorts.socat, unit: 1 }]);
      paths.push(['penstock', { port: gatewayPort, unit, pid: gateway.pid! }]);
      if (alertsPort) paths.push(['alerts', { port: alertsPort, unit, pid: alertsPid }]);
      const commitsBefore = commitsSoFar();
      const results = loadInTurns(loader, paths.map(([, e]) => e), clients, kind);
      const row: Row = { kind, clients, upstream };
      paths.forEach(([path], i) => (row[path] = results[i]));
      // The alerts gateway keeps its own journal: the count is the plain gateway's alone.
      if (kind === 'write') row.commitsPerWrite = (commitsSoFar() - commitsBefore) / Math.max(1, row.penstock!.ok);
      rows.push(row);
    }
  }
  await journalEnv.close();
  const rssAfter = rss(gateway.pid!);
  if (args.profile) {
    // A clean exit, so that V8 writes the profile.
    gateway.kill('SIGTERM');
    await new Promise((r) => gateway.once('exit', r));
  }

  if (args.json) {
    console.log(JSON.stringify({ seconds: SECONDS, rows, rss: { idle: rssIdle, after: rssAfter } }, null, 2));
  } else {
    console.log(`Modbus direct, through bare relays and through Penstock, ${SECONDS} s per cell in alternating 1 s slices, libmodbus client and simulated PLC on loopback`);
    console.log("ratio: round trips/s ÷ direct and ÷ the Node relay; added: p50 / p99 over the Node relay's (and over direct's); CPU: the relay's or gateway's process, per round trip");
    const labels: Record<Path, string> = { direct: 'direct', node: 'bare Node relay', socat: 'bare socat relay', penstock: 'Penstock', alerts: 'Penstock, all detectors' };
    const n = (x: number, w = 7) => x.toFixed(0).padStart(w);
    const signed = (x: number) => (x >= 0 ? '+' : '') + x.toFixed(0);
    const rate = (r: LoadResult) => r.ok / r.seconds;
    console.log(`${'op'.padEnd(5)} ${'clients'.padStart(7)}  ${'upstream'.padEnd(22)} ${'path'.padEnd(24)} ${'per s'.padStart(7)} ${'÷direct'.padStart(7)} ${'÷relay'.padStart(7)}  ${'p50 µs'.padStart(7)} ${'p99 µs'.padStart(7)}  ${'added p50 / p99 vs relay (vs direct)'.padEnd(36)} ${'CPU µs/op'.padStart(9)}  errors`);
    for (const r of rows) {
      const d = r.direct!;
      const relay = r.node;
      let first = true;
      for (const path of ['direct', 'node', 'socat', 'penstock', 'alerts'] as const) {
        const x = r[path];
        if (!x) continue;
        const lead = first ? `${r.kind.padEnd(5)} ${String(r.clients).padStart(7)}  ${r.upstream.padEnd(22)}` : `${''.padEnd(5)} ${''.padStart(7)}  ${''.padEnd(22)}`;
        first = false;
        const vsRelay = relay && path !== 'direct' && path !== 'node' ? (rate(x) / rate(relay)).toFixed(2) : '';
        const added = path === 'direct'
          ? ''
          : path === 'node' || !relay
            ? `(${signed(x.p50_us - d.p50_us)} / ${signed(x.p99_us - d.p99_us)})`
            : `${signed(x.p50_us - relay.p50_us)} / ${signed(x.p99_us - relay.p99_us)} (${signed(x.p50_us - d.p50_us)} / ${signed(x.p99_us - d.p99_us)})`;
        const commits = path === 'penstock' && r.commitsPerWrite !== undefined ? `  ${r.commitsPerWrite.toFixed(2)} commits/write` : '';
        console.log(`${lead} ${labels[path].padEnd(24)} ${n(rate(x))} ${(rate(x) / rate(d)).toFixed(2).padStart(7)} ${vsRelay.padStart(7)}  ${n(x.p50_us)} ${n(x.p99_us)}  ${added.padEnd(36)} ${(x.cpu_us !== undefined ? x.cpu_us.toFixed(1) : '').padStart(9)}  ${x.errors}${commits}`);
      }
    }
    console.log(`gateway RSS: idle ${(rssIdle.rss / 2 ** 20).toFixed(0)} MiB, after the runs ${(rssAfter.rss / 2 ** 20).toFixed(0)} MiB (anonymous ${(rssAfter.anon / 2 ** 20).toFixed(0)} MiB; the rest is the journal's LMDB map)`);
  }
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  rmSync(dir, { recursive: true, force: true });
}
