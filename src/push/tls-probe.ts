// Why a TLS connect failed, when the NATS client cannot say. Under TLS 1.3 the server checks our client
// certificate after our side of the handshake is done, so a refused certificate reaches the client as
// a closed connection and the NATS client reports only a time-out. This probe repeats the start of the
// connection (NATS sends INFO in the clear, then both sides start TLS) with the same files and waits
// briefly for the server's alert, so that status can name the refusal.
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface TlsFiles {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/** The TLS error the server's answer shows (an alert, an untrusted certificate), or undefined. */
export function probeTls(url: string, files: TlsFiles, timeoutMs = 3000): Promise<Error | undefined> {
  return new Promise((resolve) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      resolve(undefined);
      return;
    }
    const host = u.hostname.replace(/^\[|\]$/g, '');
    let settled = false;
    const sockets: { destroy(): void }[] = [];
    const done = (e: Error | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const s of sockets) s.destroy();
      resolve(e);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    timer.unref();
    const tcp = tcpConnect(Number(u.port || 4222), host);
    sockets.push(tcp);
    tcp.on('error', () => done(undefined));
    let seen = '';
    const onInfo = (chunk: Buffer) => {
      seen += chunk.toString('latin1');
      if (!seen.includes('\r\n')) return;
      tcp.off('data', onInfo);
      try {
        const tls = tlsConnect({
          socket: tcp,
          servername: /^[\d.:]+$/.test(host) ? undefined : host,
          rejectUnauthorized: true,
          ...(files.ca ? { ca: readFileSync(files.ca) } : {}),
          ...(files.cert && files.key ? { cert: readFileSync(files.cert), key: readFileSync(files.key) } : {}),
        });
        sockets.push(tls);
        tls.on('error', (err) => done(err));
        // The alert for a refused client certificate follows the handshake; reading provokes it.
        tls.on('secureConnect', () => tls.write('PING\r\n'));
        tls.on('data', () => done(undefined));
        tls.on('close', () => done(undefined));
      } catch (err) {
        done(err as Error);
      }
    };
    tcp.on('data', onInfo);
  });
}
