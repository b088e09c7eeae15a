// Modbus figures, side by side in one run: a libmodbus client (scripts/plc-sim/modbus-load.c) against a
// libmodbus simulated PLC (scripts/plc-sim/modbus-server.c), once directly and once through Penstock
// (plain Modbus/TCP front door, real core and LMDB journal, in its own process). Round trips per second
// and p50/p99 latency for reads (FC 3, 4 registers) and writes (FC 6), with 1 and 16 concurrent clients,
// as ratios to direct; and the gateway's RSS. Both C programs are compiled here with `cc … -lmodbus`.
//
//   node scripts/bench-modbus.ts [--seconds N] [--json]
//
// Through Penstock every request is decoded, decided by policy and counted; reads are aggregated in the
// journal, each write is journaled durably (fsync) before it is forwarded, then its outcome. Two upstream
// settings are measured for 16 clients: the shared link with one request in flight (the safe default for
// PLCs that serve one request at a time) and with pipelining (target max_in_flight: 16).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import net from 'node:net';

const { values: args } = parseArgs({ options: { seconds: { type: 'string', default: '3' }, json: { type: 'boolean', default: false } } });
const SECONDS = Number(args.seconds);
const here = new URL('.', import.meta.url).pathname;
const root = join(here, '..');
const dir = mkdtempSync(join(tmpdir(), 'penstock-bench-modbus-'));
const children: ChildProcess[] = [];

interface LoadResult { ok: number; errors: number; seconds: number; p50_us: number; p99_us: number }

function compile(name: string): string {
  const out = join(dir, name);
  let flags = ['-I/usr/include/modbus', '-lmodbus']; // Debian's libmodbus-dev layout, when pkg-config is absent
  try {
    flags = execFileSync('pkg-config', ['--cflags', '--libs', 'libmodbus'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/);
  } catch {}
  execFileSync('cc', ['-O2', '-pthread', '-o', out, join(here, 'plc-sim', `${name}.c`), ...flags], { stdio: 'inherit' });
  return out;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

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

function load(loader: string, port: number, unit: number, clients: number, kind: 'read' | 'write'): LoadResult {
  const out = execFileSync(loader, ['127.0.0.1', String(port), String(unit), String(clients), String(SECONDS), kind], { encoding: 'utf8' });
  return JSON.parse(out) as LoadResult;
}

function rss(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon') };
}

try {
  const server = compile('modbus-server');
  const loader = compile('modbus-load');
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
  const gateway = await start(process.execPath, [join(root, 'test/adapters/modbus/fixtures/gateway-main.ts'), dir], (l) => {
    if (!l.startsWith('{"ready"')) return false;
    gatewayPort = (JSON.parse(l) as { ports: Record<string, number> }).ports['mb-bench']!;
    return true;
  });
  const rssIdle = rss(gateway.pid!);

  type Row = { kind: 'read' | 'write'; clients: number; upstream: string; direct: LoadResult; penstock: LoadResult };
  const rows: Row[] = [];
  for (const kind of ['read', 'write'] as const) {
    for (const [clients, unit, upstream] of [[1, 2, 'shared, 1 in flight'], [16, 2, 'shared, 1 in flight'], [16, 1, 'shared, pipelined ×16']] as const) {
      const direct = load(loader, plcPort, 1, clients, kind);
      const penstock = load(loader, gatewayPort, unit, clients, kind);
      rows.push({ kind, clients, upstream, direct, penstock });
    }
  }
  const rssAfter = rss(gateway.pid!);

  if (args.json) {
    console.log(JSON.stringify({ seconds: SECONDS, rows, rss: { idle: rssIdle, after: rssAfter } }, null, 2));
  } else {
    const f = (n: number) => n.toFixed(0).padStart(7);
    console.log(`Modbus through Penstock vs direct, ${SECONDS} s per cell, libmodbus client and simulated PLC on loopback`);
    console.log('op     clients upstream                  direct/s penstock/s  ratio | p50 µs direct→penstock | p99 µs direct→penstock (added) | errors');
    for (const r of rows) {
      const d = r.direct.ok / r.direct.seconds;
      const p = r.penstock.ok / r.penstock.seconds;
      console.log(`${r.kind.padEnd(6)} ${String(r.clients).padStart(7)} ${r.upstream.padEnd(24)} ${f(d)}   ${f(p)}   ${(p / d).toFixed(2)} | ${f(r.direct.p50_us)} → ${f(r.penstock.p50_us)}        | ${f(r.direct.p99_us)} → ${f(r.penstock.p99_us)} (+${(r.penstock.p99_us - r.direct.p99_us).toFixed(0)})      | ${r.penstock.errors}`);
    }
    console.log(`gateway RSS: idle ${(rssIdle.rss / 2 ** 20).toFixed(0)} MiB, after the runs ${(rssAfter.rss / 2 ** 20).toFixed(0)} MiB (anonymous ${(rssAfter.anon / 2 ** 20).toFixed(0)} MiB; the rest is the journal's LMDB map)`);
  }
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  rmSync(dir, { recursive: true, force: true });
}
