// The Modbus front doors. Each maps a connection to an authenticated principal, opens a session, and
// hands the byte stream to serveModbusStream (stream.ts); nothing else is protocol work here.
//
//   mode tls  Modbus/TCP Security: mutual TLS (1.2+). The client certificate must chain to `client_ca`
//             and name a principal by SHA-256 fingerprint, by the SPIFFE ID of an X.509-SVID, or by
//             subject CN (principal.credentials.x509; order and reasons: tls.ts principalForCertificate).
//             The certificate's Modbus role extension is recorded with the session (and may be
//             required: listener `roles`).
//   mode tcp  Plain Modbus/TCP, THE WEAK MODE: there is no identity on the wire, so a connection is tied
//             to a principal only by its source address (`bindings`) and only while that principal holds
//             an active grant for a routed target. Anyone who can use a bound address is that principal.
//             Use it only on an isolated segment, for tools that cannot speak TLS.
// A connection that cannot be tied to a principal is closed at once and journaled as auth.failed, with
// one of the stable reasons in AUTH_FAILURES.
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Core } from '../../core/core.ts';
import { RateLimitedRefusals } from '../../core/refusals.ts';
import type { ListenerConfig } from '../../config/types.ts';
import type { PrincipalConfig } from '../../config/schema.ts';
import type { Session } from '../../sessions/registry.ts';
import type { FrontDoor, RunningListener } from '../types.ts';
import { formatRemote, listenOn, normalizeAddress, tcpListenerCloser } from '../net.ts';
import { modbusListenerSchema, modbusTargetSchema, type ModbusListenerConfig } from './schema.ts';
import { modbusRole, normalizeFingerprint, principalForCertificate, subjectCommonName } from './tls.ts';
import { serveModbusStream, type ModbusRoute } from './stream.ts';
import { upstreamsFor } from './pool.ts';
import { callModbusAgentTool } from './agent-calls.ts';

export const DEFAULT_MODBUS_TLS_PORT = 802;

/** Why a connection was refused before it had a session: `detail.reason` of its auth.failed event. */
export const AUTH_FAILURES = {
  tls_handshake_failed: 'the TLS handshake failed (no client certificate, an untrusted CA, an old TLS version); detail.tls_error says which',
  no_client_certificate: 'the connection carries no client certificate',
  unknown_certificate: 'the client certificate names no principal',
  unknown_spiffe_id: 'the client certificate is an X.509-SVID whose SPIFFE ID no principal lists (detail.spiffe_id)',
  svid_several_uri_sans: 'the client certificate has a spiffe:// URI SAN among several URI SANs; an X.509-SVID has exactly one',
  svid_malformed_id: 'the client certificate\'s spiffe:// URI SAN is not a valid SPIFFE ID',
  ambiguous_certificate: 'the client certificate names more than one principal (a fingerprint of one and the SPIFFE ID of another, or one SPIFFE ID twice)',
  role_missing: 'the listener requires a Modbus role and the certificate carries none',
  role_not_accepted: 'the certificate\'s Modbus role is not one the listener accepts',
  no_binding: 'plain Modbus/TCP: no binding names the source address',
  bound_principal_unknown: 'plain Modbus/TCP: the binding names a principal the config does not have',
  no_active_grant: 'plain Modbus/TCP: the bound principal holds no active grant for a target of this listener',
} as const;
type AuthFailure = keyof typeof AUTH_FAILURES;

const roles = new WeakMap<Session, string>();
/** The Modbus/TCP Security role the session's client certificate carried, if any. */
export function modbusSessionRole(session: Session): string | undefined {
  return roles.get(session);
}

export const modbusAdapter: FrontDoor = {
  start: startModbusListener,
  // Another front door's tunnel to one target: every unit id goes to that target, as sent.
  serveStream: (stream, session, core, target) => {
    const routes: ModbusRoute[] = Array.from({ length: 256 }, (_, unit) => ({ unit, target, targetUnit: unit }));
    return serveModbusStream(stream, session, core, { routes });
  },
  // An agent's modbus_read / modbus_write (agent-calls.ts), on the same shared links.
  callAgentTool: callModbusAgentTool,
};

export async function startModbusListener(raw: ListenerConfig, core: Core): Promise<RunningListener> {
  const cfg: ModbusListenerConfig = modbusListenerSchema.parse(raw);
  const routes: ModbusRoute[] = cfg.routes.map((r) => ({ unit: r.unit, target: r.target, ...(r.target_unit !== undefined ? { targetUnit: r.target_unit } : {}) }));
  const routeTargets = new Set(routes.map((r) => r.target));
  const releasePool = upstreamsFor(core).acquire();
  const sockets = new Set<net.Socket>();
  const authFailures = new RateLimitedRefusals(core, cfg.id, 'modbus');

  const serve = (socket: net.Socket, principal: PrincipalConfig, role: string | undefined, attributes: Record<string, string> = {}) => {
    const session = core.sessions.open(
      {
        principal,
        chain: [principal.id, ...(principal.acting_for ? [principal.acting_for] : [])],
        ...(routeTargets.size === 1 ? { target: [...routeTargets][0]! } : {}),
        listener: cfg.id,
        protocol: 'modbus',
        remote: remoteOf(socket),
        attributes,
      },
      // Kill (admin, grant revoked, time limits): Modbus has no goodbye message; end the connection now.
      () => socket.destroy(),
    );
    if (role !== undefined) roles.set(session, role);
    const handle = serveModbusStream(socket, session, core, {
      routes,
      idleMs: cfg.idle_seconds * 1000,
      frameTimeoutMs: cfg.frame_timeout_ms,
      ...(role !== undefined ? { role } : {}),
    });
    void handle.done.then(() => session.close());
  };

  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  };

  let server: net.Server;
  if (cfg.mode === 'tls') {
    const t = cfg.tls!;
    server = tls.createServer({
      cert: readFileSync(t.cert),
      key: readFileSync(t.key),
      ca: readFileSync(t.client_ca),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2', // the Modbus/TCP Security specification requires TLS 1.2 or later
      handshakeTimeout: Math.max(1000, cfg.frame_timeout_ms * 2),
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      track(socket);
      const cert = socket.getPeerX509Certificate();
      if (!cert) return refuse(socket, 'no_client_certificate');
      const match = principalForCertificate(cert, core.config().principals.values());
      const who = { fingerprint: normalizeFingerprint(cert.fingerprint256), subject_cn: subjectCommonName(cert), ...(match.spiffeId !== undefined ? { spiffe_id: match.spiffeId } : {}) };
      if (!match.ok) return refuse(socket, match.reason, who);
      const role = modbusRole(cert);
      if (cfg.roles && (role === undefined || !cfg.roles.includes(role))) {
        return refuse(socket, role === undefined ? 'role_missing' : 'role_not_accepted', { ...who, principal: match.principal.id, ...(role ? { role } : {}) });
      }
      serve(socket, match.principal, role, match.spiffeId !== undefined ? { spiffe_id: match.spiffeId } : {});
    });
    // A failed handshake (no certificate, untrusted CA, old TLS) is an authentication failure too.
    server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      authFailures.authFailed(remoteOf(socket), 'tls_handshake_failed' satisfies AuthFailure, { tls_error: err.code ?? 'error' });
      socket.destroy();
    });
  } else {
    const bindings = cfg.bindings!.map((b) => ({ list: blockListOf(b.source), principal: b.principal }));
    server = net.createServer({ noDelay: true }, (socket) => {
      track(socket);
      const address = normalizeAddress(socket.remoteAddress ?? '');
      const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
      const binding = bindings.find((b) => b.list.check(address, family));
      if (!binding) return refuse(socket, 'no_binding');
      const principal = core.config().principals.get(binding.principal);
      if (!principal) return refuse(socket, 'bound_principal_unknown', { principal: binding.principal });
      const now = core.clock.now();
      const active = core.grants.forPrincipal(principal.id).some((g) => core.grants.isActive(g, now) && g.targets.some((t) => routeTargets.has(t)));
      if (!active) return refuse(socket, 'no_active_grant', { principal: principal.id });
      serve(socket, principal, undefined);
    });
  }
  server.maxConnections = cfg.max_connections;

  function refuse(socket: net.Socket, reason: AuthFailure, detail: Record<string, unknown> = {}): void {
    authFailures.authFailed(remoteOf(socket), reason, detail);
    socket.destroy();
  }

  const bound = await listenOn(server, cfg.port, cfg.host);
  server.on('error', (err) => core.log.error({ err, listener: cfg.id }, 'modbus listener error'));
  core.log.info({ listener: cfg.id, mode: cfg.mode, host: bound.address, port: bound.port }, 'modbus front door listening');

  const close = tcpListenerCloser(server, sockets, core, cfg.id);
  return {
    id: cfg.id,
    address: () => ({ host: bound.address, port: bound.port }),
    close: () => close().finally(releasePool),
  };
}

function remoteOf(socket: net.Socket): string {
  return formatRemote(socket.remoteAddress, socket.remotePort);
}

/** A binding source: one address (`10.0.0.5`, `::1`) or a subnet (`10.0.0.0/24`). */
function blockListOf(source: string): net.BlockList {
  const list = new net.BlockList();
  const [addr, bits] = source.split('/');
  const family = net.isIPv6(addr!) ? 'ipv6' : 'ipv4';
  if (bits === undefined) list.addAddress(addr!, family);
  else list.addSubnet(addr!, Number(bits), family);
  return list;
}

