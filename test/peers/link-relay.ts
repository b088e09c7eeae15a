// A TCP relay the test controls, between a client and a server on loopback: `pass` forwards, `blackhole`
// accepts and swallows bytes both ways (a dead link that still looks connected), `refuse` closes every
// connection at once. Leaving a blackhole resets the connections it swallowed, as a NAT timing out would.
import { createServer, connect, type Server, type Socket } from 'node:net';

export type RelayMode = 'pass' | 'blackhole' | 'refuse';

export interface Relay {
  port: number;
  url: string;
  mode: RelayMode;
  set(mode: RelayMode): void;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number, scheme = 'nats'): Promise<Relay> {
  const pairs = new Set<{ client: Socket; upstream: Socket | undefined; swallowed: boolean }>();
  let mode: RelayMode = 'pass';
  let accepted = 0;
  const swallow = (p: { client: Socket; upstream: Socket | undefined; swallowed: boolean }) => {
    p.swallowed = true;
    p.client.unpipe();
    p.upstream?.unpipe();
    p.client.removeAllListeners('data');
    p.upstream?.removeAllListeners('data');
    p.client.on('data', () => {});
    p.upstream?.on('data', () => {});
  };
  const server: Server = createServer((client) => {
    accepted++;
    const pair = { client, upstream: undefined as Socket | undefined, swallowed: false };
    pairs.add(pair);
    client.on('error', () => {});
    client.once('close', () => {
      pair.upstream?.destroy();
      pairs.delete(pair);
    });
    if (mode === 'refuse') {
      client.destroy();
      return;
    }
    if (mode === 'blackhole') {
      swallow(pair);
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    pair.upstream = upstream;
    upstream.on('error', () => client.destroy());
    upstream.once('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    get mode() {
      return mode;
    },
    get accepted() {
      return accepted;
    },
    set(next: RelayMode) {
      const was = mode;
      mode = next;
      for (const p of pairs) {
        if (next === 'blackhole' && !p.swallowed) swallow(p);
        else if (next === 'refuse' || (was === 'blackhole' && next === 'pass' && p.swallowed)) {
          p.client.destroy();
          p.upstream?.destroy();
        }
      }
    },
    close: async () => {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream?.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
