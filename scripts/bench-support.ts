// What the benches that drive the libmodbus simulated PLC share: building its C programs here, and a free
// loopback port.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import net from 'node:net';

const plcSim = new URL('./plc-sim/', import.meta.url).pathname;

/** Compile scripts/plc-sim/NAME.c into DIR/NAME with `cc … -lmodbus`; the binary's path. */
export function compilePlcSim(dir: string, name: string): string {
  const out = join(dir, name);
  let flags = ['-I/usr/include/modbus', '-lmodbus']; // Debian's libmodbus-dev layout, when pkg-config is absent
  try {
    flags = execFileSync('pkg-config', ['--cflags', '--libs', 'libmodbus'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/);
  } catch {}
  execFileSync('cc', ['-O2', '-pthread', '-o', out, join(plcSim, `${name}.c`), ...flags], { stdio: 'inherit' });
  return out;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}
