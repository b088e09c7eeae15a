// The demo site's SSH half: an unprivileged OpenSSH sshd on loopback as the target (its own host key,
// config and authorized_keys in the demo folder, logging in as the user running the demo, since an sshd
// that is not root cannot switch users), the keys the gateway and the vendor use, and an ssh_config so
// the printed commands stay short. Nothing outside the demo folder is changed (as root, sshd needs its
// privilege-separation folder /run/sshd, which is made if missing).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';

export const DEMO_SSH_TARGET = 'rtu-demo';
export const DEMO_SSH_LISTENER = 'ssh-demo';
export const DEMO_SSH_PRINCIPAL = 'acme-field';
/** The Host name the demo's ssh_config gives the gateway's SSH front door. */
export const DEMO_SSH_HOST = 'penstock-demo';

const SSHD_CANDIDATES = ['/usr/sbin/sshd', '/usr/local/sbin/sshd'];

/** The sshd binary (PENSTOCK_DEMO_SSHD names one; `none` leaves SSH out), or undefined where there is none. */
export function findSshd(): string | undefined {
  const named = process.env.PENSTOCK_DEMO_SSHD;
  if (named !== undefined && named !== '') return named !== 'none' && existsSync(named) ? named : undefined;
  return SSHD_CANDIDATES.find((p) => existsSync(p));
}

export interface DemoSshFiles {
  root: string;
  /** The folder the vendor may upload to and download from over SFTP. */
  exchange: string;
  /** ssh_config for the vendor: `ssh -F THIS rtu-demo@penstock-demo`. */
  clientConfig: string;
  vendorKey: string;
  vendorPub: string;
  gatewayHostKey: string;
  /** The gateway's login to the target: its private key goes into the vault, its public key into authorized_keys. */
  gatewayLoginKey: string;
  targetHostKey: string;
  targetHostPub: string;
  /** The user sshd logs the gateway in as (the one running the demo). */
  user: string;
}

function keygen(path: string): void {
  if (!existsSync(path)) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `penstock-demo ${path}`, '-f', path], { stdio: 'ignore' });
}

/** Make (once) the keys and folders the SSH half uses. */
export function prepareDemoSsh(dir: string): DemoSshFiles {
  const root = join(dir, 'ssh');
  const exchange = join(root, 'exchange');
  // 0755: sshd reads authorized_keys here as the demo user, whatever the umask made of the demo folder.
  mkdirSync(exchange, { recursive: true, mode: 0o755 });
  const f: DemoSshFiles = {
    root,
    exchange,
    clientConfig: join(root, 'ssh_config'),
    vendorKey: join(root, 'vendor_ed25519'),
    vendorPub: '',
    gatewayHostKey: join(root, 'gateway_host_ed25519'),
    gatewayLoginKey: join(root, 'gateway_login_ed25519'),
    targetHostKey: join(root, 'target_host_ed25519'),
    targetHostPub: '',
    user: userInfo().username,
  };
  for (const k of [f.vendorKey, f.gatewayHostKey, f.gatewayLoginKey, f.targetHostKey]) keygen(k);
  f.vendorPub = readFileSync(`${f.vendorKey}.pub`, 'utf8').trim();
  f.targetHostPub = readFileSync(`${f.targetHostKey}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
  return f;
}

/** The vendor's ssh_config and known_hosts: the gateway's host key pinned, the demo key, no agent. */
export function writeDemoClientConfig(f: DemoSshFiles, gatewayPort: number): void {
  const knownHosts = join(f.root, 'known_hosts');
  const hostPub = readFileSync(`${f.gatewayHostKey}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
  writeFileSync(knownHosts, `[127.0.0.1]:${gatewayPort} ${hostPub}\n`);
  writeFileSync(f.clientConfig, [
    `Host ${DEMO_SSH_HOST}`,
    '  HostName 127.0.0.1',
    `  Port ${gatewayPort}`,
    `  IdentityFile ${f.vendorKey}`,
    '  IdentitiesOnly yes',
    '  IdentityAgent none',
    `  UserKnownHostsFile ${knownHosts}`,
    '  StrictHostKeyChecking yes',
    '',
  ].join('\n'));
}

export interface DemoSshd {
  port: number;
  stop(): Promise<void>;
}

/** Start the target sshd on 127.0.0.1:`port`; resolves once it accepts connections. */
export async function startDemoSshd(sshd: string, f: DemoSshFiles, port: number): Promise<DemoSshd> {
  const authorized = join(f.root, 'authorized_keys');
  writeFileSync(authorized, `${readFileSync(`${f.gatewayLoginKey}.pub`, 'utf8').trim()}\n`, { mode: 0o644 });
  const config = join(f.root, 'sshd_config');
  writeFileSync(config, [
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    `HostKey ${f.targetHostKey}`,
    // Not root: no PAM, no switching users; the gateway logs in as the user running the demo.
    'UsePAM no',
    'StrictModes no',
    `AuthorizedKeysFile ${authorized}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    `AllowUsers ${f.user}`,
    'PermitRootLogin prohibit-password',
    'PidFile none',
    'LogLevel ERROR',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n'));
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const child = spawn(sshd, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitListening(child, port, () => stderr);
  return {
    port,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function waitListening(child: ChildProcess, port: number, stderr: () => string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`sshd exited with code ${child.exitCode}: ${stderr().trim()}`);
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sshd did not listen on 127.0.0.1:${port}: ${stderr().trim()}`);
}
