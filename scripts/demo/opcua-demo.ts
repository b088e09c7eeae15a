// What the demo site (scripts/demo.ts) and its OPC UA client (scripts/demo/opcua-client.ts) share: the
// demo folder, the demo user, and the client's application certificate store. Nothing here trusts a
// certificate automatically: the gateway trusts the client because the demo config lists its
// certificate in `trusted_clients`, and the client trusts the gateway because the demo copies the
// gateway's certificate into the client's trusted/ folder once the daemon has made it.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPCUACertificateManager } from 'node-opcua';
import { readCertificateDer } from '../../src/adapters/opcua/pki.ts';

/** The demo's OPC UA principal. A demo password, printed by the demo: never a real one. */
export const DEMO_OPCUA_USER = { principal: 'boiler-tech', username: 'boiler-tech', password: 'boiler-demo-5120', vaultEntry: 'boiler-tech-opcua' } as const;
export const DEMO_OPCUA_TARGET = 'boiler-1';
export const DEMO_OPCUA_LISTENER = 'opcua-demo';

/** The demo's folder: PENSTOCK_DEMO_DIR, or one per user under the temp folder. */
export function demoDir(): string {
  return process.env.PENSTOCK_DEMO_DIR ?? join(tmpdir(), `penstock-demo-${process.getuid?.() ?? 0}`);
}

export interface DemoClientFiles {
  /** The client's PKI folder (own/, trusted/, rejected/). */
  root: string;
  certFile: string;
  keyFile: string;
  applicationUri: string;
  /** Where the demo writes the endpoint and target for the client: {"endpoint":…,"target":…}. */
  connectionFile: string;
}

export function demoClientFiles(dir: string): DemoClientFiles {
  const root = join(dir, 'opcua-client');
  return {
    root,
    certFile: join(root, 'own', 'certs', 'cert.pem'),
    keyFile: join(root, 'own', 'private', 'private_key.pem'),
    applicationUri: 'urn:penstock-demo:opcua-client',
    connectionFile: join(root, 'connection.json'),
  };
}

/** The client's certificate store; it trusts only what is in its trusted/ folder. */
export async function openDemoClientPki(dir: string): Promise<OPCUACertificateManager> {
  const cm = new OPCUACertificateManager({ rootFolder: demoClientFiles(dir).root, automaticallyAcceptUnknownCertificate: false, disableFileWatchers: true, keySize: 2048 });
  await cm.initialize();
  return cm;
}

/** Make the demo client's application certificate unless an earlier run made it. */
export async function ensureDemoClientCertificate(dir: string): Promise<DemoClientFiles> {
  const files = demoClientFiles(dir);
  if (existsSync(files.certFile) && existsSync(files.keyFile)) return files;
  const cm = await openDemoClientPki(dir);
  try {
    await cm.createSelfSignedCertificate({
      subject: '/CN=penstock-demo-opcua-client',
      applicationUri: files.applicationUri,
      dns: ['localhost'],
      startDate: new Date(Date.now() - 86_400_000),
      validity: 365,
      outputFile: files.certFile,
    });
  } finally {
    await cm.dispose();
  }
  return files;
}

/**
 * Make the gateway's server certificate the one certificate the client trusts (a person doing this by
 * hand compares the thumbprint UaExpert shows with the one on the gateway).
 */
export async function trustGatewayCertificate(dir: string, gatewayCertFile: string): Promise<void> {
  const root = demoClientFiles(dir).root;
  rmSync(join(root, 'trusted'), { recursive: true, force: true });
  rmSync(join(root, 'rejected'), { recursive: true, force: true });
  const cm = await openDemoClientPki(dir);
  try {
    await cm.trustCertificate(readCertificateDer(gatewayCertFile));
  } finally {
    await cm.dispose();
  }
}

/** The certificate an OPC UA front door made for itself under its PKI folder (server/own/certs). */
export function gatewayCertificateFile(pkiDir: string): string | undefined {
  const certs = join(pkiDir, 'server', 'own', 'certs');
  if (!existsSync(certs)) return undefined;
  const name = readdirSync(certs).find((f) => /\.(pem|der)$/.test(f));
  return name ? join(certs, name) : undefined;
}
