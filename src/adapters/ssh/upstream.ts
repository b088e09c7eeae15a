// The connection Penstock opens to an SSH target on a principal's behalf: ssh2 Client, the target's
// credential from the vault (revealed only here, only while connecting), and its host key pinned in
// config — an unknown or changed host key refuses the connection before any credential is sent.
import ssh2 from 'ssh2';
import type { Client as Ssh2Client, ClientChannel, NegotiatedAlgorithms, ServerHostKeyAlgorithm } from 'ssh2';
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
    client.on('handshake', (n: NegotiatedAlgorithms) => core.log.debug({ target: target.id, kex: n.kex, cipher: n.sc.cipher, mac: n.sc.mac || undefined }, 'ssh upstream connected'));
    client.on('ready', () => {
      if (settled) return client.end();
      settled = true;
      resolve({ client, hostKey: fingerprint(presented!), end: () => client.end() });
    });
    client.on('error', (err: Error & { level?: string }) => {
      if (presented && !pinned.some((p) => p.equals(presented!))) return fail(new UpstreamError('host_key_mismatch', `target ${target.id} presented host key ${fingerprint(presented)}, which is not pinned in its config`));
      if (err.level === 'client-authentication') return fail(new UpstreamError('auth_failed', `target ${target.id} refused Penstock's credential`));
      // The error's code or ssh2's level (ECONNREFUSED, client-timeout, protocol), never its text: that may be the target's.
      const why = (err as NodeJS.ErrnoException).code ?? err.level ?? 'error';
      fail(new UpstreamError('unreachable', `target ${target.id} (${target.host}:${target.port}) could not be reached (${why})`));
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

/**
 * Send a signal request on an upstream session channel while it is open. ssh2's Channel.signal()
 * sends nothing once our side sent EOF (`ssh -n`, `</dev/null`), yet RFC 4254 allows channel requests
 * after EOF and sshd honours them (killpg of the session) — the only way to stop a command without a
 * pty: closing the channel or the connection only closes its pipes, which a sleeping process never
 * notices. Returns whether the request went out.
 */
export function signalChannel(ch: ClientChannel, name: string): boolean {
  const c = ch as unknown as { type?: string; outgoing?: { id: number; state: string }; _client?: { _protocol?: { signal(id: number, name: string): void } } };
  // 'eof': our side sent EOF, the channel is still open for requests.
  if (c.type !== 'session' || (c.outgoing?.state !== 'open' && c.outgoing?.state !== 'eof') || !c._client?._protocol) return false;
  try {
    c._client._protocol.signal(c.outgoing.id, name);
    return true;
  } catch {
    return false; // an unknown signal name or a connection already torn down
  }
}

/**
 * What makes pagers and editors refuse to run commands (where the target's sshd accepts these names
 * through `AcceptEnv`): pagers become `cat`, and `less` and systemd's pager run in secure mode.
 */
export const SAFE_TERMINAL_ENV: Readonly<Record<string, string>> = {
  PAGER: 'cat',
  SYSTEMD_PAGER: 'cat',
  SYSTEMD_PAGERSECURE: '1',
  LESSSECURE: '1',
  GIT_PAGER: 'cat',
};
