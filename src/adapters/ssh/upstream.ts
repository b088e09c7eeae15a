// The connection Penstock opens to an SSH target on a principal's behalf: ssh2 Client, the target's
// credential from the vault (revealed only here, only while connecting), and its host key pinned in
// config — an unknown or changed host key refuses the connection before any credential is sent.
import ssh2 from 'ssh2';
import type { Client as Ssh2Client, ServerHostKeyAlgorithm } from 'ssh2';
import { PenstockError } from '../../common/errors.ts';
import type { Core } from '../../core/core.ts';
import { fingerprint } from './keys.ts';
import { parseKnownHostsLine } from './upstream-keys.ts';
import type { SshTargetConfig } from './schema.ts';

const { Client } = ssh2;

export interface UpstreamConnection {
  readonly client: Ssh2Client;
  /** Fingerprint of the host key the target presented (pinned). */
  readonly hostKey: string;
  end(): void;
}

export type UpstreamFailure = 'host_key_mismatch' | 'auth_failed' | 'unreachable' | 'credential_missing';

export class UpstreamError extends PenstockError {
  readonly failure: UpstreamFailure;
  constructor(failure: UpstreamFailure, message: string) {
    super('PS_UPSTREAM_UNAVAILABLE', message, { failure });
    this.failure = failure;
  }
}

export function connectUpstream(core: Core, target: SshTargetConfig): Promise<UpstreamConnection> {
  const pinnedKeys = target.host_keys.map((l) => parseKnownHostsLine(l));
  const pinned = pinnedKeys.map((k) => k.blob);
  // Negotiate only the algorithms of pinned keys, so the target shows a key we can compare.
  const hostKeyAlgos = [...new Set(pinnedKeys.flatMap((k) => (k.type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256'] : [k.type])))];
  let presented: Buffer | undefined;
  let secret;
  try {
    secret = core.vault.resolve(target.credential!);
  } catch {
    return Promise.reject(new UpstreamError('credential_missing', `no credential for target ${target.id} in the vault`));
  }
  const value = secret.reveal();
  const isKey = value.startsWith('-----BEGIN');
  return new Promise((resolve, reject) => {
    const client = new Client();
    let settled = false;
    const fail = (e: UpstreamError) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(e);
    };
    client.on('ready', () => {
      if (settled) return client.end();
      settled = true;
      resolve({ client, hostKey: fingerprint(presented!), end: () => client.end() });
    });
    client.on('error', (err: Error & { level?: string }) => {
      if (presented && !pinned.some((p) => p.equals(presented!))) return fail(new UpstreamError('host_key_mismatch', `target ${target.id} presented host key ${fingerprint(presented)}, which is not pinned in its config`));
      if (err.level === 'client-authentication') return fail(new UpstreamError('auth_failed', `target ${target.id} refused Penstock's credential`));
      fail(new UpstreamError('unreachable', `target ${target.id} (${target.host}:${target.port}) could not be reached: ${err.message}`));
    });
    client.on('close', () => fail(new UpstreamError('unreachable', `target ${target.id} closed the connection`)));
    client.connect({
      host: target.host,
      port: target.port,
      username: target.username,
      ...(isKey ? { privateKey: value } : { password: value }),
      readyTimeout: target.connect_timeout_ms,
      keepaliveInterval: 15_000,
      // Only the pinned key's algorithm is worth negotiating; anything else is refused in the verifier.
      hostVerifier: (key: Buffer) => {
        presented = key;
        return pinned.some((p) => p.equals(key));
      },
      algorithms: { serverHostKey: hostKeyAlgos as ServerHostKeyAlgorithm[] },
      tryKeyboard: false,
    });
  });
}
