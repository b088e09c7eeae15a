// The MCP front door: the Streamable HTTP transport of the official SDK, over TLS (node:https). Before the
// SDK sees a request it is bounded (max_body_bytes: 413 without reading on) and authenticated (a bearer
// JWT, tokens.ts; else 401 with an RFC 6750/9728 challenge, journaled as auth.failed). Each MCP session
// (one SDK transport, keyed by its Mcp-Session-Id) is one core session of the principal that opened it:
// another principal's token on it is refused (403); it ends when the client deletes it, when the freshest
// token presented on it expires, when the core ends it (kill, revoked grant) or when the listener closes.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema, isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type { TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import type { Core } from '../../core/core.ts';
import { RateLimitedRefusals } from '../../core/refusals.ts';
import type { ListenerConfig } from '../../config/types.ts';
import type { Session } from '../../sessions/registry.ts';
import type { PrincipalConfig } from '../../config/schema.ts';
import type { FrontDoor, RunningListener } from '../types.ts';
import { formatRemote, listenOn, tcpListenerCloser } from '../net.ts';
import { mcpListenerSchema, type McpListenerConfig } from './schema.ts';
import { TokenVerifier, type TokenFailure, type VerifiedToken } from './tokens.ts';
import { principalForCertificate, type CertificateMatch } from '../client-certificates.ts';
import { callTool, listTools } from './tools.ts';
import { endSessionAccess, gatewayTools, type AccessLedger } from './gateway-tools.ts';

/** Refusals of a request that carried a valid token, beside the token failures (tokens.ts). */
export const REQUEST_REFUSALS = {
  session_not_owned: 'the MCP session belongs to another principal (403)',
  body_too_large: 'the request body exceeds max_body_bytes (413)',
  body_not_json: 'the request body is not JSON (400)',
  certificate_refused: 'the client certificate (mutual TLS) does not chain to client_ca or names no principal (401)',
  identity_mismatch: 'the client certificate and the bearer token name different principals (401)',
  task_mismatch: 'the token\'s task claim differs from the one the MCP session was opened with (403)',
} as const;

const METADATA_PATH = '/.well-known/oauth-protected-resource';
/** How long a refused upload may go on being discarded before its connection is dropped. */
const LINGER_MS = 2000;
/** Longest a timer may be set for; a later expiry re-arms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const mcpAdapter: FrontDoor = { start: startMcpListener };

interface McpSession {
  readonly transport: StreamableHTTPServerTransport;
  readonly server: McpServer;
  readonly session: Session;
  /** The latest expiry of a credential presented on this session (ms): a token's `exp`, a certificate's notAfter. */
  expiresMs: number;
  timer: NodeJS.Timeout | undefined;
  released: boolean;
  /** The call budget's key when it is this session's own (the token names no task): forgotten with the session. */
  sessionBudget?: string;
}

/** Who a request comes from: a verified bearer token or a client certificate. */
interface Caller {
  principal: PrincipalConfig;
  chain: string[];
  expiresMs: number;
  task?: string;
  attributes: Record<string, string>;
}

export async function startMcpListener(raw: ListenerConfig, core: Core): Promise<RunningListener> {
  const cfg: McpListenerConfig = mcpListenerSchema.parse(raw);
  const verifier = new TokenVerifier(cfg, core.config().appliance.state_dir, core.log); // reads pinned and cached JWKS now, on every listener start
  verifier.start();
  const resource = new URL(cfg.resource);
  const resourcePath = resource.pathname;
  const metadataUrl = `${resource.origin}${METADATA_PATH}${resourcePath === '/' ? '' : resourcePath}`;
  const metadataPaths = new Set([METADATA_PATH, `${METADATA_PATH}${resourcePath === '/' ? '' : resourcePath}`]);
  const metadata = JSON.stringify({
    resource: cfg.resource,
    authorization_servers: cfg.issuers.map((i) => i.issuer),
    bearer_methods_supported: ['header'],
    ...(cfg.client_ca ? { tls_client_certificate_bound_access_tokens: false } : {}),
  });
  const refusals = new RateLimitedRefusals(core, cfg.id, 'mcp');
  const byId = new Map<string, McpSession>();
  const bySession = new Map<Session, McpSession>();
  const sockets = new Set<net.Socket>();
  /** Tool calls per principal and task (the session id when the token names no task). */
  const callsPerTask = new Map<string, number>();
  const ledger: AccessLedger = {
    issued: new Map(),
    tokenExpiryMs: (session) => bySession.get(session)?.expiresMs ?? core.clock.now(),
  };
  const tools = gatewayTools(ledger);
  const toolsByName = new Map(tools.map((t) => [t.name, t]));

  const arm = (s: McpSession) => {
    clearTimeout(s.timer);
    const delay = s.expiresMs - core.clock.now();
    s.timer = setTimeout(() => {
      if (s.expiresMs - core.clock.now() > 0) return arm(s);
      // The credential that let the agent in has expired: the session ends as a grant that no longer
      // holds would, and the just-in-time access it asked for ends with it.
      endSessionAccess(core, ledger, s.session.id, 'the token of the session that asked for it expired');
      s.session.terminate({ reason: 'grant_expired', detail: 'credential expired' });
    }, Math.max(0, Math.min(delay, MAX_TIMER_MS)));
    s.timer.unref();
  };

  /** A new MCP session for the caller; the SDK names it in its answer to `initialize`. */
  const openSession = (caller: Caller, remote: string): McpSession => {
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => void byId.set(id, entry),
      // The client deleted the session (HTTP DELETE).
      onsessionclosed: () => endFromClient(entry),
    });
    // The low-level request handlers, not registerTool: what an agent sees depends on its grants at the
    // moment it asks, and a refused call must carry Penstock's reason, not the SDK's "tool disabled".
    const server = new McpServer({ name: 'penstock', version: '1' }, { capabilities: { tools: { listChanged: true } } });
    const attributes = { ...caller.attributes, ...(caller.task !== undefined ? { task: caller.task } : {}) };
    const session = core.sessions.open(
      { principal: caller.principal, chain: caller.chain, listener: cfg.id, protocol: 'mcp', remote, attributes },
      // Ended by the core (kill, revoked grant), the credential's expiry or the listener closing: the SDK
      // closes the session's streams, and later requests on its id get 404.
      () => release(entry),
    );
    const budgetKey = `${caller.principal.id}\u0000${caller.task ?? session.id}`;
    // A budget kept by session (no task claim) ends with the session; a task's outlives its sessions.
    const entry: McpSession = { transport, server, session, expiresMs: caller.expiresMs, timer: undefined, released: false, ...(caller.task === undefined ? { sessionBudget: budgetKey } : {}) };
    bySession.set(session, entry);
    transport.onclose = () => endFromClient(entry);
    // Calls per second per session: a burst of one second's worth, refilled continuously.
    const bucket = { tokens: cfg.calls_per_second, atMs: core.clock.now() };
    const admit = (): 'rate_limited' | 'call_budget_spent' | undefined => {
      const now = core.clock.now();
      bucket.tokens = Math.min(cfg.calls_per_second, bucket.tokens + ((now - bucket.atMs) / 1000) * cfg.calls_per_second);
      bucket.atMs = now;
      if (bucket.tokens < 1) return 'rate_limited';
      const n = (callsPerTask.get(budgetKey) ?? 0) + 1;
      if (n > cfg.max_calls_per_task) return 'call_budget_spent';
      bucket.tokens -= 1;
      callsPerTask.set(budgetKey, n);
      return undefined;
    };
    const refuse = (detail: Record<string, unknown> & { reason: string }) => refusals.record('mcp.tool_refused', remote, session.principal.id, { session: session.id, ...detail });
    server.server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: listTools(core, session, tools) }));
    server.server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      const after: (() => void)[] = [];
      try {
        return await callTool(request.params.name, request.params.arguments, {
          core, session, listener: cfg.id, gatewayTools: toolsByName, admit, refuse, afterAnswer: (fn) => void after.push(fn), signal: extra.signal,
        });
      } finally {
        // The SDK writes the answer in the microtasks after this handler returns; these run after it.
        if (after.length) setImmediate(() => after.forEach((fn) => fn()));
      }
    });
    arm(entry);
    return entry;
  };

  // A grant issued, revoked or expired changes what its principal's agents may call: tell their sessions.
  const stopWatchingGrants = core.grants.onChange((change) => {
    for (const entry of bySession.values()) {
      if (entry.session.principal.id === change.grant.principal && entry.transport.sessionId !== undefined) {
        void entry.server.sendToolListChanged();
      }
    }
  });

  /** Make room for one more session of this principal: its least recently active one ends. */
  const endLeastRecentlyUsed = (principal: string) => {
    const mine = [...bySession.values()].filter((e) => e.session.principal.id === principal);
    if (mine.length < cfg.max_sessions_per_principal) return;
    mine.sort((a, b) => a.session.lastActivityMs - b.session.lastActivityMs);
    for (const e of mine.slice(0, mine.length - cfg.max_sessions_per_principal + 1)) {
      e.session.terminate({ reason: 'idle', detail: `the principal opened more than ${cfg.max_sessions_per_principal} MCP sessions; its least recently used one ended` });
    }
  };

  /** The client or the SDK ended the MCP session: the core session ends with it. */
  const endFromClient = (entry: McpSession) => {
    entry.session.close();
    release(entry);
  };

  const release = (entry: McpSession) => {
    if (entry.released) return; // closing the SDK server closes its transport, which comes back here
    entry.released = true;
    clearTimeout(entry.timer);
    bySession.delete(entry.session);
    if (entry.sessionBudget !== undefined) callsPerTask.delete(entry.sessionBudget);
    if (entry.transport.sessionId !== undefined) byId.delete(entry.transport.sessionId);
    void entry.server.close().catch(() => {});
  };

  /**
   * A connection's client certificate and the principal it names: worked out once per connection (and
   * config snapshot), not on every request the connection carries.
   */
  const certificates = new WeakMap<TLSSocket, { principals: ReadonlyMap<string, PrincipalConfig>; cert: X509Certificate | undefined; match: CertificateMatch | undefined }>();
  const certificateOf = (socket: TLSSocket) => {
    const principals = core.config().principals;
    let known = certificates.get(socket);
    if (!known || known.principals !== principals) {
      const cert = socket.getPeerX509Certificate();
      known = { principals, cert, match: cert && socket.authorized ? principalForCertificate(cert, principals.values()) : undefined };
      certificates.set(socket, known);
    }
    return known;
  };

  /** The caller of a request: its client certificate (mutual TLS), else its bearer token; undefined once refused (answered). */
  const identify = async (req: IncomingMessage, res: ServerResponse, remote: string): Promise<Caller | undefined> => {
    const bearer = TokenVerifier.bearer(req.headers.authorization);
    const { cert, match } = cfg.client_ca ? certificateOf(req.socket as TLSSocket) : { cert: undefined, match: undefined };
    let byCert: Caller | undefined;
    if (cert) {
      if (!match?.ok) {
        refusals.authFailed(remote, 'certificate_refused', { tls_reason: match ? match.reason : 'untrusted_certificate', ...(match?.spiffeId ? { spiffe_id: match.spiffeId } : {}) });
        unauthorized(res, metadataUrl, 'bad_token');
        return undefined;
      }
      const p = match.principal;
      byCert = {
        principal: p,
        chain: [p.id, ...(p.acting_for ? [p.acting_for] : [])],
        expiresMs: Date.parse(cert.validTo),
        attributes: { ...(match.spiffeId !== undefined ? { spiffe_id: match.spiffeId } : {}), identified_by: 'certificate' },
      };
      if (bearer === undefined) return byCert;
    }
    // The config's principals map itself: the cache of verified tokens holds for one config snapshot.
    const check = await verifier.verify(bearer, core.config().principals, core.clock.now());
    if (!check.ok) {
      refusals.authFailed(remote, check.reason, check.detail);
      if (check.reason === 'act_mismatch') {
        // A delegation the gateway was not told of: someone may be using the agent's identity for a party it does not serve.
        refusals.record('alert.delegation_mismatch', remote, String(check.detail.principal), { reason: 'act_mismatch', ...check.detail });
      }
      unauthorized(res, metadataUrl, check.reason);
      return undefined;
    }
    const t = check.token;
    if (byCert && byCert.principal.id !== t.principal.id) {
      refusals.authFailed(remote, 'identity_mismatch', { certificate_principal: byCert.principal.id, token_principal: t.principal.id });
      unauthorized(res, metadataUrl, 'bad_token');
      return undefined;
    }
    return {
      principal: t.principal,
      chain: t.chain,
      expiresMs: t.expiresMs,
      ...(t.task !== undefined ? { task: t.task } : {}),
      attributes: { ...byCert?.attributes, issuer: t.issuer, subject: t.subject.slice(0, 200) },
    };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const remote = formatRemote(req.socket.remoteAddress, req.socket.remotePort);
    const path = new URL(req.url ?? '/', resource.origin).pathname;
    if (metadataPaths.has(path)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD' });
      return send(res, 200, metadata, { 'cache-control': 'max-age=300' });
    }
    if (path !== resourcePath) return send(res, 404, { error: 'not_found' });

    // A declared length over the bound is refused before anything else, without reading the body.
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > cfg.max_body_bytes) return tooLarge(req, res, remote, undefined);

    const caller = await identify(req, res, remote);
    if (!caller) return;

    let body: unknown;
    if (req.method === 'POST') {
      const read = await readBounded(req, cfg.max_body_bytes);
      if (read === 'too_large') return tooLarge(req, res, remote, caller.principal.id);
      try {
        body = JSON.parse(read.toString('utf8'));
      } catch {
        refusals.record('action.malformed', remote, caller.principal.id, { reason: 'body_not_json' });
        return send(res, 400, { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null });
      }
    }

    const sid = req.headers['mcp-session-id'];
    if (typeof sid === 'string') {
      const entry = byId.get(sid);
      if (!entry) return send(res, 404, { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
      if (entry.session.principal.id !== caller.principal.id) {
        refusals.authFailed(remote, 'session_not_owned', { principal: caller.principal.id, session: entry.session.id });
        return send(res, 403, { jsonrpc: '2.0', error: { code: -32001, message: 'Forbidden: this session belongs to another principal' }, id: null });
      }
      if (entry.session.attributes.task !== caller.task) {
        refusals.authFailed(remote, 'task_mismatch', { principal: caller.principal.id, session: entry.session.id });
        return send(res, 403, { jsonrpc: '2.0', error: { code: -32001, message: 'Forbidden: this session was opened for another task' }, id: null });
      }
      if (req.method === 'POST') entry.session.lastActivityMs = core.clock.now(); // a request is activity (idle time-out, least recently used)
      // A fresher credential keeps the session for its own lifetime; an older one does not shorten it.
      if (caller.expiresMs > entry.expiresMs) {
        entry.expiresMs = caller.expiresMs;
        arm(entry);
      }
      return entry.transport.handleRequest(req, res, body);
    }
    if (req.method !== 'POST' || !isInitializeRequest(body)) {
      return send(res, 400, { jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: no valid session id' }, id: null });
    }
    if (bySession.size >= cfg.max_sessions) {
      refusals.record('mcp.session_refused', remote, caller.principal.id, { reason: 'too_many_sessions', max_sessions: cfg.max_sessions });
      return send(res, 503, { jsonrpc: '2.0', error: { code: -32000, message: `this door holds its maximum of ${cfg.max_sessions} sessions; try again later` }, id: null }, { 'retry-after': '30' });
    }
    endLeastRecentlyUsed(caller.principal.id);
    const entry = openSession(caller, remote);
    try {
      await entry.server.connect(entry.transport);
      await entry.transport.handleRequest(req, res, body);
    } finally {
      // The SDK refused the initialize (no session id issued): the session never began.
      if (entry.transport.sessionId === undefined) endFromClient(entry);
    }
  };

  function tooLarge(req: IncomingMessage, res: ServerResponse, remote: string, principal: string | undefined): void {
    refusals.record('action.malformed', remote, principal, { reason: 'body_too_large', max_body_bytes: cfg.max_body_bytes });
    // The rest of the body is discarded, never kept. The connection is not closed at once: a client still
    // sending would see it reset before it read the 413 (and TLS has no half-close). What it sends
    // meanwhile is thrown away for a short linger, then the connection is dropped.
    send(res, 413, { jsonrpc: '2.0', error: { code: -32600, message: `request body exceeds ${cfg.max_body_bytes} bytes` }, id: null });
    res.once('finish', () => {
      req.resume();
      if (req.complete) return;
      const linger = setTimeout(() => req.socket.destroy(), LINGER_MS).unref();
      req.once('end', () => clearTimeout(linger));
    });
  }

  const server = https.createServer(
    {
      cert: readFileSync(cfg.tls.cert),
      key: readFileSync(cfg.tls.key),
      minVersion: 'TLSv1.2',
      // Mutual TLS is offered, not required: an agent without a certificate still presents a bearer
      // token. A certificate that does not chain to client_ca is refused per request (identify).
      ...(cfg.client_ca ? { ca: readFileSync(cfg.client_ca), requestCert: true, rejectUnauthorized: false } : {}),
    },
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        core.log.error({ err, listener: cfg.id }, 'mcp request failed');
        if (!res.headersSent) send(res, 500, { jsonrpc: '2.0', error: { code: -32603, message: 'Internal error' }, id: null });
        else res.destroy();
      });
    },
  );
  server.requestTimeout = 60_000; // a request body trickled in slower than this is dropped (slow-loris)
  server.headersTimeout = 20_000;
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  server.on('tlsClientError', () => {}); // a failed handshake never reached HTTP; nothing to answer

  const bound = await listenOn(server, cfg.port, cfg.host);
  server.on('error', (err) => core.log.error({ err, listener: cfg.id }, 'mcp listener error'));
  core.log.info({ listener: cfg.id, host: bound.address, port: bound.port, resource: cfg.resource }, 'mcp front door listening');
  const closeListener = tcpListenerCloser(server, sockets, core, cfg.id);
  return {
    id: cfg.id,
    address: () => ({ host: bound.address, port: bound.port }),
    close: () => {
      stopWatchingGrants();
      verifier.close();
      return closeListener();
    },
    status: () => ({ resource: cfg.resource, mcp_sessions: byId.size, jwks_fetched: verifier.status() }),
  };
}

/** The body, or 'too_large' as soon as it passes `max` (the rest is left unread). */
function readBounded(req: IncomingMessage, max: number): Promise<Buffer | 'too_large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.off('data', onData);
        req.pause();
        return resolve('too_large');
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/** 401 with the challenge of RFC 6750 §3 pointing at the metadata of RFC 9728 §5.1. */
function unauthorized(res: ServerResponse, metadataUrl: string, reason: TokenFailure): void {
  // RFC 6750 §3.1: a request without credentials gets no error code; a bad token gets invalid_token.
  const challenge = `Bearer resource_metadata="${metadataUrl}"${reason === 'no_token' ? '' : ', error="invalid_token"'}`;
  send(res, 401, { error: reason === 'no_token' ? 'unauthorized' : 'invalid_token', error_description: reason }, { 'www-authenticate': challenge });
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(text);
}
