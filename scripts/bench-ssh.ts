// SSH figures, side by side with OpenSSH straight to the same sshd (same machine, loopback):
//   - median wall time of one `ssh HOST true` (new connection, auth, exec, exit) over many runs
//   - SFTP download and upload of one file (sftp -b, get / put) three ways, in alternating rounds:
//     direct to sshd, through a bare TCP relay (socat: the floor any relay pays on these shared cores)
//     and through Penstock (policy, journal, SHA-256 of every byte); the median of the rounds, ratios
//     to direct and to the relay, and the gateway's CPU time and minor page faults per transfer (less noisy than wall time)
//   - the cipher each leg negotiated (client → Penstock, Penstock → target, and direct)
//   - RSS of the gateway after the transfers (and its peak) and with 20 concurrent SSH sessions
// usage: node scripts/bench-ssh.ts [--runs 40] [--mib 100] [--rounds 3] [--sessions 20]
//          [--only exec,sftp,sessions] [--transfers get,put] [--profile DIR]   (root, or the penstocktest user existing)
// --profile DIR writes the gateway's CPU profile (.cpuprofile) there when it stops.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, writeSync, closeSync, readFileSync, rmSync, writeFileSync, chownSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { run, until, testUserIds, clientOptions, freePort, waitForPort } from '../test/adapters/ssh/harness.ts';
import { startSite } from '../test/adapters/ssh/fixture.ts';
import { shippedDaemon } from './shipped-daemon.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '40' },
    mib: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
    sessions: { type: 'string', default: '20' },
    only: { type: 'string', default: 'exec,sftp,sessions' },
    transfers: { type: 'string', default: 'get,put' },
    profile: { type: 'string' },
  },
});
const RUNS = Number(values.runs);
const MIB = Number(values.mib);
const ROUNDS = Number(values.rounds);
const SESSIONS = Number(values.sessions);
const ONLY = new Set(values.only.split(',').map((s) => s.trim()));
const TRANSFERS = values.transfers.split(',').map((s) => s.trim()) as ('get' | 'put')[];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function timed(cmd: string, args: string[]): Promise<number> {
  const t = performance.now();
  const r = await run(cmd, args, { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`${cmd} failed (${r.code}): ${r.stderr}`);
  return performance.now() - t;
}

function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/** Fields of /proc/PID/stat after the command name (field 3, the state, is [0]). */
function procStat(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** User + system CPU seconds of a process so far (clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const f = procStat(pid);
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Minor page faults of a process so far: fresh memory touched (a buffer allocated and filled faults once per 4 KiB page). */
function minorFaults(pid: number): number {
  return Number(procStat(pid)[7]);
}

/** The cipher OpenSSH's client negotiated (from its debug output), e.g. "chacha20-poly1305@openssh.com". */
async function clientCipher(args: string[]): Promise<string> {
  const r = await run('ssh', ['-o', 'LogLevel=DEBUG1', ...args, 'true'], { timeoutMs: 30_000 });
  return /kex: server->client cipher: (\S+) MAC: (\S+)/.exec(r.stderr)?.slice(1).filter((s) => s !== '<implicit>').join(' + ') ?? '?';
}

const mib = (bytes: number) => +(bytes / 2 ** 20).toFixed(1);
const ratio = (a: number, b: number) => +(a / b).toFixed(2);

// The daemon as the unit runs it (dist/, its V8 flags and environment).
const shipped = shippedDaemon(join(dirname(fileURLToPath(import.meta.url)), '..'));
const profileFlags = values.profile ? ['--cpu-prof', '--cpu-prof-dir', resolve(values.profile)] : [];
// Debug logs carry the algorithms each leg negotiated (adapter.ts, upstream.ts).
process.env.PENSTOCK_TEST_LOG ??= 'debug';
const site = await startSite({ daemon: { argv: [...shipped.flags, ...profileFlags, shipped.main], env: shipped.env } });
let relay: ChildProcess | undefined;
try {
  const benchDir = join(site.target, 'bench');
  // A grant for the benchmark, issued at run time (the target folder's path is only known now).
  const grant = {
    id: 'g-bench-run',
    principal: 'vendor-a',
    targets: ['rtu-7'],
    task: { ticket: 'BENCH' },
    rules: [{ ssh: { exec: ['true'] } }, { ssh: { sftp: { paths: [`${benchDir}/**`], direction: 'both' } } }],
  };
  const gfile = join(site.dir, 'bench-grant.json');
  writeFileSync(gfile, JSON.stringify(grant));
  const issued = await site.gw.ctl(['grants', 'issue', '--file', gfile]);
  if (issued.code !== 0) throw new Error(`grant: ${issued.stderr}`);
  mkdirSync(benchDir, { recursive: true });
  const { uid, gid } = testUserIds();
  chownSync(benchDir, uid, gid);

  // Direct: the same key Penstock uses toward the target, the target's host key pinned.
  const hostKey = site.sshd.hostKeyLine.split(' ').slice(0, 2).join(' ');
  const directKnown = join(site.dir, 'known_direct');
  const directKey = join(site.dir, 'keys', 'penstock_to_rtu');
  // The floor: a relay that copies bytes and does nothing else, to the same sshd.
  const relayPort = await freePort();
  relay = spawn('socat', [`TCP-LISTEN:${relayPort},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${site.sshd.port}`], { stdio: 'ignore' });
  await waitForPort(relayPort);
  writeFileSync(directKnown, `[127.0.0.1]:${site.sshd.port} ${hostKey}\n[127.0.0.1]:${relayPort} ${hostKey}\n`);
  const directSsh = [...clientOptions(directKnown, directKey), '-p', String(site.sshd.port), 'penstocktest@127.0.0.1'];
  const viaSsh = site.sshArgs('rtu-7');
  const figures: Record<string, unknown> = {};

  if (ONLY.has('exec')) {
    // Warm both paths once.
    await timed('ssh', [...directSsh, 'true']);
    await timed('ssh', [...viaSsh, 'true']);
    const direct: number[] = [];
    const via: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      direct.push(await timed('ssh', [...directSsh, 'true']));
      via.push(await timed('ssh', [...viaSsh, 'true']));
    }
    const execDirect = median(direct);
    const execVia = median(via);
    figures.exec = { runs: RUNS, median_ms: { direct: +execDirect.toFixed(1), penstock: +execVia.toFixed(1), time_ratio: ratio(execVia, execDirect) } };
  }

  if (ONLY.has('sftp')) {
    const big = join(benchDir, 'big.bin');
    const fd = openSync(big, 'w');
    const chunk = randomBytes(1 << 20);
    for (let i = 0; i < MIB; i++) writeSync(fd, chunk);
    closeSync(fd);
    const local = join(site.dir, 'big.local');
    writeFileSync(local, readFileSync(big));
    const out = join(site.dir, 'big.out');
    const uploaded = join(benchDir, 'up.bin');
    const getBatch = join(site.dir, 'bench-get');
    const putBatch = join(site.dir, 'bench-put');
    writeFileSync(getBatch, `get ${big} ${out}\n`);
    writeFileSync(putBatch, `put ${local} ${uploaded}\n`);
    const paths = {
      direct: [...clientOptions(directKnown, directKey), '-P', String(site.sshd.port), 'penstocktest@127.0.0.1'],
      relay: [...clientOptions(directKnown, directKey), '-P', String(relayPort), 'penstocktest@127.0.0.1'],
      penstock: [...site.fileArgs(), 'rtu-7@127.0.0.1'],
    };
    type Path = keyof typeof paths;
    const names = Object.keys(paths) as Path[];
    const wall = { get: new Map<Path, number[]>(), put: new Map<Path, number[]>() };
    const gwCpu = { get: [] as number[], put: [] as number[] };
    const gwFaults = { get: [] as number[], put: [] as number[] };
    const transfer = async (op: 'get' | 'put', path: Path) => {
      const before = cpuSeconds(site.gw.pid);
      const faultsBefore = minorFaults(site.gw.pid);
      const ms = await timed('sftp', ['-b', op === 'get' ? getBatch : putBatch, ...paths[path]]);
      if (path === 'penstock') {
        gwCpu[op].push(cpuSeconds(site.gw.pid) - before);
        gwFaults[op].push(minorFaults(site.gw.pid) - faultsBefore);
      }
      (wall[op].get(path) ?? wall[op].set(path, []).get(path)!).push(ms);
      rmSync(op === 'get' ? out : uploaded, { force: true });
    };
    // Alternating, each round in a different order, so a busy spell on the shared cores hits all three.
    for (let r = 0; r < ROUNDS; r++) {
      const order = names.map((_, i) => names[(i + r) % names.length]!);
      for (const op of TRANSFERS) for (const p of order) await transfer(op, p);
    }
    const table = (op: 'get' | 'put') => {
      const rate = Object.fromEntries(names.map((p) => [p, +(MIB / (median(wall[op].get(p)!) / 1000)).toFixed(1)])) as Record<Path, number>;
      return {
        mib_per_s: rate,
        runs_mib_per_s: Object.fromEntries(names.map((p) => [p, wall[op].get(p)!.map((ms) => +(MIB / (ms / 1000)).toFixed(1))])),
        penstock_over_direct: ratio(rate.penstock, rate.direct),
        penstock_over_relay: ratio(rate.penstock, rate.relay),
        relay_over_direct: ratio(rate.relay, rate.direct),
        gateway_cpu_s_per_transfer: +median(gwCpu[op]).toFixed(2),
        gateway_cpu_ms_per_mib: +((median(gwCpu[op]) * 1000) / MIB).toFixed(2),
        gateway_page_faults_per_mib: Math.round(median(gwFaults[op]) / MIB),
      };
    };
    const negotiated = (msg: string) => {
      const line = site.gw.log.split('\n').filter((l) => l.includes(`"msg":"${msg}"`)).at(-1);
      return line ? (JSON.parse(line) as { cipher?: string }).cipher ?? '?' : '?';
    };
    figures.sftp = {
      mib: MIB,
      rounds: ROUNDS,
      ...(TRANSFERS.includes('get') ? { download: table('get') } : {}),
      ...(TRANSFERS.includes('put') ? { upload: table('put') } : {}),
      cipher: { client_to_penstock: await clientCipher(site.sshArgs('rtu-7')), penstock_to_target: negotiated('ssh upstream connected'), front_door_says: negotiated('ssh client connected'), direct: await clientCipher(directSsh) },
      gateway_rss_mib: { after_transfers: mib(procStatus(site.gw.pid, 'VmRSS')), peak: mib(procStatus(site.gw.pid, 'VmHWM')) },
    };
  }

  if (ONLY.has('sessions')) {
    const idleRss = procStatus(site.gw.pid, 'VmRSS');
    const children: ChildProcess[] = [];
    const live = async () => {
      const r = await site.gw.ctl(['--json', 'sessions', 'list']);
      return r.code === 0 ? (JSON.parse(r.stdout) as unknown[]).length : 0;
    };
    // In steps of 5: logins beyond the listener's max_unauthenticated at once would be dropped.
    for (let i = 0; i < SESSIONS; i++) {
      children.push(spawn('ssh', [...site.sshArgs('rtu-7'), 'sleep', '60'], { stdio: 'ignore' }));
      if (i % 5 === 4) await until(async () => (await live()) >= i + 1, `${i + 1} sessions`, 30_000);
    }
    await until(async () => (await live()) >= SESSIONS, `${SESSIONS} sessions`, 60_000);
    await new Promise((r) => setTimeout(r, 500));
    const busyRss = procStatus(site.gw.pid, 'VmRSS');
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    figures.rss_mib = { before_sessions: mib(idleRss), [`with_${SESSIONS}_sessions`]: mib(busyRss) };
  }
  console.log(JSON.stringify(figures, null, 2));
} finally {
  if (relay?.exitCode === null) relay.kill('SIGTERM');
  await site.stop();
}
