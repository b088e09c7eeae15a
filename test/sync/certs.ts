// Throwaway PKI for sync tests, made with the real `openssl` at test time (nothing committed):
// a CA, a server certificate for 127.0.0.1/localhost, a client certificate the CA signed
// (CN central-pam), and an "untrusted" client certificate signed by a second, unrelated CA.
// Reusable by end-to-end tests: call makeTestPki() once per test file and rm the dir afterwards.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertPair {
  certPath: string;
  keyPath: string;
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** The CA that signs the server and the trusted client; give it to servers as clientCa and to clients as ca. */
  ca: CertPair;
  /** A second CA nobody trusts. */
  otherCa: CertPair;
  server: CertPair;
  client: CertPair;
  untrustedClient: CertPair;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function pair(dir: string, name: string): CertPair {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  return { certPath, keyPath, cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
}

function makeCa(dir: string, name: string, cn: string): CertPair {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.crt`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return pair(dir, name);
}

function makeLeaf(dir: string, name: string, cn: string, ca: string, ext: string): CertPair {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${cn}`,
    '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`], dir);
  return pair(dir, name);
}

/** Another client certificate under the test CA (e.g. a read-only auditor or a witness). */
export function makeClientCert(pki: TestPki, name: string, cn: string): CertPair {
  return makeLeaf(pki.dir, name, cn, 'ca', 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
}

/** An X.509-SVID under the test CA: a client certificate whose URI SANs are `uris` (an SVID has exactly one). */
export function makeSvid(pki: TestPki, name: string, uris: readonly string[], cn = name): CertPair {
  return makeLeaf(pki.dir, name, cn, 'ca', `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=${uris.map((u) => `URI:${u}`).join(',')}\n`);
}

/** A server certificate with an RSA key under the test CA (to try the static-RSA suites against). */
export function makeRsaServerCert(pki: TestPki): CertPair {
  const dir = pki.dir;
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=penstock-gateway-rsa', '-keyout', 'server-rsa.key', '-out', 'server-rsa.csr'], dir);
  writeFileSync(join(dir, 'server-rsa.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['x509', '-req', '-in', 'server-rsa.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', 'server-rsa.crt', '-extfile', 'server-rsa.ext'], dir);
  return pair(dir, 'server-rsa');
}

/** The certificate's SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it (AB:CD:…). */
export function fingerprintOf(pair: CertPair): string {
  return new X509Certificate(pair.cert).fingerprint256;
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'penstock-pki-'));
  const ca = makeCa(dir, 'ca', 'Penstock Test CA');
  const otherCa = makeCa(dir, 'other-ca', 'Somebody Else CA');
  const server = makeLeaf(dir, 'server', 'penstock-gateway', 'ca',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n');
  const clientExt = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n';
  const client = makeLeaf(dir, 'client', 'central-pam', 'ca', clientExt);
  const untrustedClient = makeLeaf(dir, 'untrusted-client', 'central-pam', 'other-ca', clientExt);
  return { dir, ca, otherCa, server, client, untrustedClient, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
