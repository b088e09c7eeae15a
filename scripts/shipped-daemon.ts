// The daemon's command line as systemd/penstock.service ships it, mapped onto this checkout, so the
// benches measure exactly what a gateway runs (flags and entry point read from the unit, not copied).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const INSTALL_PREFIX = '/opt/penstock';

export interface ShippedDaemon {
  /** Node/V8 flags (PENSTOCK_V8_FLAGS of the unit's Environment=). */
  flags: string[];
  /** The entry point under `root` (dist/main.js). */
  main: string;
  /** The arguments after the entry point, as the unit has them. */
  args: string[];
  /** The unit's Environment= for the daemon (malloc settings), PENSTOCK_V8_FLAGS left out. */
  env: Record<string, string>;
}

export function shippedDaemon(root: string): ShippedDaemon {
  const unit = readFileSync(join(root, 'systemd/penstock.service'), 'utf8');
  const env = new Map<string, string>();
  for (const m of unit.matchAll(/^Environment=(.*)$/gm)) {
    for (const a of m[1]!.matchAll(/"([^"=]+)=([^"]*)"|(\S+?)=(\S*)/g)) env.set(a[1] ?? a[3]!, a[2] ?? a[4]!);
  }
  const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1]?.trim().split(/\s+/);
  if (!exec) throw new Error('systemd/penstock.service has no ExecStart');
  // systemd splits an unquoted $VAR word on whitespace.
  const words = exec.slice(1).flatMap((w) => (w.startsWith('$') ? (env.get(w.slice(1)) ?? '').split(/\s+/).filter(Boolean) : [w]));
  const at = words.findIndex((w) => w.startsWith(`${INSTALL_PREFIX}/`));
  if (at < 0) throw new Error(`ExecStart runs nothing under ${INSTALL_PREFIX}`);
  const { PENSTOCK_V8_FLAGS: _flags, ...rest } = Object.fromEntries(env);
  return { flags: words.slice(0, at), main: join(root, words[at]!.slice(INSTALL_PREFIX.length)), args: words.slice(at + 1), env: rest };
}
