// Daemon RSS at idle: the demo site's config (two Modbus targets, one front door), started as a
// process like systemd would, measured after it settles. The gateway is small: watch this number.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adminRequest } from '../src/admin/client.ts';
import { shippedDaemon } from './shipped-daemon.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'penstock-bench-daemon-'));
const config = join(dir, 'penstock.yaml');
writeFileSync(config, readFileSync(join(root, 'scripts/demo/site.yaml'), 'utf8').replaceAll('@STATE@', dir).replace('port: 1502', 'port: 0'));
const socket = join(dir, 'run', 'admin.sock');
const started = performance.now();
// As systemd/penstock.service runs it: its V8 flags and environment, the built dist/.
const shipped = shippedDaemon(root);
const daemon = spawn(process.execPath, [...shipped.flags, shipped.main, '--config', config], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...shipped.env, PENSTOCK_LOG_LEVEL: 'error' } });

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

try {
  let ready = false;
  while (!ready) {
    try {
      await adminRequest(socket, 'status', {}, { timeoutMs: 500 });
      ready = true;
    } catch {
      if (daemon.exitCode !== null) throw new Error(`daemon exited ${daemon.exitCode}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const startMs = performance.now() - started;
  await new Promise((r) => setTimeout(r, 3000));
  const rss = rssOf(daemon.pid!);
  console.log('| measure | value |\n| --- | --- |');
  console.log(`| start to admin socket answering | ${(startMs / 1000).toFixed(2)} s |`);
  console.log(`| daemon RSS at idle (demo site, 3 s after start) | ${(rss / 2 ** 20).toFixed(1)} MiB |`);
} finally {
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
