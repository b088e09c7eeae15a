// The OPC UA front door: a node-opcua server that shows each target's upstream address space under
// Objects/<target-id>/ and enforces policy node by node (accessor.ts, monitored.ts), with one node-opcua
// client per target toward the upstream server (upstream.ts).
//
// Security of the front door:
//   - endpoints SignAndEncrypt (and Sign only if configured) with Basic256Sha256, Aes128_Sha256_RsaOaep
//     and Aes256_Sha256_RsaPss; SecurityPolicy None only with `allow_security_none`, and every session on
//     it is journaled as insecure (session attributes);
//   - client application certificates only from `trusted_clients`; a refused certificate is journaled
//     (auth.failed) with its SHA-1 thumbprint (what UaExpert shows) and SHA-256 fingerprint;
//   - users: user name + password (checked against a scrypt hash in the vault) or an X.509 user
//     certificate (trusted list, or a principal's fingerprint); anonymous is refused and journaled;
//   - node-opcua's unresolvedPermissionPolicy is `deny`: a node without role permissions is closed to
//     every session; the gateway grants its namespace and namespace 0 the few permissions the mirror and
//     the server object need, and Penstock's policy decides everything on the targets' nodes.
import { join } from 'node:path';
import v8 from 'node:v8';
import {
  ActivateSessionRequest,
  AnonymousIdentityToken,
  MessageSecurityMode,
  OPCUAServer,
  PermissionFlag,
  SecurityPolicy,
  UserNameIdentityToken,
  X509IdentityToken,
  makeRoles,
  type ServerSession,
} from 'node-opcua';
import type { Core } from '../../core/core.ts';
import { RateLimitedRefusals } from '../../core/refusals.ts';
import type { ListenerConfig } from '../../config/types.ts';
import { opcuaCredentials } from './rules.ts';
import type { PrincipalConfig } from '../../config/schema.ts';
import type { Session } from '../../sessions/registry.ts';
import type { FrontDoor, RunningListener } from '../types.ts';
import { formatRemote } from '../net.ts';
import { OpcuaRefusals } from './refusals.ts';
import { opcuaListenerSchema, opcuaTargetSchema, type OpcuaListenerConfig, type OpcuaTargetConfig } from './schema.ts';
import { openGatewayPki } from './pki.ts';
import { certificateFacts, checkPassword, normalizeHex, principalForUserCertificate } from './identity.ts';
import { OpcuaUpstream } from './upstream.ts';
import { TargetMirror } from './address-space.ts';
import { OpcuaGateway } from './gateway.ts';
import { GatewayAccessor, type AddressSpaceAccessor } from './accessor.ts';
import { enforceMonitoredItems } from './monitored.ts';
import { enforceDiscovery, neverAliasGatewayNodes } from './discovery.ts';
import { dropPerSessionDiagnostics } from './diagnostics.ts';
import { answerCertificateRefusalsWithErr, eachConnection, watchWireErrors } from './wire-errors.ts';
import { callOpcuaAgentTool } from './agent-calls.ts';
import { offerTargets } from './links.ts';
import { ConnectionGuard, negotiate, transportCaps, TransportLimitRefused, type HelloLimits } from './limits.ts';

export const opcuaAdapter: FrontDoor = {
  start: startOpcuaListener,
  callAgentTool: callOpcuaAgentTool,
};

/** What tests and the benchmark may look at behind a running OPC UA listener. */
export interface OpcuaListenerInternals {
  server: OPCUAServer;
  gateway: OpcuaGateway;
  endpointUrl: string;
}
const internals = new WeakMap<RunningListener, OpcuaListenerInternals>();
export function opcuaListenerInternals(l: RunningListener): OpcuaListenerInternals | undefined {
  return internals.get(l);
}

const AUTHENTICATED = makeRoles('AuthenticatedUser');
const OWN_NAMESPACE_PERMISSIONS = PermissionFlag.Browse | PermissionFlag.Read | PermissionFlag.ReadRolePermissions | PermissionFlag.ReceiveEvents;
const NS0_PERMISSIONS = OWN_NAMESPACE_PERMISSIONS | PermissionFlag.Call;

function securityModeName(m: MessageSecurityMode): string {
  return MessageSecurityMode[m] ?? String(m);
}

export async function startOpcuaListener(raw: ListenerConfig, core: Core): Promise<RunningListener> {
  const cfg: OpcuaListenerConfig = opcuaListenerSchema.parse(raw);
  const config = core.config();
  const log = core.log.child({ listener: cfg.id, protocol: 'opcua' });
  const targets: OpcuaTargetConfig[] = cfg.targets.map((id) => {
    const t = config.targets.get(id);
    if (!t) throw new Error(`opcua listener ${cfg.id}: unknown target ${id}`);
    return opcuaTargetSchema.parse(t);
  });
  const pkiDir = cfg.pki_dir ?? join(config.appliance.state_dir, 'opcua', cfg.id);
  const refusals = new OpcuaRefusals(new RateLimitedRefusals(core, cfg.id, 'opcua'));
  const pki = await openGatewayPki({
    dir: pkiDir,
    trustedClients: cfg.trusted_clients,
    trustedUsers: cfg.trusted_user_certificates,
    pinnedUpstreams: targets.flatMap((t) => (t.server_certificate ? [t.server_certificate] : [])),
    userFingerprints: () => new Set([...core.config().principals.values()].flatMap((p) => p.credentials.x509?.fingerprints?.map(normalizeHex) ?? [])),
    // A refused certificate is journaled with its thumbprints (the channel's peer address is not known
    // to the certificate store; the secure-channel failure below records it when node-opcua reports one).
    onRefused: (leaf, status, reason) => refusals.authFailed('?', reason, { status: status.name, ...certificateFacts(leaf) }),
    identity: {
      applianceId: config.appliance.id,
      site: config.appliance.site,
      listener: cfg.id,
      names: [...new Set([cfg.hostname ?? cfg.host, cfg.host])],
      serverUri: `urn:penstock:${config.appliance.id}:${cfg.id}`,
      clientUri: `urn:penstock:${config.appliance.id}:${cfg.id}:client`,
      ...(cfg.certificate_file && cfg.private_key_file ? { operator: { certificateFile: cfg.certificate_file, privateKeyFile: cfg.private_key_file } } : {}),
      ...(cfg.client_certificate_file && cfg.client_private_key_file ? { operatorClient: { certificateFile: cfg.client_certificate_file, privateKeyFile: cfg.client_private_key_file } } : {}),
    },
  });
  const gw = new OpcuaGateway(core, cfg.id, cfg.visibility_cache_seconds * 1000, refusals);
  // What clients that have not authenticated may make this front door buffer (limits.ts).
  const caps = transportCaps(v8.getHeapStatistics().heap_size_limit, config.hardware);
  const guard = new ConnectionGuard(cfg.handshake_seconds * 1000, {
    onHandshakeTimeout: (socket) => refusals.rateLimited(formatRemote(socket.remoteAddress, socket.remotePort), 'handshake_timeout', { handshake_seconds: cfg.handshake_seconds }),
  });

  const modes: MessageSecurityMode[] = cfg.security_modes.map((m) => MessageSecurityMode[m]);
  const policies: SecurityPolicy[] = cfg.security_policies.map((p) => SecurityPolicy[p]);
  if (cfg.allow_security_none) {
    modes.push(MessageSecurityMode.None);
    policies.push(SecurityPolicy.None);
  }
  const server = new OPCUAServer({
    port: cfg.port,
    host: cfg.host,
    hostname: cfg.hostname ?? cfg.host,
    serverCertificateManager: pki.server,
    certificateFile: pki.serverCertificate.certificateFile,
    privateKeyFile: pki.serverCertificate.privateKeyFile,
    transportSettings: {
      adjustTransportLimits: (hello: HelloLimits) => {
        try {
          return negotiate(hello, caps, guard.committed);
        } catch (err) {
          // node-opcua answers the HEL with an ERR message (BadConnectionRejected) and closes the socket.
          if (err instanceof TransportLimitRefused) {
            const peer = guard.receivingFrom;
            refusals.rateLimited(formatRemote(peer.address, peer.port), 'transport_limit', { message: err.message, asked_message_size: err.asked });
          }
          throw err;
        }
      },
    },
    userCertificateManager: pki.users,
    securityModes: modes,
    securityPolicies: policies,
    allowAnonymous: false,
    unresolvedPermissionPolicy: 'deny',
    isAuditing: false,
    maxConnectionsPerEndpoint: cfg.max_sessions,
    serverCapabilities: { maxSessions: cfg.max_sessions },
    serverInfo: { applicationUri: `urn:penstock:${config.appliance.id}:${cfg.id}`, productUri: 'urn:penstock', applicationName: { text: `Penstock ${config.appliance.id}` } },
    buildInfo: { productName: 'Penstock OPC UA gateway', manufacturerName: 'Penstock' },
    userManager: {
      isValidUserAsync(this: ServerSession, username: string, password: string, callback: (err: Error | null, ok?: boolean) => void) {
        const result = checkPassword(core.config().principals.values(), core.vault, username, password);
        if (!result.ok) {
          refusals.authFailed(remoteOf(this), result.reason, { username, ...(result.principal ? { principal: result.principal } : {}) });
        }
        callback(null, result.ok);
      },
      // Every activated session is an authenticated principal's (anonymous is refused): the one role
      // that opens the mirror to Penstock's own per-item decisions.
      getUserRoles: (user: string) => (user === 'anonymous' ? [] : AUTHENTICATED),
    },
  });
  await server.initialize();

  const engine = (server as unknown as { engine: { addressSpace: NonNullable<OPCUAServer['engine']['addressSpace']>; addressSpaceAccessor: AddressSpaceAccessor } }).engine;
  const addressSpace = engine.addressSpace;
  const ns = addressSpace.getOwnNamespace();
  ns.setDefaultRolePermissions([{ roleId: AUTHENTICATED[0]!, permissions: OWN_NAMESPACE_PERMISSIONS }]);
  addressSpace.getDefaultNamespace().setDefaultRolePermissions([{ roleId: AUTHENTICATED[0]!, permissions: NS0_PERMISSIONS }]);
  dropPerSessionDiagnostics(addressSpace);

  for (const t of targets) {
    const password = t.username && t.credential ? core.vault.resolve(t.credential) : undefined;
    const upstream = new OpcuaUpstream(t, { certificateManager: pki.client, certificate: pki.clientCertificate, ...(password ? { password } : {}), log });
    const mirror = new TargetMirror(ns, t.id, upstream, { root: t.root, maxNodes: t.max_nodes, maxDepth: t.max_depth, log });
    gw.upstreams.set(t.id, upstream);
    gw.mirrors.set(t.id, mirror);
    upstream.onUp(() => {
      if (mirror.syncedAt === 0 || core.clock.now() - mirror.syncedAt > cfg.browse_cache_seconds * 1000) {
        mirror.sync().catch((err: unknown) => log.warn({ target: t.id, err: (err as Error).message }, 'opcua mirror failed'));
      }
    });
  }
  engine.addressSpaceAccessor = new GatewayAccessor(engine.addressSpaceAccessor, gw, cfg.browse_cache_seconds * 1000);
  enforceMonitoredItems(server, gw);
  enforceDiscovery(server, gw);

  // ------------------------------------------------------------------ sessions
  const live = new Map<ServerSession, Session>();
  server.on('session_activated', (ss: ServerSession) => {
    // The connection it was activated on (a new one when a client moves its session) is no longer unauthenticated.
    guard.authenticated(ss.channel?.remoteAddress, ss.channel?.remotePort);
    if (live.has(ss)) return; // re-activation (user change is not supported: same principal kept)
    const token = ss.userIdentityToken;
    const remote = remoteOf(ss);
    let principal: PrincipalConfig | undefined;
    const attributes: Record<string, string> = {};
    if (token instanceof UserNameIdentityToken) {
      const name = token.userName ?? '';
      principal = [...core.config().principals.values()].find((p) => opcuaCredentials(p).opcua_user?.username === name);
      attributes.identity = 'username';
    } else if (token instanceof X509IdentityToken && token.certificateData) {
      principal = principalForUserCertificate(core.config().principals.values(), token.certificateData);
      const facts = certificateFacts(token.certificateData);
      attributes.identity = 'x509';
      attributes.user_certificate = facts.sha256;
      if (!principal) refusals.authFailed(remote, 'user_certificate_unknown', { ...facts });
    }
    if (!principal) {
      engine_closeSession(server, ss);
      return;
    }
    const channel = ss.channel;
    const mode = channel ? securityModeName(channel.securityMode) : 'unknown';
    attributes.security_mode = mode;
    attributes.security_policy = channel?.securityPolicy ?? 'unknown';
    if (mode === 'None') attributes.insecure = 'SecurityPolicy None: nothing on this session is signed or encrypted';
    const clientCert = channel?.clientCertificate;
    if (clientCert) attributes.client_thumbprint = certificateFacts(clientCert).thumbprint;
    if (ss.sessionName) attributes.session_name = String(ss.sessionName).slice(0, 128);
    const session = core.sessions.open(
      {
        principal,
        chain: [principal.id, ...(principal.acting_for ? [principal.acting_for] : [])],
        ...(targets.length === 1 ? { target: targets[0]!.id } : {}),
        listener: cfg.id,
        protocol: 'opcua',
        remote,
        attributes,
      },
      // Kill (admin, revoked grant, limits): end the OPC UA session and its channel; the client sees
      // BadSessionClosed / a closed connection.
      () => {
        live.delete(ss);
        engine_closeSession(server, ss);
      },
    );
    live.set(ss, session);
    gw.bind(ss, session);
    neverAliasGatewayNodes(ss, ns.index);
  });
  server.on('session_closed', (ss: ServerSession) => {
    const s = live.get(ss);
    live.delete(ss);
    s?.close();
  });
  // Anonymous is not offered, but a client may still try it: journal the attempt.
  server.on('request', (request: unknown, channel: { remoteAddress?: string; remotePort?: number }) => {
    gw.noteRequest(request as Parameters<OpcuaGateway['noteRequest']>[0]);
    if (request instanceof ActivateSessionRequest) {
      const t = request.userIdentityToken;
      if (!t || t instanceof AnonymousIdentityToken) refusals.authFailed(formatRemote(channel.remoteAddress, channel.remotePort), 'anonymous_refused');
    }
  });
  server.on('openSecureChannelFailure', (socketData: { remoteAddress?: string; remotePort?: number; reason: string }, channelData: { clientCertificate: Buffer | null; securityPolicy: string; securityMode: MessageSecurityMode }) => {
    const cert = channelData.clientCertificate;
    refusals.authFailed(formatRemote(socketData.remoteAddress, socketData.remotePort), cert ? 'client_certificate_refused' : 'secure_channel_refused', {
      message: socketData.reason,
      ...(cert ? certificateFacts(cert) : {}),
      security_policy: channelData.securityPolicy,
      security_mode: securityModeName(channelData.securityMode),
    });
  });
  server.on('connectionRefused', (socketData: { remoteAddress?: string; remotePort?: number; reason: string }) => {
    refusals.authFailed(formatRemote(socketData.remoteAddress, socketData.remotePort), 'connection_refused', { message: socketData.reason });
  });

  answerCertificateRefusalsWithErr(server);
  eachConnection(server, (socket) => guard.watch(socket));
  watchWireErrors(server, (e) => refusals.malformed(e.remote, undefined, 'malformed_frame', { status: e.status, message: e.reason }));

  for (const u of gw.upstreams.values()) u.start();
  await server.start();
  // The agent tools of this core reach these targets through this listener's links (links.ts).
  const withdrawTargets = offerTargets(gw, cfg.browse_cache_seconds * 1000);
  const endpointUrl = server.getEndpointUrl();
  const port = Number(new URL(endpointUrl.replace(/^opc\.tcp:/, 'http:')).port) || cfg.port;
  log.info({ endpoint: endpointUrl, targets: cfg.targets, none: cfg.allow_security_none }, 'opcua front door listening');

  let closing: Promise<void> | undefined;
  const running: RunningListener = {
    id: cfg.id,
    address: () => ({ host: cfg.host, port }),
    // Each target's upstream link and mirror: until a target is mirrored its nodes are unknown here.
    status: () => ({
      targets: [...gw.mirrors.values()].map((m) => ({
        id: m.target,
        upstream: gw.upstreams.get(m.target)!.state,
        mirrored_nodes: m.nodes.size - 1,
        mirrored_at: m.syncedAt > 0 ? new Date(m.syncedAt).toISOString() : null,
      })),
    }),
    close: () => {
      closing ??= (async () => {
        withdrawTargets();
        for (const s of [...live.values()]) s.terminate({ reason: 'shutdown' });
        live.clear();
        await server.shutdown(0);
        await Promise.allSettled([...gw.upstreams.values()].map((u) => u.close()));
        gw.dispose();
        await Promise.allSettled([pki.server.dispose(), pki.users.dispose(), pki.client.dispose()]);
      })();
      return closing;
    },
  };
  internals.set(running, { server, gateway: gw, endpointUrl });
  return running;
}

function engine_closeSession(server: OPCUAServer, ss: ServerSession): void {
  try {
    server.engine.closeSession(ss.authenticationToken, true, 'Terminated');
  } catch {
    // already gone
  }
  try {
    ss.channel?.close();
  } catch {}
}

function remoteOf(ss: { channel?: { remoteAddress?: string; remotePort?: number } | undefined }): string {
  return formatRemote(ss.channel?.remoteAddress, ss.channel?.remotePort);
}
