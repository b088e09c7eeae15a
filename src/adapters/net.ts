// What the TCP front doors share about sockets: how a peer's address is written, binding, and closing.
import * as net from 'node:net';
import type { Core } from '../core/core.ts';

/** An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d; bindings and the journal use a.b.c.d. */
export function normalizeAddress(a: string): string {
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}

/** A peer as the journal's `remote` field writes it: `a.b.c.d:port`, `[v6]:port`, `?` for unknown parts. */
export function formatRemote(address: string | undefined, port: number | undefined): string {
  const a = normalizeAddress(address ?? '?');
  return net.isIPv6(a) ? `[${a}]:${port ?? '?'}` : `${a}:${port ?? '?'}`;
}

/** Bind `server`; a bind error (port taken, address absent) rejects instead of being thrown later. */
export function listenOn(server: net.Server, port: number, host: string): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as net.AddressInfo);
    });
  });
}

/**
 * A TCP front door's close(): stop accepting, end its sessions (journaled as shutdown), then drop the
 * sockets still open — after `graceMs`, so goodbye messages the sessions' ends wrote can get out.
 * Resolves once the server has closed; idempotent.
 */
export function tcpListenerCloser(server: net.Server, sockets: Set<net.Socket>, core: Core, listener: string, graceMs = 0): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of core.sessions.list()) if (s.listener === listener) s.terminate({ reason: 'shutdown' });
      const drop = () => {
        for (const socket of sockets) socket.destroy();
      };
      if (graceMs > 0) setTimeout(drop, graceMs).unref();
      else drop();
    });
    return closing;
  };
}
