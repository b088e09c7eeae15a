// SSH figures, side by side with OpenSSH straight to the same sshd (same machine, loopback):
//   - median wall time of one `ssh HOST echo x` (new connection, auth, exec, exit) over many runs
//   - throughput of a 100 MiB SFTP download (sftp -b, get)
//   - RSS of the gateway with 20 concurrent SSH sessions (each running `sleep` on the target)
// Each through Penstock (policy, journal, recording, brokered credential) and direct, as ratios.
// usage: node scripts/bench-ssh.ts [--runs 40] [--mib 100] [--sessions 20]   (root, or the penstocktest user existing)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, writeSync, closeSync, readFileSync, rmSync, writeFileSync, chownSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { run, until, testUserIds, clientOptions } from '../test/adapters/ssh/harness.ts';
import { startSite } from '../test/adapters/ssh/fixture.ts';
import { shippedDaemon } from './shipped-daemon.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '40' }, mib: { type: 'string', default: '100' }, sessions: { type: 'string', default: '20' } } });
const RUNS = Number(values.runs);
const MIB = Number(values.mib);
const SESSIONS = Number(values.sessions);

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

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

// The daemon as the unit runs it (dist/, its V8 flags and environment).
const shipped = shippedDaemon(join(dirname(fileURLToPath(import.meta.url)), '..'));
const site = await startSite({ daemon: { argv: [...shipped.flags, shipped.main], env: shipped.env } });
try {
  const benchDir = join(site.target, 'bench');
  // A grant for the benchmark, issued at run time (the target folder's path is only known now).
  const grant = { id: 'g-bench-run', principal: 'vendor-a', targets: ['rtu-7'], task: { ticket: 'BENCH' }, rules: [{ ssh: { exec: ['true'] } }, { ssh: { sftp: { paths: [`${benchDir}/**`], direction: 'download' } } }] };
  const gfile = join(site.dir, 'bench-grant.json');
  writeFileSync(gfile, JSON.stringify(grant));
  const issued = await site.gw.ctl(['grants', 'issue', '--file', gfile]);
  if (issued.code !== 0) throw new Error(`grant: ${issued.stderr}`);
  mkdirSync(benchDir, { recursive: true });
  const { uid, gid } = testUserIds();
  chownSync(benchDir, uid, gid);
  const big = join(benchDir, 'big.bin');
  const fd = openSync(big, 'w');
  const chunk = randomBytes(1 << 20);
  for (let i = 0; i < MIB; i++) writeSync(fd, chunk);
  closeSync(fd);

  // Direct: the same key Penstock uses toward the target, the target's host key pinned.
  const directKnown = join(site.dir, 'known_direct');
  writeFileSync(directKnown, `[127.0.0.1]:${site.sshd.port} ${site.sshd.hostKeyLine.split(' ').slice(0, 2).join(' ')}\n`);
  const directKey = join(site.dir, 'keys', 'penstock_to_rtu');
  const directSsh = [...clientOptions(directKnown, directKey), '-p', String(site.sshd.port), 'penstocktest@127.0.0.1'];
  const viaSsh = site.sshArgs('rtu-7');

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

  const batch = join(site.dir, 'bench-batch');
  const out = join(site.dir, 'big.out');
  writeFileSync(batch, `get ${big} ${out}\n`);
  const sftpDirect = await timed('sftp', ['-b', batch, ...clientOptions(directKnown, directKey), '-P', String(site.sshd.port), 'penstocktest@127.0.0.1']);
  rmSync(out);
  const sftpVia = await timed('sftp', ['-b', batch, ...site.fileArgs(), 'rtu-7@127.0.0.1']);
  rmSync(out);

  const idleRss = rssOf(site.gw.pid);
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
  await until(async () => {
    const r = await site.gw.ctl(['--json', 'sessions', 'list']);
    return r.code === 0 && (JSON.parse(r.stdout) as unknown[]).length >= SESSIONS;
  }, `${SESSIONS} sessions`, 60_000);
  await new Promise((r) => setTimeout(r, 500));
  const busyRss = rssOf(site.gw.pid);
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));

  const mibps = (ms: number) => MIB / (ms / 1000);
  const figures = {
    exec_runs: RUNS,
    exec_median_ms: { direct: +execDirect.toFixed(1), penstock: +execVia.toFixed(1), time_ratio: +(execVia / execDirect).toFixed(2) },
    sftp_download_mib_per_s: { mib: MIB, direct: +mibps(sftpDirect).toFixed(1), penstock: +mibps(sftpVia).toFixed(1), time_ratio: +(sftpVia / sftpDirect).toFixed(2) },
    rss_mib: { idle: +(idleRss / 2 ** 20).toFixed(1), [`with_${SESSIONS}_sessions`]: +(busyRss / 2 ** 20).toFixed(1) },
  };
  console.log(JSON.stringify(figures, null, 2));
} finally {
  await site.stop();
}
