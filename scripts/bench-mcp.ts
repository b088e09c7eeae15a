// MCP figures: what the AI agents' front door costs, side by side with the Modbus front door and a direct
// connection, in one run against the daemon as shipped (dist/, the unit's flags) with a libmodbus
// simulated PLC (scripts/plc-sim/modbus-server.c) on loopback:
//   - tool calls/s and p50/p99 of `my_access` (no upstream: the door's own cost) and of `modbus_read`
//     (FC 3, 4 holding registers), from 1 and N agents, each with its own MCP session kept open (the
//     official SDK client, Streamable HTTP over TLS, bearer JWT);
//   - the latency of one read, one at a time: direct to the PLC, through the Modbus/TCP front door, and
//     as `modbus_read` through the MCP door (alternating 1 s slices, so a noisy machine slows all alike);
//   - the gateway's RSS with 20 agent sessions open, each having listed its tools and made a call.
// Until this build has `modbus_read`, its rows say so and are skipped.
//
//   node scripts/bench-mcp.ts [--seconds 2] [--clients 8] [--sessions 20] [--json] [--profile DIR]
//
// --profile runs the gateway under --cpu-prof, writing its .cpuprofile to DIR when the bench ends.
// --seconds is per cell (throughput) and per path (latency): about 7 x seconds + 10 s in all.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import net from 'node:net';
import tls from 'node:tls';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { adminRequest } from '../src/admin/client.ts';
import { shippedDaemon } from './shipped-daemon.ts';
import { compilePlcSim, freePort } from './bench-support.ts';
import { DEMO_AGENT_SUBJECT, DEMO_ISSUER, demoResource, prepareDemoMcp } from './demo/mcp-demo.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    clients: { type: 'string', default: '8' },
    sessions: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});
const SECONDS = Number(args.seconds);
const CLIENTS = Number(args.clients);
const SESSIONS = Number(args.sessions);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'penstock-bench-mcp-'));
const children: ChildProcess[] = [];
const clients: { client: Client; transport: StreamableHTTPClientTransport }[] = [];

/** The read every path makes: FC 3, holding registers 0-3 (as scripts/bench-modbus.ts reads). */
const READ = { address: 0, count: 4 };
const READ_ARGS = { target: 'plc-1', table: 'holding', address: READ.address, count: READ.count };
const NOT_AVAILABLE = 'tool not available in this build';

interface Cell { calls: number; errors: number; seconds: number; p50_us: number; p99_us: number; gateway_cpu_us?: number }

// ------------------------------------------------------------------ processes

function startPlc(binary: string, port: number): Promise<void> {
  const child = spawn(binary, [String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`modbus-server exited ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (l) => l.startsWith('ready') && resolve());
  });
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
/** CPU time (user + system) the process has used so far, in µs: the gateway's own cost, whatever the load beside it. */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) / CLOCK_TICKS) * 1e6;
}

function rssOf(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

// ------------------------------------------------------------------ clients

/** A Modbus/TCP client with one request in flight: FC 3 reads, the latency of each. */
class ModbusReader {
  #socket: net.Socket;
  #buffer = Buffer.alloc(0);
  #waiting: ((frame: Buffer) => void) | undefined;
  #tid = 0;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      if (this.#buffer.length < 7) return;
      const length = 6 + this.#buffer.readUInt16BE(4);
      if (this.#buffer.length < length) return;
      const frame = this.#buffer.subarray(0, length);
      this.#buffer = this.#buffer.subarray(length);
      this.#waiting?.(frame);
    });
  }

  static connect(port: number): Promise<ModbusReader> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => resolve(new ModbusReader(s)));
      s.once('error', reject);
    });
  }

  /** One FC 3 read; true when the answer is the registers (not an exception). */
  read(unit: number, address: number, count: number): Promise<boolean> {
    const tid = (this.#tid = (this.#tid + 1) & 0xffff);
    const req = Buffer.alloc(12);
    req.writeUInt16BE(tid, 0);
    req.writeUInt16BE(6, 4);
    req.writeUInt8(unit, 6);
    req.writeUInt8(3, 7);
    req.writeUInt16BE(address, 8);
    req.writeUInt16BE(count, 10);
    return new Promise((resolve) => {
      this.#waiting = (frame) => resolve(frame.readUInt16BE(0) === tid && frame[7] === 3 && frame[8] === count * 2);
      this.#socket.write(req);
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}

async function agent(resource: string, token: string): Promise<Client> {
  const client = new Client({ name: 'penstock-bench-agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  await client.connect(transport);
  clients.push({ client, transport });
  return client;
}

/** One tool call; false for a tool error (a refusal, a spent budget). */
async function call(client: Client, name: string, toolArgs: Record<string, unknown>): Promise<boolean> {
  const r = await client.callTool({ name, arguments: toolArgs });
  return r.isError !== true;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! : NaN;
}

/** `op` in a loop on each worker for `seconds`; calls/s from the total, p50/p99 over every call. */
async function loop<T>(workers: T[], seconds: number, op: (w: T) => Promise<boolean>): Promise<Cell> {
  const lat: number[] = [];
  let errors = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(workers.map(async (w) => {
    while (performance.now() < end) {
      const t = performance.now();
      if (!(await op(w))) errors++;
      lat.push((performance.now() - t) * 1000);
    }
  }));
  lat.sort((a, b) => a - b);
  return { calls: lat.length, errors, seconds: (performance.now() - started) / 1000, p50_us: percentile(lat, 0.5), p99_us: percentile(lat, 0.99) };
}

/** The same one-at-a-time read on each path in 1 s slices taken in turn; p50/p99 over every read of a path. */
async function latencyInTurns(paths: { name: string; op: () => Promise<boolean> }[], seconds: number): Promise<Map<string, Cell>> {
  const lat = new Map(paths.map((p) => [p.name, [] as number[]]));
  const errors = new Map(paths.map((p) => [p.name, 0]));
  for (let i = 0; i < seconds; i++) {
    for (const p of paths) {
      const end = performance.now() + 1000;
      while (performance.now() < end) {
        const t = performance.now();
        if (!(await p.op())) errors.set(p.name, errors.get(p.name)! + 1);
        lat.get(p.name)!.push((performance.now() - t) * 1000);
      }
    }
  }
  return new Map(paths.map((p) => {
    const xs = lat.get(p.name)!.sort((a, b) => a - b);
    return [p.name, { calls: xs.length, errors: errors.get(p.name)!, seconds, p50_us: percentile(xs, 0.5), p99_us: percentile(xs, 0.99) }];
  }));
}

// ------------------------------------------------------------------ the run

let daemon: ChildProcess | undefined;
try {
  const plcPort = await freePort();
  await startPlc(compilePlcSim(dir, 'modbus-server'), plcPort);
  const modbusPort = await freePort();
  const mcpPort = await freePort();
  const resource = demoResource(mcpPort);
  // The demo's MCP half: a CA and the door's certificate, an identity provider's key pair and JWKS, a token.
  const { files } = await prepareDemoMcp(dir, mcpPort);
  const token = readFileSync(files.tokenFile, 'utf8').trim();
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), readFileSync(files.caCert, 'utf8')]);

  const config = join(dir, 'penstock.yaml');
  writeFileSync(config, `
appliance: { id: gw-bench-mcp, site: Bench, zone: lab, state_dir: ${dir}/state, runtime_dir: ${dir}/run }
sessions: { actions_per_second: 10000000 }
listeners:
  - id: mb-bench
    protocol: modbus
    mode: tcp
    host: 127.0.0.1
    port: ${modbusPort}
    bindings: [{ source: 127.0.0.1, principal: bench }]
    routes: [{ unit: 1, target: plc-1 }]
  - id: mcp-bench
    protocol: mcp
    host: 127.0.0.1
    port: ${mcpPort}
    tls: { cert: ${files.tlsCert}, key: ${files.tlsKey} }
    resource: ${resource}
    issuers: [{ issuer: "${DEMO_ISSUER}", jwks_file: ${files.jwks} }]
    max_calls_per_task: 10000000
    # The door's own limits would refuse a benchmark's load: it measures the cost of a call, not the limits.
    calls_per_second: 10000
    max_sessions_per_principal: 64
principals:
  - { id: bench, kind: service, owner: Bench, purpose: Benchmark }
  - { id: bench-agent, kind: agent, owner: Bench, purpose: Benchmark, acting_for: "work-order:BENCH", credentials: { token_subjects: ["${DEMO_AGENT_SUBJECT}"] } }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: ${plcPort}, unit: 1 }
grants:
  - id: g-bench
    principal: bench
    targets: [plc-1]
    task: { ticket: BENCH }
    rules:
      - modbus: { access: read, tables: [holding_register], addresses: ["0-99"] }
  - id: g-bench-agent
    principal: bench-agent
    targets: [plc-1]
    task: { ticket: BENCH }
    rules:
      - modbus: { access: read, tables: [holding_register], addresses: ["0-99"] }
`);
  const shipped = shippedDaemon(root);
  const profile = args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [];
  daemon = spawn(process.execPath, [...shipped.flags, ...profile, shipped.main, '--config', config], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...shipped.env, PENSTOCK_LOG_LEVEL: 'error' } });
  children.push(daemon);
  for (let ready = false; !ready;) {
    if (daemon.exitCode !== null) throw new Error(`the daemon exited ${daemon.exitCode}`);
    ready = await adminRequest(join(dir, 'run', 'admin.sock'), 'status', {}, { timeoutMs: 500 }).then(() => true, () => false);
    if (!ready) await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 1000)); // settled, as bench-daemon measures idle
  const rssIdle = rssOf(daemon.pid!);

  const agents: Client[] = [];
  for (let i = 0; i < Math.max(CLIENTS, 1); i++) agents.push(await agent(resource, token));
  const tools = new Set((await agents[0]!.listTools()).tools.map((t) => t.name));
  const hasRead = tools.has('modbus_read');
  // Warm every path once (TLS, sessions, the upstream link).
  for (const a of agents) await call(a, 'my_access', {});
  if (hasRead) await call(agents[0]!, 'modbus_read', READ_ARGS);

  const throughput: { tool: string; clients: number; cell?: Cell }[] = [];
  for (const tool of ['my_access', 'modbus_read']) {
    for (const n of [1, CLIENTS]) {
      if (tool === 'modbus_read' && !hasRead) {
        throughput.push({ tool, clients: n });
        continue;
      }
      const cpu = cpuOf(daemon.pid!);
      const cell = await loop(agents.slice(0, n), SECONDS, (a) => call(a, tool, tool === 'my_access' ? {} : READ_ARGS));
      throughput.push({ tool, clients: n, cell: { ...cell, gateway_cpu_us: (cpuOf(daemon.pid!) - cpu) / cell.calls } });
    }
  }

  const direct = await ModbusReader.connect(plcPort);
  const door = await ModbusReader.connect(modbusPort);
  await direct.read(1, READ.address, READ.count);
  await door.read(1, READ.address, READ.count);
  const paths = [
    { name: 'direct to the PLC (Modbus/TCP)', op: () => direct.read(1, READ.address, READ.count) },
    { name: 'Modbus/TCP front door', op: () => door.read(1, READ.address, READ.count) },
    ...(hasRead ? [{ name: 'MCP door, modbus_read', op: () => call(agents[0]!, 'modbus_read', READ_ARGS) }] : []),
  ];
  const latency = await latencyInTurns(paths, SECONDS);
  direct.close();
  door.close();

  // 20 agent sessions open, each having listed its tools and made a call.
  for (const { transport } of clients.splice(0)) await transport.terminateSession().catch(() => {});
  await new Promise((r) => setTimeout(r, 500));
  const rssBefore = rssOf(daemon.pid!);
  for (let i = 0; i < SESSIONS; i++) {
    const a = await agent(resource, token);
    await a.listTools();
    await call(a, hasRead ? 'modbus_read' : 'my_access', hasRead ? READ_ARGS : {});
  }
  const status = (await adminRequest(join(dir, 'run', 'admin.sock'), 'status', {})) as { listeners?: { id: string; mcp_sessions?: number }[] };
  const open = status.listeners?.find((l) => l.id === 'mcp-bench')?.mcp_sessions;
  const rssSessions = rssOf(daemon.pid!);

  if (args.json) {
    console.log(JSON.stringify({ seconds: SECONDS, clients: CLIENTS, hasRead, throughput, latency: Object.fromEntries(latency), rss: { idle: rssIdle, before_sessions: rssBefore, with_sessions: rssSessions, sessions: SESSIONS, open } }, null, 2));
  } else {
    const f = (n: number, w = 7) => (Number.isFinite(n) ? n.toFixed(0) : '-').padStart(w);
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
    console.log(`MCP door (Streamable HTTP over TLS, official SDK client, one session per agent kept open), ${SECONDS} s per cell`);
    console.log('tool          agents  calls/s |  p50 µs |  p99 µs | gateway CPU µs/call | errors');
    for (const r of throughput) {
      const label = `${r.tool.padEnd(13)} ${String(r.clients).padStart(6)}`;
      if (!r.cell) console.log(`${label}  ${NOT_AVAILABLE}`);
      else console.log(`${label} ${f(r.cell.calls / r.cell.seconds, 8)} | ${f(r.cell.p50_us)} | ${f(r.cell.p99_us)} | ${f(r.cell.gateway_cpu_us!, 19)} | ${r.cell.errors}`);
    }
    const base = latency.get(paths[0]!.name)!;
    console.log(`\nOne read (FC 3, ${READ.count} registers), one at a time, ${SECONDS} s per path in alternating 1 s slices`);
    console.log('path                              reads |  p50 µs (added) |  p99 µs (added) | errors');
    for (const p of paths) {
      const c = latency.get(p.name)!;
      console.log(`${p.name.padEnd(31)} ${f(c.calls, 7)} | ${f(c.p50_us)} (${f(c.p50_us - base.p50_us, 6)}) | ${f(c.p99_us)} (${f(c.p99_us - base.p99_us, 6)}) | ${c.errors}`);
    }
    if (!hasRead) console.log(`MCP door, modbus_read             ${NOT_AVAILABLE}`);
    console.log(`\ngateway RSS: idle ${mib(rssIdle)}; ${mib(rssBefore)} after the runs; with ${SESSIONS} agent sessions open (${open ?? '?'} on the door, each listed its tools and called ${hasRead ? 'modbus_read' : 'my_access'}) ${mib(rssSessions)} (+${((rssSessions - rssBefore) / SESSIONS / 1024).toFixed(0)} KiB a session)`);
  }
} finally {
  await Promise.allSettled(clients.map(({ transport }) => transport.terminateSession().then(() => transport.close())));
  for (const c of children) if (c.exitCode === null) c.kill(c === daemon ? 'SIGTERM' : 'SIGKILL');
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  rmSync(dir, { recursive: true, force: true });
}
