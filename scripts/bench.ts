// `npm run bench`: every figure the README quotes, measured on this machine in one run. Not a test:
// nothing here asserts a time. Each part prints its own table, side by side with a direct connection
// where there is one (ratios = through Penstock / direct).
//   PENSTOCK_BENCH_ONLY=journal,modbus   run only some parts
//   PENSTOCK_BENCH_SECONDS=3             seconds per throughput cell (Modbus, MCP: about 7 x this + 10 s)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, totalmem } from 'node:os';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const only = process.env.PENSTOCK_BENCH_ONLY?.split(',').map((s) => s.trim());
const seconds = process.env.PENSTOCK_BENCH_SECONDS ?? '3';

const parts: { name: string; script: string; args: string[] }[] = [
  { name: 'daemon', script: 'scripts/bench-daemon.ts', args: [] },
  { name: 'journal', script: 'scripts/bench-journal.ts', args: [] },
  { name: 'modbus', script: 'scripts/bench-modbus.ts', args: ['--seconds', seconds] },
  { name: 'ssh', script: 'scripts/bench-ssh.ts', args: [] },
  { name: 'opcua', script: 'scripts/bench-opcua.ts', args: [] },
  { name: 'mcp', script: 'scripts/bench-mcp.ts', args: ['--seconds', seconds] },
  { name: 'fleet', script: 'scripts/bench-fleet.ts', args: [] },
];

// The daemon is measured as shipped: from dist/, built from the src/ in this checkout now.
const build = spawnSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' });
if (build.status !== 0) process.exit(1);

console.log(`Penstock bench — Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${new Date().toISOString()}`);
let failed = 0;
for (const part of parts) {
  if (only && !only.includes(part.name)) continue;
  if (!existsSync(join(root, part.script))) {
    console.log(`\n== ${part.name}: ${part.script} not present, skipped`);
    continue;
  }
  console.log(`\n== ${part.name} (${part.script})`);
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', join(root, part.script), ...part.args], { stdio: 'inherit', cwd: root });
    child.once('exit', resolve);
  });
  if (code !== 0) {
    failed++;
    console.log(`== ${part.name}: exited ${code}`);
  }
}
process.exitCode = failed ? 1 : 0;
