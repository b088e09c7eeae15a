// The gateway's OPC UA certificate stores. Three separate folders under the listener's pki_dir (never
// ~/.config): server/ (the front door's own certificate and the client applications it trusts),
// users/ (X.509 user certificates it trusts) and client/ (the certificate Penstock presents upstream and
// the upstream server certificates it pins). Nothing is ever trusted automatically: node-opcua's default
// store accepts unknown certificates, these do not. The trusted/ folders are rebuilt from the config at
// every start, so a certificate removed from the config is no longer trusted after a restart.
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';
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
  /** The front door's own certificate and key (generated, or the operator's). */
  serverCertificate: OwnCertificate;
  /** The certificate Penstock presents to upstream servers, and the application URI it names. */
  clientCertificate: OwnCertificate & { applicationUri: string };
}

export interface OwnCertificate {
  certificateFile: string;
  privateKeyFile: string;
}

/** Who the gateway's certificates name: the appliance, its site, and where clients reach it. */
export interface CertificateIdentity {
  applianceId: string;
  site: string;
  listener: string;
  /** The listener's `hostname` and `host`: each goes into the SANs as a DNS name or an IP address. */
  names: string[];
  serverUri: string;
  clientUri: string;
  /** An operator's own front-door certificate and key (PEM files): served as they are. */
  operator?: OwnCertificate;
  /** An operator's own certificate and key for the connections to upstream servers. */
  operatorClient?: OwnCertificate;
}

export interface PkiOptions {
  dir: string;
  trustedClients: string[];
  trustedUsers: string[];
  pinnedUpstreams: string[];
  /** SHA-256 fingerprints (colon-free lower hex) of user certificates named by principals. */
  userFingerprints: () => Set<string>;
  onRefused: (leaf: Buffer, status: StatusCode, reason: 'client_certificate_refused' | 'user_certificate_refused') => void;
}

export async function openGatewayPki(opts: PkiOptions & { identity: CertificateIdentity }): Promise<GatewayPki> {
  const server = await store(join(opts.dir, 'server'), opts.trustedClients.map(readCertificateDer));
  const users = await store(join(opts.dir, 'users'), opts.trustedUsers.map(readCertificateDer));
  const clientRoot = join(opts.dir, 'client');
  const client = await store(clientRoot, opts.pinnedUpstreams.map(readCertificateDer));
  hookCheck(server, { onRefused: (leaf, status) => opts.onRefused(leaf, status, 'client_certificate_refused') });
  hookCheck(users, { pinned: (leaf) => opts.userFingerprints().has(certificateFacts(leaf).sha256), onRefused: (leaf, status) => opts.onRefused(leaf, status, 'user_certificate_refused') });
  const id = opts.identity;
  const subject = `/CN=Penstock ${id.applianceId} ${id.listener}/O=${id.site}/OU=Penstock OPC UA gateway`;
  const serverCertificate = id.operator ?? await ensureOwnCertificate(server, join(opts.dir, 'server', 'own', 'certs', 'certificate.pem'), { subject, applicationUri: id.serverUri, ...sans(id.names) });
  const clientCertificate = id.operatorClient
    // A client's application URI must be the one its certificate names, or servers refuse the session.
    ? { ...id.operatorClient, applicationUri: certificateUri(readFileSync(id.operatorClient.certificateFile)) ?? id.clientUri }
    : {
      ...await ensureOwnCertificate(client, join(clientRoot, 'own', 'certs', 'penstock-client.pem'), {
        subject: `/CN=Penstock ${id.applianceId} ${id.listener} upstream client/O=${id.site}/OU=Penstock OPC UA gateway`,
        applicationUri: id.clientUri,
        ...sans(id.names),
      }),
      applicationUri: id.clientUri,
    };
  return { server, users, client, clientRoot, serverCertificate, clientCertificate };
}

interface Wanted {
  subject: string;
  applicationUri: string;
  dns: string[];
  ip: string[];
}

/** SANs for the configured names: each as an IP address or a DNS name, plus the machine's name and loopback. */
function sans(names: string[]): { dns: string[]; ip: string[] } {
  const configured = names.filter((n) => n && n !== '0.0.0.0' && n !== '::');
  const ip = [...new Set([...configured.filter((n) => isIP(n) === 4), '127.0.0.1'])].sort();
  const dns = [...new Set([...configured.filter((n) => !isIP(n)), osHostname(), 'localhost'])].sort();
  return { dns, ip };
}

/**
 * The store's own certificate at `file`, made (self-signed, ten years, the store's key) unless one is
 * there already with this subject, application URI and every wanted SAN: a certificate from an earlier
 * start keeps its thumbprint (clients that trusted it keep trusting it) until the names it must carry
 * change in the config.
 */
async function ensureOwnCertificate(cm: OPCUACertificateManager, file: string, wanted: Wanted): Promise<OwnCertificate> {
  if (existsSync(file) && !covers(readFileSync(file), wanted)) rmSync(file);
  if (!existsSync(file)) {
    await cm.createSelfSignedCertificate({ ...wanted, outputFile: file, startDate: new Date(Date.now() - 3_600_000), validity: 3650 });
  }
  return { certificateFile: file, privateKeyFile: cm.privateKey };
}

/** The application URI a certificate's SANs name (URI:…), if any. */
function certificateUri(pem: Buffer): string | undefined {
  try {
    return (new X509Certificate(pem).subjectAltName ?? '').split(/,\s*/).find((n) => n.startsWith('URI:'))?.slice(4);
  } catch {
    return undefined;
  }
}

function covers(pem: Buffer, wanted: Wanted): boolean {
  try {
    const cert = new X509Certificate(pem);
    const san = (cert.subjectAltName ?? '').split(/,\s*/);
    const subject = wanted.subject.split('/').filter(Boolean).join('\n');
    return cert.subject === subject
      && san.includes(`URI:${wanted.applicationUri}`)
      && wanted.dns.every((d) => san.includes(`DNS:${d}`))
      && wanted.ip.every((a) => san.includes(`IP Address:${a}`));
  } catch {
    return false;
  }
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
