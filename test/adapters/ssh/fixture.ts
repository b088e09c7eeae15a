// One site for the SSH end-to-end tests: a real sshd target (rtu-7), a pymodbus PLC (plc-1), the real
// daemon with an SSH front door, principals with plain keys and with certificates, and grants.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { Plc } from '../modbus/fixtures/harness.ts';
import {
  Gateway,
  Sshd,
  clientOptions,
  ensureTestUser,
  freePort,
  keygen,
  prepareGateway,
  run,
  targetFolder,
  tempDir,
  writeKnownHosts,
  type Run,
} from './harness.ts';

export interface Site {
  dir: string;
  gw: Gateway;
  sshd: Sshd;
  plc: Plc;
  target: string;
  keys: { vendor: string; agent: string; ca: string; stranger: string };
  knownHosts: string;
  /** ssh as vendor-a (plain key) to USER@gateway. */
  ssh(user: string, command: string[] | undefined, opts?: { key?: string; extra?: string[]; input?: string; timeoutMs?: number }): Promise<Run>;
  sshArgs(user: string, key?: string, extra?: string[]): string[];
  /** Options for sftp and scp (which take -P for the port). */
  fileArgs(key?: string): string[];
  stop(): Promise<void>;
}

/** `daemon`: Node flags, entry point and environment (default src/main.ts; the bench passes the shipped ones). */
/**
 * `sshdConfig`: more sshd_config lines for the target (e.g. AcceptEnv, SetEnv); `targets`: more target
 * entries, given the sshd's port and known_hosts line.
 */
export async function startSite(extraYaml: { grants?: string; listener?: string; loginGraceSeconds?: number; daemon?: { argv: string[]; env: Record<string, string> }; sshdConfig?: string[]; targets?: (sshd: { port: number; hostKeyLine: string }) => string } = {}): Promise<Site> {
  ensureTestUser();
  const { dir, cleanup } = tempDir('penstock-ssh-');
  const k = join(dir, 'keys');
  await run('mkdir', ['-p', k]);
  const vendor = keygen(join(k, 'vendor_ed25519'));
  const agent = keygen(join(k, 'agent_ecdsa'), 'ecdsa');
  const stranger = keygen(join(k, 'stranger_ed25519'));
  const ca = keygen(join(k, 'ca_ed25519'));
  const targetLogin = keygen(join(k, 'penstock_to_rtu'));
  // A peer that cannot start fails the site at once with its own error, and stops what already
  // started: a leftover sshd would keep the test file's process (and CI) waiting for ever.
  const started: { stop(): Promise<void> }[] = [];
  const orStop = async <T extends { stop(): Promise<void> }>(starting: Promise<T>): Promise<T> => {
    try {
      const peer = await starting;
      started.push(peer);
      return peer;
    } catch (err) {
      await Promise.allSettled(started.map((p) => p.stop()));
      cleanup();
      throw err;
    }
  };
  const sshd = await orStop(Sshd.start(dir, [targetLogin.pub], extraYaml.sshdConfig));
  const plcPort = await freePort();
  const plc = await orStop(Plc.start('tcp', plcPort));
  const target = targetFolder(dir);
  const bogusHostKey = keygen(join(k, 'bogus_host')).pub;

  const files = prepareGateway(dir, { 'rtu-7': readFileSync(targetLogin.key, 'utf8') }, (f) => `
appliance: { id: gw-ssh-test, site: test, zone: plant, state_dir: ${f.stateDir}, runtime_dir: ${f.dir}/run }
admin: { socket: ${f.adminSocket} }
vault: { file: ${f.dir}/vault.json, key_file: ${f.dir}/vault.key }
approvals: { timeout_seconds: 60 }
listeners:
  - id: ssh-main
    protocol: ssh
    host: 127.0.0.1
    port: 0
    host_key: ${f.hostKey.key}
    trusted_user_ca_keys: ["${ca.pub}"]
    login_grace_seconds: ${extraYaml.loginGraceSeconds ?? 5}
${extraYaml.listener ?? ''}
principals:
  - id: vendor-a
    kind: vendor
    owner: ACME Automation
    purpose: RTU maintenance
    credentials: { ssh_keys: ["${vendor.pub}"] }
  - id: agent-7
    kind: agent
    owner: ACME Automation
    purpose: log collection task
    acting_for: vendor-a
    credentials: { ssh_cert_principals: [task-logs-7] }
  - id: vendor-b
    kind: vendor
    owner: Other Corp
    purpose: none here
    credentials: { ssh_cert_principals: [other-b] }
targets:
  - id: rtu-7
    protocol: ssh
    zone: plant
    host: 127.0.0.1
    port: ${sshd.port}
    username: penstocktest
    credential: vault:rtu-7
    host_keys: ["[127.0.0.1]:${sshd.port} ${sshd.hostKeyLine}"]
  - id: rtu-bogus
    protocol: ssh
    zone: plant
    host: 127.0.0.1
    port: ${sshd.port}
    username: penstocktest
    credential: vault:rtu-7
    host_keys: ["${bogusHostKey}"]
${extraYaml.targets?.(sshd) ?? ''}
  - id: plc-1
    protocol: modbus
    zone: plant
    host: 127.0.0.1
    port: ${plcPort}
grants:
  - id: g-rtu
    principal: vendor-a
    targets: [rtu-7, rtu-bogus]
    task: { ticket: WO-4411, purpose: bridge service check }
    rules:
      - ssh: { exec: [echo, "..."] }
      - ssh: { exec: [ls, "..."] }
      - ssh: { exec: [cat, "*"] }
      - ssh: { exec: [sleep, "*"] }
      - ssh: { exec: [touch, ${target}/allowed-marker] }
      - ssh: { effect: approve, exec: [touch, "-a", "*"] }
      - ssh: { effect: deny, exec: [rm, "..."] }
      - ssh: { shell: true }
      - ssh: { sftp: { paths: ["${target}/**"], direction: both, max_bytes: 2000000 } }
      - ssh: { sftp: { paths: ["/etc/hostname"], direction: download } }
  - id: g-plc
    principal: vendor-a
    targets: [plc-1]
    task: { ticket: WO-4411 }
    rules:
      - modbus: { preset: readonly }
      - ssh: { tunnel: modbus }
  - id: g-agent
    principal: agent-7
    targets: [rtu-7]
    task: { ticket: WO-4412 }
    rules:
      - ssh: { exec: [uname, "..."] }
      - ssh: { exec: [uname, "-s"] }
      - ssh: { exec: [echo, "..."] }
${extraYaml.grants ?? ''}
`);
  const gw = await orStop(Gateway.start(files, 'ssh-main', extraYaml.daemon));
  const knownHosts = join(dir, 'known_hosts');
  writeKnownHosts(knownHosts, gw.port, files.hostKey.pub);
  const sshArgs = (user: string, key = vendor.key, extra: string[] = []) => [...clientOptions(knownHosts, key, extra), '-p', String(gw.port), `${user}@127.0.0.1`];
  return {
    dir,
    gw,
    sshd,
    plc,
    target,
    keys: { vendor: vendor.key, agent: agent.key, ca: ca.key, stranger: stranger.key },
    knownHosts,
    sshArgs,
    fileArgs: (key = vendor.key) => [...clientOptions(knownHosts, key), '-P', String(gw.port)],
    ssh: (user, command, o = {}) => run('ssh', [...sshArgs(user, o.key, o.extra), ...(command ? ['--', ...command] : [])], { ...(o.input !== undefined ? { input: o.input } : {}), timeoutMs: o.timeoutMs ?? 30_000 }),
    stop: async () => {
      await Promise.allSettled([gw.stop(), sshd.stop(), plc.stop()]);
      if (!process.env.PENSTOCK_KEEP_TEST_DIR) cleanup();
    },
  };
}
