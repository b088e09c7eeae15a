// Shared pieces of the sync tests: a server on loopback with the test PKI, a raw mutual-TLS client
// for poking at the API, and the puller options that go with them.
import { request } from 'node:https';
import pino from 'pino';
import { startSyncServer } from '../../src/sync/server.ts';
import type { SyncServer, SyncServerOptions } from '../../src/sync/server.ts';
import { clientRules, type SyncClientConfig } from '../../src/sync/clients.ts';
import type { JournalReaderLike, SyncAuditEvent } from '../../src/sync/types.ts';
import type { PullOptions } from '../../src/sync/puller.ts';
import type { CertPair, TestPki } from './certs.ts';
import { fingerprintOf } from './certs.ts';

export const silentLog = pino({ level: 'silent' });

export interface TestServer {
  server: SyncServer;
  url: string;
  audit: SyncAuditEvent[];
}

/** The test PKI's client (CN central-pam) as central PAM: read and ack, by fingerprint. */
export function centralPam(pki: TestPki): SyncClientConfig {
  return { name: 'central-pam', fingerprint: fingerprintOf(pki.client), roles: ['read', 'ack'] };
}

export async function startTestServer(pki: TestPki, journal: JournalReaderLike, pageSize = 50, port = 0, extra: Partial<SyncServerOptions> & { clientList?: SyncClientConfig[] } = {}): Promise<TestServer> {
  const audit: SyncAuditEvent[] = [];
  const { clientList, ...rest } = extra;
  const rules = clientRules(clientList ?? [centralPam(pki)]);
  const server = await startSyncServer({
    host: '127.0.0.1',
    port,
    tls: { cert: pki.server.certPath, key: pki.server.keyPath, clientCa: pki.ca.cert },
    journal,
    pageSize,
    clients: () => rules,
    log: silentLog,
    onAudit: (e) => audit.push(e),
    ...rest,
  });
  return { server, url: `https://127.0.0.1:${server.address().port}`, audit };
}

export function pullOptions(pki: TestPki, url: string, outDir: string, vkey: string, extra: Partial<PullOptions> = {}): PullOptions {
  return { url, cert: pki.client.certPath, key: pki.client.keyPath, ca: pki.ca.certPath, outDir, vkey, log: silentLog, ...extra };
}

export interface RawResponse {
  status: number;
  json: unknown;
}

/** One request over mutual TLS, no keep-alive; rejects on transport errors (e.g. a refused handshake). */
export function rawRequest(pki: TestPki, url: string, method: string, path: string, body?: string, headers: Record<string, string> = {}, client: CertPair = pki.client): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, url), {
      method,
      cert: client.cert,
      key: client.key,
      ca: pki.ca.cert,
      agent: false,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = text;
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A lying appliance: an HTTPS server with the same TLS set-up that forwards each request to `upstreamUrl`
 * and lets `rewrite` change the JSON answer on the way back (tampering in transit, gaps, repeats).
 */
export async function startRewritingProxy(pki: TestPki, upstreamUrl: string, rewrite: (path: string, json: unknown) => unknown): Promise<{ url: string; close(): Promise<void> }> {
  const { createServer } = await import('node:https');
  const server = createServer({ cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length > 0 ? Buffer.concat(chunks).toString('utf8') : undefined;
      rawRequest(pki, upstreamUrl, req.method ?? 'GET', req.url ?? '/', body).then((r) => {
        const text = JSON.stringify(rewrite(req.url ?? '/', r.json));
        res.writeHead(r.status, { 'content-type': 'application/json' }).end(text);
      }, () => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
