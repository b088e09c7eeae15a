// `npm run demo`: the built-in demo site. Starts two simulated inverters on loopback, writes the demo
// config into a folder of its own, runs the real daemon on it, and prints what to try.
// Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadFirmwareProfile } from '../src/config/profiles.ts';
import { adminRequest } from '../src/admin/client.ts';
import { startSimulatedPlc, type SimulatedPlc } from './demo/plc-sim.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = process.env.PENSTOCK_DEMO_DIR ?? join(tmpdir(), `penstock-demo-${process.getuid?.() ?? 0}`);
mkdirSync(dir, { recursive: true, mode: 0o700 });
const configFile = join(dir, 'penstock.yaml');
writeFileSync(configFile, readFileSync(join(root, 'scripts/demo/site.yaml'), 'utf8').replaceAll('@STATE@', dir));
const socket = join(dir, 'run', 'admin.sock');

const plcs: SimulatedPlc[] = [];
for (const [name, port] of [['fronius-symo-intsf', 15020], ['sunspec-der-1547', 15021]] as const) {
  plcs.push(await startSimulatedPlc(loadFirmwareProfile(name), port, (address, values) => {
    console.log(`[plc ${name}] write reached the PLC: address ${address} <- ${values.join(', ')}`);
  }));
}

const daemon = spawn(process.execPath, [join(root, 'src/main.ts'), '--config', configFile], {
  stdio: ['ignore', 'inherit', 'pipe'],
  env: { ...process.env, PENSTOCK_LOG_LEVEL: process.env.PENSTOCK_LOG_LEVEL ?? 'warn' },
});
daemon.stderr.pipe(process.stderr);

async function waitReady(): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    if (daemon.exitCode !== null) throw new Error(`the daemon exited with code ${daemon.exitCode}`);
    try {
      return (await adminRequest(socket, 'status', {}, { timeoutMs: 1000 })) as Record<string, unknown>;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error('the daemon did not become ready');
}

async function shutdown(code: number): Promise<never> {
  daemon.kill('SIGTERM');
  await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once('exit', r)));
  await Promise.all(plcs.map((p) => p.close()));
  process.exit(code);
}
process.once('SIGINT', () => void shutdown(0));
process.once('SIGTERM', () => void shutdown(0));

try {
  await waitReady();
} catch (err) {
  console.error(`demo: ${(err as Error).message}`);
  await shutdown(1);
}

const ctl = `bin/penstockctl --socket ${socket}`;
console.log(`
Penstock demo site is running (state in ${dir}).
  Simulated inverters:  inverter-1 on 127.0.0.1:15020, der-1 on 127.0.0.1:15021 (direct; the vendor does not use these)
  Vendor front door:    Modbus/TCP on 127.0.0.1:1502, unit 1 = inverter-1, unit 2 = der-1, you are principal acme-tech

Try, in another terminal (mbpoll: apt-get install mbpoll; its -r is 1-based, so -r 40070 is address 40069):
  mbpoll -m tcp -p 1502 -a 1 -r 40070 -c 17 -1 127.0.0.1          # read the inverter model (W at 40084): allowed
  mbpoll -m tcp -p 1502 -a 1 -r 40233 -1 127.0.0.1 50             # set WMaxLimPct to 50: allowed, journaled first
  mbpoll -m tcp -p 1502 -a 1 -r 40233 -1 127.0.0.1 95             # above the grant's bound: illegal data value
  mbpoll -m tcp -p 1502 -a 1 -r 40001 -1 127.0.0.1 7              # not granted: illegal data address
  mbpoll -m tcp -p 1502 -a 1 -r 40232 -1 -o 10 127.0.0.1 0        # Conn: waits (10 s) for a person to approve
  ${ctl} approvals list
  ${ctl} approvals approve ID
  ${ctl} status
  ${ctl} sessions list
  ${ctl} grants list
  ${ctl} policy check acme-tech inverter-1 modbus write holding_register 40232 --values 95   # dry run: why not?
  ${ctl} journal tail
  ${ctl} journal verify
Ctrl-C stops the demo.`);
