// Modbus figures, side by side in one run: a libmodbus client (scripts/plc-sim/modbus-load.c) against a
// libmodbus simulated PLC (scripts/plc-sim/modbus-server.c), directly and through Penstock (plain
// Modbus/TCP front door, real core and LMDB journal, in its own process), in alternating 1 s slices. Round trips per second
// and p50/p99 latency for reads (FC 3, 4 registers) and writes (FC 6), with 1 and 16 concurrent clients,
// as ratios to direct; a second gateway with every alert detector on (src/alerts), in the same slices;
// and the gateway's RSS; for writes, the gateway's LMDB commits per write. Both C programs are compiled here with `cc … -lmodbus`.
//
//   node scripts/bench-modbus.ts [--seconds N] [--json] [--only read|write] [--relay] [--profile DIR]
//
//   --only     measure reads or writes only
//   --relay    add a row per setting for a bare Node byte relay (no decoding, no policy): the floor any
//              proxy on one JS thread starts from, so the Penstock figures can be read against it
//   --profile  run the gateway under --cpu-prof, writing its .cpuprofile to DIR when the bench ends
//
// Through Penstock every request is decoded, decided by policy and counted; reads are aggregated in the
// journal, each write is journaled durably (fsync) before it is forwarded, then its outcome. Two upstream
// settings are measured for 16 clients: the shared link with one request in flight (the safe default for
// PLCs that serve one request at a time) and with pipelining (target max_in_flight: 16).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { open as openLmdb } from 'lmdb';
import { compilePlcSim, freePort } from './bench-support.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    only: { type: 'string' },
    relay: { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});
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

interface LoadResult { ok: number; errors: number; seconds: number; p50_us: number; p99_us: number }

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
function loadInTurns(loader: string, endpoints: { port: number; unit: number }[], clients: number, kind: 'read' | 'write'): LoadResult[] {
  const slices: LoadResult[][] = endpoints.map(() => []);
  for (let i = 0; i < SECONDS; i++) endpoints.forEach((e, j) => slices[j]!.push(loadFor(1, loader, e.port, e.unit, clients, kind)));
  return slices.map((s) => ({
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
  const alertsDir = join(dir, 'alerts');
  mkdirSync(alertsDir);
  writeFileSync(join(alertsDir, 'penstock.yaml'), readFileSync(join(dir, 'penstock.yaml'), 'utf8').replace(`state_dir: ${dir}/state`, `state_dir: ${alertsDir}/state`));
  let alertsPort = 0;
  await start(process.execPath, [join(root, 'test/adapters/modbus/fixtures/gateway-main.ts'), alertsDir, '--alerts'], (l) => {
    if (!l.startsWith('{"ready"')) return false;
    alertsPort = (JSON.parse(l) as { ports: Record<string, number> }).ports['mb-bench']!;
    return true;
  });
  const rssIdle = rss(gateway.pid!);
  let relayPort = 0;
  if (args.relay) {
    await start(process.execPath, ['-e', RELAY, String(plcPort)], (l) => {
      if (!l.startsWith('relay ')) return false;
      relayPort = Number(l.slice(6));
      return true;
    });
  }

  type Row = { kind: 'read' | 'write'; clients: number; upstream: string; direct: LoadResult; penstock: LoadResult; alerts: LoadResult; relay?: LoadResult; commitsPerWrite?: number };
  // Writes: the gateway's LMDB commits (each one fsync-bound) per write, from LMDB's own transaction count
  // (the test gateway keeps its journal in DIR/journal).
  const journalEnv = openLmdb({ path: join(dir, 'journal'), readOnly: true, maxDbs: 8 });
  const commitsSoFar = () => (journalEnv.getStats() as { lastTxnId: number }).lastTxnId;
  const rows: Row[] = [];
  const kinds = args.only ? [args.only as 'read' | 'write'] : (['read', 'write'] as const);
  for (const kind of kinds) {
    for (const [clients, unit, upstream] of [[1, 2, 'shared, 1 in flight'], [16, 2, 'shared, 1 in flight'], [16, 1, 'shared, pipelined ×16']] as const) {
      // The bare relay has no shared link: run it once per client count.
      const withRelay = relayPort !== 0 && unit === 2;
      const commitsBefore = commitsSoFar();
      const [direct, penstock, alerts, relay] = loadInTurns(loader, [
        { port: plcPort, unit: 1 },
        { port: gatewayPort, unit },
        { port: alertsPort, unit },
        ...(withRelay ? [{ port: relayPort, unit: 1 }] : []),
      ], clients, kind);
      const commitsPerWrite = kind === 'write' ? (commitsSoFar() - commitsBefore) / Math.max(1, penstock!.ok) : undefined;
      rows.push({ kind, clients, upstream, direct: direct!, penstock: penstock!, alerts: alerts!, ...(relay ? { relay } : {}), ...(commitsPerWrite !== undefined ? { commitsPerWrite } : {}) });
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
    const f = (n: number) => n.toFixed(0).padStart(7);
    console.log(`Modbus through Penstock vs direct, ${SECONDS} s per cell in alternating 1 s slices, libmodbus client and simulated PLC on loopback`);
    console.log('op     clients upstream                  direct/s penstock/s  ratio | p50 µs direct→penstock | p99 µs direct→penstock (added) | errors');
    for (const r of rows) {
      const d = r.direct.ok / r.direct.seconds;
      const p = r.penstock.ok / r.penstock.seconds;
      console.log(`${r.kind.padEnd(6)} ${String(r.clients).padStart(7)} ${r.upstream.padEnd(24)} ${f(d)}   ${f(p)}   ${(p / d).toFixed(2)} | ${f(r.direct.p50_us)} → ${f(r.penstock.p50_us)}        | ${f(r.direct.p99_us)} → ${f(r.penstock.p99_us)} (+${(r.penstock.p99_us - r.direct.p99_us).toFixed(0)})      | ${r.penstock.errors}${r.commitsPerWrite !== undefined ? ` | ${r.commitsPerWrite.toFixed(2)} commits/write` : ''}`);
      const a = r.alerts.ok / r.alerts.seconds;
      console.log(`${''.padEnd(6)} ${''.padStart(7)} ${'(all detectors on)'.padEnd(24)} ${''.padStart(7)}   ${f(a)}   ${(a / d).toFixed(2)} | ${''.padStart(7)}   ${f(r.alerts.p50_us)}        | ${''.padStart(7)}   ${f(r.alerts.p99_us)} (+${(r.alerts.p99_us - r.direct.p99_us).toFixed(0)})      | ${r.alerts.errors}`);
      if (r.relay) {
        const x = r.relay.ok / r.relay.seconds;
        console.log(`${''.padEnd(6)} ${''.padStart(7)} ${'(bare Node relay)'.padEnd(24)} ${''.padStart(7)}   ${f(x)}   ${(x / d).toFixed(2)} | ${''.padStart(7)}   ${f(r.relay.p50_us)}        | ${''.padStart(7)}   ${f(r.relay.p99_us)} (+${(r.relay.p99_us - r.direct.p99_us).toFixed(0)})      | ${r.relay.errors}`);
      }
    }
    console.log(`gateway RSS: idle ${(rssIdle.rss / 2 ** 20).toFixed(0)} MiB, after the runs ${(rssAfter.rss / 2 ** 20).toFixed(0)} MiB (anonymous ${(rssAfter.anon / 2 ** 20).toFixed(0)} MiB; the rest is the journal's LMDB map)`);
  }
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  rmSync(dir, { recursive: true, force: true });
}
