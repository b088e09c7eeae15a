// Runs the real daemon (src/main.ts) as a child process on a config file, and the real penstockctl
// against its admin socket. Used by the end-to-end tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';

export { tempDir, until } from '../support.ts';

export const ROOT = new URL('../../', import.meta.url).pathname;
export const NODE = process.execPath;

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run penstockctl (the real CLI, as a process). */
export function penstockctl(socket: string, args: string[], input?: string): Promise<CtlResult> {
  return new Promise((resolve) => {
    const child = spawn(NODE, [join(ROOT, 'src/cli/penstockctl.ts'), '--socket', socket, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // 'close', not 'exit': the process can exit before its output has been read, and a loaded machine shows it.
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

export interface DaemonProcess {
  child: ChildProcess;
  configFile: string;
  socket: string;
  stderr(): string;
  exited: Promise<number | null>;
  ctl(args: string[], input?: string): Promise<CtlResult>;
  /** ctl with --json, parsed; throws with stderr on a non-zero exit. */
  json<T = unknown>(args: string[]): Promise<T>;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

/** Write `yaml` to DIR/penstock.yaml and start the daemon on it. Resolves once the admin socket answers. */
export async function startDaemon(dir: string, yaml: string, opts: { env?: NodeJS.ProcessEnv; waitReady?: boolean; main?: string[] } = {}): Promise<DaemonProcess> {
  const configFile = join(dir, 'penstock.yaml');
  writeFileSync(configFile, yaml);
  const socket = join(dir, 'run', 'admin.sock');
  // `main`: Node flags and the entry point (default src/main.ts, as `npm start` runs it).
  const child = spawn(NODE, [...(opts.main ?? [join(ROOT, 'src/main.ts')]), '--config', configFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PENSTOCK_LOG_LEVEL: process.env.PENSTOCK_TEST_LOG ?? 'warn', ...opts.env },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const d: DaemonProcess = {
    child,
    configFile,
    socket,
    stderr: () => stderr,
    exited,
    ctl: (args, input) => penstockctl(socket, args, input),
    json: async <T>(args: string[]) => {
      const r = await penstockctl(socket, ['--json', ...args]);
      if (r.code !== 0) throw new Error(`penstockctl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout) as T;
    },
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  if (opts.waitReady !== false) {
    const end = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}: ${stderr}`);
      if ((await penstockctl(socket, ['status'])).code === 0) break;
      if (Date.now() > end) throw new Error(`daemon did not answer on ${socket}: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return d;
}

/** Resolves true when something accepts a TCP connection (or a Unix socket path) right now. */
export function accepts(target: { port: number; host?: string } | string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = typeof target === 'string' ? connect(target) : connect(target.port, target.host ?? '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

