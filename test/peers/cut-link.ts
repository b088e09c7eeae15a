// A link the test controls, between a client and a server on loopback: a TCP relay that forwards
// ('up'), swallows everything in both directions while keeping the connections open, as a dead
// cellular or satellite link does ('blackhole'), or resets every connection and refuses new ones
// ('down'). Counts the bytes it forwarded from the client, so a test can see when traffic flows.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { freePort } from '../support.ts';

export type LinkMode = 'up' | 'blackhole' | 'down';

export interface CutLink {
  port: number;
  readonly mode: LinkMode;
  /** Bytes forwarded client → server since the start. */
  readonly forwarded: number;
  set(mode: LinkMode): void;
  close(): Promise<void>;
}

export async function startCutLink(target: { host?: string; port: number }, port?: number): Promise<CutLink> {
  const listenPort = port ?? (await freePort());
  let mode: LinkMode = 'up';
  let forwarded = 0;
  const pairs = new Set<{ client: Socket; server: Socket; swallowed: boolean }>();
  const server: Server = createServer((client) => {
    if (mode === 'down') {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(target.port, target.host ?? '127.0.0.1');
    const pair = { client, server: upstream, swallowed: false };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (d: Buffer) => {
      if (mode !== 'up') {
        pair.swallowed = true;
        return;
      }
      forwarded += d.length;
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (mode !== 'up') {
        pair.swallowed = true;
        return;
      }
      client.write(d);
    });
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, '127.0.0.1', () => resolve());
  });
  return {
    port: listenPort,
    get mode() {
      return mode;
    },
    get forwarded() {
      return forwarded;
    },
    set(next: LinkMode) {
      mode = next;
      if (next === 'down') {
        for (const p of pairs) {
          p.client.resetAndDestroy();
          p.server.destroy();
        }
        pairs.clear();
      }
      // From blackhole back to up: connections that lost bytes would carry a corrupt stream, so they end and
      // the client reconnects (as after a real outage, whose TCP connections do not survive either).
      if (next === 'up') {
        for (const p of pairs) {
          if (!p.swallowed) continue;
          p.client.destroy();
          p.server.destroy();
        }
      }
    },
    close: () => new Promise<void>((resolve) => {
      for (const p of pairs) {
        p.client.destroy();
        p.server.destroy();
      }
      server.close(() => resolve());
    }),
  };
}
