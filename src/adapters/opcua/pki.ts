// The gateway's OPC UA certificate stores. Three separate folders under the listener's pki_dir (never
// ~/.config): server/ (the front door's own certificate and the client applications it trusts),
// users/ (X.509 user certificates it trusts) and client/ (the certificate Penstock presents upstream and
// the upstream server certificates it pins). Nothing is ever trusted automatically: node-opcua's default
// store accepts unknown certificates, these do not. The trusted/ folders are rebuilt from the config at
// every start, so a certificate removed from the config is no longer trusted after a restart.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { OPCUACertificateManager, StatusCodes, type StatusCode } from 'node-opcua';
import { certificateFacts } from './identity.ts';

/** A certificate file (PEM with one CERTIFICATE block, or DER) as DER bytes. */
export function readCertificateDer(path: string): Buffer {
  const raw = readFileSync(path);
  const text = raw.toString('latin1');
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(text);
  return m ? Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64') : raw;
}

async function store(root: string, trusted: Buffer[]): Promise<OPCUACertificateManager> {
  // Rebuild the trust list from the config: whatever was trusted before (or dropped in by hand) goes.
  rmSync(join(root, 'trusted'), { recursive: true, force: true });
  rmSync(join(root, 'rejected'), { recursive: true, force: true });
  const cm = new OPCUACertificateManager({ rootFolder: root, automaticallyAcceptUnknownCertificate: false, disableFileWatchers: true, keySize: 2048 });
  await cm.initialize();
  for (const der of trusted) await cm.trustCertificate(der);
  return cm;
}

export interface GatewayPki {
  server: OPCUACertificateManager;
  users: OPCUACertificateManager;
  client: OPCUACertificateManager;
  clientRoot: string;
}

export interface PkiOptions {
  dir: string;
  trustedClients: string[];
  trustedUsers: string[];
  pinnedUpstreams: string[];
  /** SHA-256 fingerprints (colon-free lower hex) of user certificates named by principals. */
  userFingerprints: () => Set<string>;
  onRefused: (leaf: Buffer, status: StatusCode, what: string) => void;
}

export async function openGatewayPki(opts: PkiOptions): Promise<GatewayPki> {
  const server = await store(join(opts.dir, 'server'), opts.trustedClients.map(readCertificateDer));
  const users = await store(join(opts.dir, 'users'), opts.trustedUsers.map(readCertificateDer));
  const clientRoot = join(opts.dir, 'client');
  const client = await store(clientRoot, opts.pinnedUpstreams.map(readCertificateDer));
  hookCheck(server, { onRefused: (leaf, status) => opts.onRefused(leaf, status, 'client application certificate') });
  hookCheck(users, { pinned: (leaf) => opts.userFingerprints().has(certificateFacts(leaf).sha256), onRefused: (leaf, status) => opts.onRefused(leaf, status, 'user certificate') });
  return { server, users, client, clientRoot };
}

type StatusCallback = (err: Error | null, status?: StatusCode) => void;

interface CheckHooks {
  /** A leaf this returns true for is trusted even when not in trusted/ (expired, revoked stay refused). */
  pinned?: (leaf: Buffer) => boolean;
  /** Told of every certificate the store refuses (the front door journals it with its thumbprint). */
  onRefused?: (leaf: Buffer, status: StatusCode) => void;
}

/**
 * Hook the store's checkCertificate, which node-opcua calls in both callback and promise form, for the
 * channel's application certificate and for X.509 user tokens alike.
 */
function hookCheck(cm: OPCUACertificateManager, hooks: CheckHooks): void {
  const original = cm.checkCertificate.bind(cm) as (chain: Buffer | Buffer[]) => Promise<StatusCode>;
  const check = async (chain: Buffer | Buffer[]): Promise<StatusCode> => {
    const leaf = Array.isArray(chain) ? chain[0] : chain;
    let status = await original(chain);
    if (leaf && status === StatusCodes.BadCertificateUntrusted && hooks.pinned?.(leaf)) status = StatusCodes.Good;
    if (leaf && status !== StatusCodes.Good) hooks.onRefused?.(leaf, status);
    return status;
  };
  (cm as unknown as { checkCertificate: (chain: Buffer | Buffer[], cb?: StatusCallback) => Promise<StatusCode> | void }).checkCertificate = (chain, cb) => {
    const p = check(chain);
    if (!cb) return p;
    p.then((s) => cb(null, s), (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))));
  };
}
