// Scaffolding of the SSH end-to-end tests: real peers only. The target is a real OpenSSH `sshd` on
// loopback (its own config, host key and authorized_keys in the test folder, logging in as the
// `penstocktest` user); the gateway is the real daemon (`src/main.ts --config FILE`) with its admin
// socket; clients are the real `ssh`, `sftp`, `scp` and `penstockctl`. Every child is killed and waited for.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { Vault } from '../../../src/vault/vault.ts';
import { freePort, tempDir as sharedTempDir } from '../../support.ts';
import { until } from '../../support.ts';
export { until };
export { freePort };

export const ROOT = new URL('../../../', import.meta.url).pathname;
export const NODE = process.execPath;
export const TEST_USER = 'penstocktest';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a program to completion (with a hard time-out so a hang fails the test instead of CI). */
export function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    let settled = false;
    const settle = (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    };
    child.once('close', settle);
    // A grandchild (sftp's ssh) may hold the pipes after the program itself exited: do not wait on it.
    child.once('exit', (code, signal) => setTimeout(() => settle(code, signal), 1000).unref());
    child.stdin.on('error', () => {}); // the program may exit without reading its input
    child.stdin.end(opts.input ?? '');
  });
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const made = sharedTempDir(prefix);
  // sshd reads authorized_keys as the test user: the folder must be reachable by it.
  chmodSync(made.dir, 0o755);
  return made;
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Why the SSH end-to-end tests cannot run here, or false when they can. */
export function sshSkipReason(): string | false {
  if (!existsSync('/usr/sbin/sshd') || !existsSync('/usr/bin/ssh')) return 'openssh-server/openssh-client are not installed';
  if (process.getuid?.() !== 0) {
    try {
      execFileSync('id', [TEST_USER], { stdio: 'ignore' });
    } catch {
      return `user ${TEST_USER} does not exist and the tests do not run as root to create it`;
    }
  }
  return false;
}

/** Create the target-side login user once (idempotent); sshd needs a usable password field. */
export function ensureTestUser(): void {
  try {
    execFileSync('id', [TEST_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['-m', TEST_USER], { stdio: 'ignore' });
  }
  if (process.getuid?.() === 0) execFileSync('usermod', ['-p', '*', TEST_USER], { stdio: 'ignore' });
}

export function testUserIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', TEST_USER]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', TEST_USER]).toString().trim());
  return { uid, gid };
}

/** ssh-keygen a key pair; returns the private key path and the public key line. */
export function keygen(path: string, type: 'ed25519' | 'ecdsa' | 'rsa' = 'ed25519'): { key: string; pub: string } {
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '3072'] : []), '-N', '', '-C', path, '-f', path], { stdio: 'ignore' });
  return { key: path, pub: readFileSync(`${path}.pub`, 'utf8').trim() };
}

/** Sign `keyPath.pub` with the CA: ssh-keygen -s CA -I ID -n PRINCIPALS -V VALIDITY [-O option…]. */
export function signCert(ca: string, keyPath: string, id: string, principals: string[], validity: string, options: string[] = []): string {
  execFileSync('ssh-keygen', ['-q', '-s', ca, '-I', id, '-n', principals.join(','), '-V', validity, ...options.flatMap((o) => ['-O', o]), `${keyPath}.pub`], { stdio: 'ignore' });
  return `${keyPath}-cert.pub`;
}

// ------------------------------------------------------------------ the target: a real sshd

export class Sshd {
  readonly port: number;
  /** known_hosts line of its host key. */
  readonly hostKeyLine: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  stderr = '';

  private constructor(port: number, hostKeyLine: string, child: ChildProcess) {
    this.port = port;
    this.hostKeyLine = hostKeyLine;
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-8000);
    });
  }

  /** Start sshd in `dir`/sshd, accepting `authorizedKeys` for the test user; `extraConfig`: more sshd_config lines. */
  static async start(dir: string, authorizedKeys: string[], extraConfig: string[] = []): Promise<Sshd> {
    const home = join(dir, 'sshd');
    mkdirSync(home, { recursive: true, mode: 0o755 });
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const hostKey = keygen(join(home, 'host_ed25519'));
    const authorized = join(home, 'authorized_keys');
    writeFileSync(authorized, `${authorizedKeys.join('\n')}\n`, { mode: 0o644 });
    const port = await freePort();
    const config = join(home, 'sshd_config');
    writeFileSync(config, [
      `ListenAddress 127.0.0.1`,
      `HostKey ${hostKey.key}`,
      'UsePAM no',
      'StrictModes no',
      `AuthorizedKeysFile ${authorized}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      `AllowUsers ${TEST_USER}`,
      'PidFile none',
      'LogLevel ERROR',
      'MaxSessions 50',
      'MaxStartups 100',
      'Subsystem sftp internal-sftp',
      ...extraConfig,
      '',
    ].join('\n'));
    const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config, '-h', hostKey.key, '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    const sshd = new Sshd(port, hostKey.pub, child);
    // An sshd that exits (bad config, missing privilege separation directory) fails at once, in its own words.
    const exited = new Promise<never>((_, reject) => child.once('close', (code) => reject(new Error(`sshd exited (${code}): ${sshd.stderr.trim() || 'no output'}`))));
    exited.catch(() => {});
    await Promise.race([waitForPort(port), exited]);
    return sshd;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null) this.#child.kill('SIGTERM');
    await this.#exited;
  }
}

// ------------------------------------------------------------------ the gateway: the real daemon

export interface GatewayFiles {
  dir: string;
  config: string;
  adminSocket: string;
  stateDir: string;
  hostKey: { key: string; pub: string };
}

/** Lay out a gateway: host key, vault key and vault with `secrets`, and the config from `yaml(files)`. */
export function prepareGateway(dir: string, secrets: Record<string, string>, yaml: (f: GatewayFiles) => string): GatewayFiles {
  const gw = join(dir, 'gw');
  mkdirSync(join(gw, 'run'), { recursive: true, mode: 0o700 });
  const files: GatewayFiles = {
    dir: gw,
    config: join(gw, 'penstock.yaml'),
    adminSocket: join(gw, 'run', 'admin.sock'),
    stateDir: join(gw, 'state'),
    hostKey: keygen(join(gw, 'host_ed25519')),
  };
  Vault.createKeyFile(join(gw, 'vault.key'));
  const vault = Vault.open(join(gw, 'vault.json'), join(gw, 'vault.key'));
  for (const [k, v] of Object.entries(secrets)) vault.set(k, v);
  writeFileSync(files.config, yaml(files));
  return files;
}

export class Gateway {
  readonly files: GatewayFiles;
  readonly port: number;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  log = '';

  private constructor(files: GatewayFiles, port: number, child: ChildProcess, log: () => string) {
    this.files = files;
    this.port = port;
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void log;
  }

  get pid(): number {
    return this.#child.pid!;
  }

  get alive(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  static async start(files: GatewayFiles, listener = 'ssh-main', daemon: { argv: string[]; env: Record<string, string> } = { argv: [join(ROOT, 'src/main.ts')], env: {} }): Promise<Gateway> {
    const child = spawn(NODE, [...daemon.argv, '--config', files.config, '--log-level', process.env.PENSTOCK_TEST_LOG ?? 'warn'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...daemon.env } });
    let log = '';
    const collect = (d: Buffer) => {
      log = (log + d.toString()).slice(-20_000);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    const ctl = (args: string[]) => run(NODE, [join(ROOT, 'src/cli/penstockctl.ts'), '--socket', files.adminSocket, ...args]);
    let port = 0;
    await until(async () => {
      if (child.exitCode !== null) throw new Error(`penstock exited: ${log}`);
      if (!existsSync(files.adminSocket)) return false;
      const r = await ctl(['--json', 'status']);
      if (r.code !== 0) return false;
      const status = JSON.parse(r.stdout) as { listeners: { id: string; port: number }[] };
      port = status.listeners.find((l) => l.id === listener)?.port ?? 0;
      return port > 0;
    }, 'penstock to start', 30_000);
    const gw = new Gateway(files, port, child, () => log);
    child.stdout!.on('data', (d: Buffer) => (gw.log = (gw.log + d.toString()).slice(-20_000)));
    child.stderr!.on('data', (d: Buffer) => (gw.log = (gw.log + d.toString()).slice(-20_000)));
    return gw;
  }

  /** penstockctl against this gateway's admin socket. */
  ctl(args: string[], timeoutMs?: number): Promise<Run> {
    return run(NODE, [join(ROOT, 'src/cli/penstockctl.ts'), '--socket', this.files.adminSocket, ...args], timeoutMs ? { timeoutMs } : {});
  }

  /** Every journal event so far (through penstockctl journal tail --json). */
  async events(): Promise<JournalEvent[]> {
    const r = await this.ctl(['--json', 'journal', 'tail', '-n', '2000']);
    if (r.code !== 0) throw new Error(`journal tail failed: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { events: { event: JournalEvent }[] }).events.map((e) => e.event);
  }

  /**
   * The journal once `ready` holds for it. Outcomes and session records are journaled lazily, and an
   * exec's outcome only once the program ended: the client can have its answer before they are committed.
   */
  eventsWhen(ready: (events: JournalEvent[]) => boolean, what: string): Promise<JournalEvent[]> {
    return until(async () => {
      const events = await this.events();
      return ready(events) ? events : undefined;
    }, what, 30_000);
  }

  async stop(): Promise<void> {
    if (this.alive) this.#child.kill('SIGTERM');
    const t = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(t);
  }
}

export interface JournalEvent {
  event: string;
  session?: string;
  principal?: string;
  target?: string;
  /** As journaled: the protocol block is keyed by protocol (journal/fields.ts). */
  action?: { target: string; verb: string; ssh?: Record<string, unknown>; modbus?: Record<string, unknown> };
  decision?: { effect: string; reason: string };
  outcome?: Record<string, unknown>;
  detail?: Record<string, unknown>;
}

// ------------------------------------------------------------------ the client: real OpenSSH

/** Options that make `ssh`/`sftp`/`scp` deterministic: no user config, the gateway's key pinned, no prompts. */
export function clientOptions(knownHosts: string, key: string, extra: string[] = []): string[] {
  return [
    '-F', '/dev/null',
    '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'IdentityAgent=none',
    '-o', 'LogLevel=ERROR',
    '-o', 'ConnectTimeout=10',
    '-i', key,
    ...extra,
  ];
}

export function writeKnownHosts(path: string, port: number, hostKeyPub: string): void {
  writeFileSync(path, `[127.0.0.1]:${port} ${hostKeyPub.split(' ').slice(0, 2).join(' ')}\n`);
}

/** A folder on the target side the test user can write to. */
export function targetFolder(dir: string): string {
  const p = join(dir, 'target');
  mkdirSync(p, { recursive: true, mode: 0o755 });
  const { uid, gid } = testUserIds();
  chownSync(p, uid, gid);
  return p;
}
