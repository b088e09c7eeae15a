// The SSH front door: an ssh2 server that authenticates principals by public key or OpenSSH user
// certificate, and hands each authenticated connection to SshConnection (session.ts).
//
// Before authentication a connection costs little and is bounded: at most `max_unauthenticated` at
// once (more are dropped at once), `login_grace_seconds` to finish, `max_auth_tries` attempts. Failed
// logins are counted per source address and per principal in a sliding window; past the limit the
// source (or the principal) is refused outright and `auth.rate_limited` is journaled. Every connection
// that ends without authenticating is journaled as `auth.failed` (one event with the attempts made),
// up to a rate, beyond which they are counted and the count goes with the next one journaled.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { AuthContext as Ssh2AuthContext, Connection, ClientInfo, NegotiatedAlgorithms as Negotiated } from 'ssh2';
import type { Core } from '../../core/core.ts';
import { RateLimitedRefusals } from '../../core/refusals.ts';
import type { ListenerConfig } from '../../config/types.ts';
import type { FrontDoor, RunningListener } from '../types.ts';
import { formatRemote, listenOn, normalizeAddress, tcpListenerCloser } from '../net.ts';
import { callSshAgentTool } from './agent-exec.ts';
import { authenticatePublicKey, FailureWindow, type Authenticated } from './auth.ts';
import { parseAuthorizedKeyLine } from './keys.ts';
import { sshListenerSchema, sshTargetSchema, type SshListenerConfig } from './schema.ts';
import { SshConnection } from './session.ts';

const { Server } = ssh2;

export const sshAdapter: FrontDoor = {
  start: startSshListener,
  callAgentTool: callSshAgentTool,
};

interface Attempt {
  method: string;
  reason: string;
  detail?: string;
}

export async function startSshListener(raw: ListenerConfig, core: Core): Promise<RunningListener> {
  const cfg: SshListenerConfig = sshListenerSchema.parse(raw);
  const hostKey = readFileSync(cfg.host_key);
  const cas = (cfg.trusted_user_ca_keys ?? []).map((l) => parseAuthorizedKeyLine(l));
  const stateDir = core.config().appliance.state_dir;
  const recordingsDir = cfg.recordings_dir ?? join(stateDir, 'recordings');
  const spoolDir = join(stateDir, 'spool', 'ssh');
  const windowMs = cfg.auth_rate.window_seconds * 1000;
  const bySource = new FailureWindow(windowMs, cfg.auth_rate.per_source);
  const byPrincipal = new FailureWindow(windowMs, cfg.auth_rate.per_principal);
  const failures = new RateLimitedRefusals(core, cfg.id, 'ssh');
  const sockets = new Set<net.Socket>();
  const connections = new Set<SshConnection>();
  let unauthenticated = 0;
  let boundPort = cfg.port;
  // Pre-authentication bookkeeping happens per TCP connection, before any SSH byte: ssh2 tells the
  // listener of a connection only once the client's banner arrived, which an idle socket never sends.
  const preAuth = new WeakSet<net.Socket>();
  const authenticatedSockets = new WeakSet<net.Socket>();
  const limitedSockets = new WeakSet<net.Socket>();
  const leavePreAuth = (socket: net.Socket) => {
    if (preAuth.delete(socket)) unauthenticated--;
  };

  const server = new Server({ hostKeys: [hostKey], ident: 'Penstock' }, (client: Connection, info: ClientInfo) => {
    const sock = (client as unknown as { _sock: net.Socket })._sock;
    const address = normalizeAddress(info.ip ?? '');
    const remote = formatRemote(address, info.port);
    const attempts: Attempt[] = [];
    const pinned = new Set<string>();
    let authenticated = false;
    let handshakeOnly = true;
    client.on('error', () => {});
    // Which cipher each connection runs (a bench and an operator checking the algorithm lists read it).
    client.on('handshake', (n: Negotiated) => core.log.debug({ listener: cfg.id, remote, kex: n.kex, cipher: n.sc.cipher, mac: n.sc.mac || undefined }, 'ssh client connected'));
    client.on('close', () => {
      if (authenticated || limitedSockets.has(sock)) return;
      const now = core.clock.now();
      bySource.add(address, now);
      for (const p of pinned) byPrincipal.add(p, now);
      // The reason is the last attempt's (each attempt's reason is a code of auth.ts or this file).
      if (attempts.length > 0 || !handshakeOnly) failures.record('auth.failed', remote, [...pinned][0], { reason: attempts.at(-1)?.reason ?? 'no_attempt', attempts: attempts.slice(0, 16), attempt_count: attempts.length });
    });
    const grace = setTimeout(() => {
      if (!authenticated) attempts.push({ method: '-', reason: 'login_grace_exceeded' });
    }, cfg.login_grace_seconds * 1000 - 50);
    grace.unref();
    sock.once('close', () => clearTimeout(grace));
    const markAuthenticated = () => {
      authenticated = true;
      clearTimeout(grace);
      authenticatedSockets.add(sock);
      leavePreAuth(sock);
    };

    let who: Authenticated | undefined;
    client.on('authentication', (ctx: Ssh2AuthContext) => {
      handshakeOnly = false;
      if (attempts.length >= cfg.max_auth_tries) {
        attempts.push({ method: ctx.method, reason: 'too_many_attempts' });
        sock.destroy();
        return;
      }
      if (ctx.method !== 'publickey') {
        // 'none' is how clients ask which methods exist; only a real method counts as an attempt.
        if (ctx.method !== 'none') attempts.push({ method: ctx.method, reason: 'method_not_offered' });
        return ctx.reject(['publickey']);
      }
      const verdict = authenticatePublicKey(
        { username: ctx.username, algo: ctx.key.algo, blob: ctx.key.data, ...(ctx.signature ? { signature: ctx.signature, signed: ctx.blob!, ...(ctx.hashAlgo ? { hashAlgo: ctx.hashAlgo } : {}) } : {}) },
        { config: core.config(), cas, now: core.clock.now(), address },
      );
      if (!verdict.ok) {
        attempts.push({ method: 'publickey', reason: verdict.reason, detail: verdict.detail });
        if (verdict.principal) pinned.add(verdict.principal);
        return ctx.reject(['publickey']);
      }
      const p = verdict.who.principal;
      if (byPrincipal.limited(p.id, core.clock.now())) {
        attempts.push({ method: 'publickey', reason: 'principal_rate_limited' });
        failures.record('auth.rate_limited', remote, p.id, { reason: 'principal_rate_limited', limit: cfg.auth_rate.per_principal, window_seconds: cfg.auth_rate.window_seconds });
        return ctx.reject(['publickey']);
      }
      if (p.expires !== undefined && !(core.clock.now() < Date.parse(p.expires))) {
        attempts.push({ method: 'publickey', reason: 'principal_expired' });
        pinned.add(p.id);
        return ctx.reject(['publickey']);
      }
      if (!ctx.signature) return ctx.accept(); // "would you take this key?" — yes; the signed request follows
      who = verdict.who;
      markAuthenticated();
      ctx.accept();
    });
    client.on('ready', () => {
      if (!who) return client.end();
      const conn = new SshConnection(core, client, who, { listener: cfg, recordingsDir, spoolDir, remote, port: boundPort });
      connections.add(conn);
      client.on('close', () => connections.delete(conn));
    });
  });
  server.maxConnections = cfg.max_connections;
  server.on('connection', () => {});
  const netServer = (server as unknown as { _srv: net.Server })._srv;
  netServer.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      leavePreAuth(socket);
    });
    socket.on('error', () => {});
    const address = normalizeAddress(socket.remoteAddress ?? '');
    const remote = formatRemote(address, socket.remotePort);
    if (bySource.limited(address, core.clock.now())) {
      limitedSockets.add(socket);
      failures.record('auth.rate_limited', remote, undefined, { reason: 'source_rate_limited', limit: cfg.auth_rate.per_source, window_seconds: cfg.auth_rate.window_seconds });
      return socket.destroy();
    }
    if (unauthenticated >= cfg.max_unauthenticated) {
      limitedSockets.add(socket);
      failures.record('auth.rate_limited', remote, undefined, { reason: 'unauthenticated_limit', limit: cfg.max_unauthenticated });
      return socket.destroy();
    }
    preAuth.add(socket);
    unauthenticated++;
    // Slow handshakes and slow logins: the grace period covers both, from the first TCP byte on.
    const grace = setTimeout(() => {
      if (!authenticatedSockets.has(socket)) socket.destroy();
    }, cfg.login_grace_seconds * 1000);
    grace.unref();
    socket.once('close', () => clearTimeout(grace));
  });

  const bound = await listenOn(server, cfg.port, cfg.host);
  server.on('error', (err: Error) => core.log.error({ err, listener: cfg.id }, 'ssh listener error'));
  boundPort = bound.port;
  core.log.info({ listener: cfg.id, host: bound.address, port: bound.port }, 'ssh front door listening');

  return {
    id: cfg.id,
    address: () => ({ host: bound.address, port: bound.port }),
    // Sockets are dropped 200 ms after the sessions end, so their goodbye messages get out.
    close: tcpListenerCloser(server, sockets, core, cfg.id, 200),
  };
}
