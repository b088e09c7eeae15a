// The pull API central PAM uses to fetch the journal: HTTPS with mutual TLS, versioned JSON.
// Only clients whose certificate chains to the configured client CA get past the TLS handshake, and
// only certificates `sync.clients` names get an answer, each limited to its roles (clients.ts).
// Everything is read-only except /v1/ack and /v1/cosign.
//
// ---------------------------------------------------------------------------------------------
// Penstock pull API, version 1 (docs/journal.md, "Pull API for central PAM", says the same for operators)
//
// Transport: HTTPS, TLS 1.2 or later with ECDHE key exchange and AEAD ciphers only (tls.ts), mutual
// TLS. The gateway presents its server certificate; the client must present a certificate that chains
// to the CA in `sync.tls.client_ca`, or the connection is refused during the handshake (no HTTP
// response at all). The certificate must then be one `sync.clients` names (by SHA-256 fingerprint, the
// SPIFFE ID of an X.509-SVID, or subject), else every request is 403 unknown_client; each endpoint needs a role (read: the GETs,
// ack: /v1/ack, cosign: /v1/cosign), else 403 forbidden. The client's configured name is recorded
// with its acknowledgements and cosignatures.
//
// All responses are JSON (`application/json; charset=utf-8`, `Cache-Control: no-store`). Errors are
// `{ "error": { "code": "<stable code>", "message": "<for people>" } }` with codes
// bad_parameter (400), bad_body (400), out_of_range (400), rejected (400), unknown_client (403),
// forbidden (403), not_found (404), no_checkpoint (404), method_not_allowed (405),
// already_cosigned (409), body_too_large (413), unsupported_media_type (415), internal (500),
// event_missing (500, with "seq": the missing event), unavailable (503). Match on the code.
// Numbers in queries are plain decimal integers (no sign, no leading zeros, no exponent); unknown or
// repeated query parameters are refused with bad_parameter.
//
// seq is the 0-based index of an event (leaf) in the journal's Merkle tree (RFC 6962 / RFC 9162:
// leaf hash = SHA-256(0x00 || event bytes), node hash = SHA-256(0x01 || left || right)).
//
// GET /v1/checkpoint
//   -> { "size": N, "root_hash": "<base64 32 bytes>", "note": "<C2SP tlog-checkpoint signed note>" }
//   The latest checkpoint signed with the appliance's Ed25519 key. Trust `note` only after its
//   signature verifies against the appliance key you pinned; size and root_hash repeat what the note
//   says for convenience. 404 no_checkpoint before the first checkpoint is signed.
//
// GET /v1/events?from=SEQ[&limit=N]
//   -> { "events": [ { "seq": S, "event": "<canonical JSON text>" }, ... ], "next": S', "tree_size": T }
//   Events from SEQ on, in order, at most min(N, page size) of them. `event` is the event's canonical
//   JSON as a string, verbatim: hash its UTF-8 bytes, never a re-serialisation. `next` is the seq to
//   ask for next; `tree_size` is the journal's current size (it may be ahead of the latest
//   checkpoint: only trust events up to the size of a checkpoint you verified). from = tree_size gives
//   an empty page; from > tree_size is out_of_range. Events removed by retention (which only ever
//   removes acknowledged events) are not_found. An event missing anywhere else (the journal lost it,
//   or someone deleted it) is event_missing with its seq: evidence is gone; retrying cannot help.
//
// GET /v1/proof/consistency?from=M&to=N       (1 <= M <= N <= tree size)
//   -> { "proof": [ "<base64 hash>", ... ] }  RFC 9162 consistency proof from tree size M to N.
//
// GET /v1/proof/inclusion?seq=I&size=N        (0 <= I < N <= tree size)
//   -> { "proof": [ "<base64 hash>", ... ] }  RFC 9162 inclusion proof of leaf I in the tree of size N.
//
// POST /v1/ack   body { "seq": S, "checkpoint_size": N }     (Content-Type: application/json)
//   -> { "acknowledged": A }
//   The client has durably stored every event up to and including S, verified against the signed
//   checkpoint of size N (S < N). Retention may then remove events up to S. Acknowledging less than
//   before is harmless; `acknowledged` is the journal's acknowledged position after the call.
//
// POST /v1/cosign  body { "note": "<the checkpoint note with the witness's signature line added>" }
//   -> { "stored": true }
//   A witness cosignature of a checkpoint the gateway signed (note at most 8 KiB). The note's body
//   must be byte for byte a checkpoint the gateway issued and carry a valid Ed25519 signature by the
//   posting client's `witness_key`; rejected (400) otherwise. One cosignature per witness per
//   checkpoint: a second is already_cosigned (409). The gateway keeps its own note plus that one
//   signature line, nothing else the client sent.
//
// GET /v1/key
//   -> { "vkey": "<C2SP note verifier key: name+keyhash+base64(0x01||ed25519 key)>" }
//   A convenience for pinning the appliance key the first time: compare what it returns OUT OF BAND
//   with the key read on the gateway itself (console, admin socket) before pinning it. A puller must
//   be given its pinned key and must never take it from this endpoint: a key fetched over the same
//   link it is meant to authenticate proves nothing.
//
// Bodies are limited to 16 KiB; at most 32 connections, 8 per source address (IPv6: per /64); a
// handshake must finish within 3 s; slow or idle connections are closed (header, request and idle
// time-outs); internal error details are logged on the gateway, never sent to the peer. Refusals
// before a request is served (handshake refused, over the per-source cap, unknown certificate,
// missing role) are journaled as auth.failed folded per source: the first at once, the rest of an
// interval (10 s) as one event with `folded` (their number) and `reasons` (counts per reason).
// ---------------------------------------------------------------------------------------------
import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { z } from 'zod';
import { isPenstockError } from '../common/errors.ts';
import { identifyClient, type SyncClientRule, type SyncRole } from './clients.ts';
import { checkCosignature } from './cosign.ts';
import { pemOrFile } from './pem.ts';
import { DEFAULT_FOLD, RefusalFold } from './refusal-fold.ts';
import { sourceKey } from './sources.ts';
import { PerKeyLimit } from '../common/per-key-limit.ts';
import { SYNC_TLS_CIPHERS, SYNC_TLS_MIN_VERSION } from './tls.ts';
import { SYNC_WIRE_ERRORS } from './types.ts';
import type { JournalReaderLike, SyncAuditEvent, SyncWireErrorCode } from './types.ts';

export const SYNC_API_VERSION = 'v1';
export const MAX_BODY_BYTES = 16 * 1024;

export interface SyncTimeouts {
  /** Time to complete the TLS handshake. */
  handshakeMs: number;
  /** Time to receive the request headers. */
  headersMs: number;
  /** Time to receive the whole request. */
  requestMs: number;
  /** An idle connection (no bytes either way) is closed after this. */
  idleMs: number;
  keepAliveMs: number;
}

export const DEFAULT_SYNC_TIMEOUTS: SyncTimeouts = {
  // Short: a connection that has not finished its handshake holds a slot and proves nothing yet.
  handshakeMs: 3_000,
  headersMs: 10_000,
  requestMs: 30_000,
  idleMs: 60_000,
  keepAliveMs: 5_000,
};

export interface SyncServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Each value is PEM text or a path to a PEM file (config gives paths). */
  tls: { cert: string; key: string; clientCa: string };
  journal: JournalReaderLike;
  /** Largest page /v1/events serves (config sync.page_size). */
  pageSize: number;
  /** The clients and their roles (config sync.clients), read on every request so a reload applies. */
  clients: () => readonly SyncClientRule[];
  log: Logger;
  onAudit?: (e: SyncAuditEvent) => void;
  timeouts?: Partial<SyncTimeouts>;
  /** Connections open at once, in all (default 32). */
  maxConnections?: number;
  /** Connections open at once from one source address (IPv6: one /64), default 8. */
  maxConnectionsPerSource?: number;
  /** Folding of refusals per source (defaults: 10 s, 256 sources). */
  fold?: { intervalMs?: number; maxSources?: number };
}

export interface SyncServer {
  address(): { host: string; port: number };
  close(): Promise<void>;
}

/** A refusal with a stable wire code; the message is fixed text chosen here, never an internal error. */
class WireRefusal extends Error {
  readonly wireCode: SyncWireErrorCode;
  /** Machine-readable fields beside code and message (e.g. the missing seq). */
  readonly fields: Record<string, number> | undefined;
  constructor(wireCode: SyncWireErrorCode, message: string, fields?: Record<string, number>) {
    super(message);
    this.wireCode = wireCode;
    this.fields = fields;
  }
}

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;

/** Parses the query against an allowlist of integer parameters; anything else is refused. */
export function parseIntegerQuery(search: URLSearchParams, required: readonly string[], optional: readonly string[] = []): Record<string, number> {
  const allowed = new Set([...required, ...optional]);
  const out: Record<string, number> = {};
  for (const [name, value] of search) {
    if (!allowed.has(name)) throw new WireRefusal('bad_parameter', `unknown query parameter: ${name.slice(0, 40)}`);
    if (name in out) throw new WireRefusal('bad_parameter', `repeated query parameter: ${name}`);
    if (!DECIMAL.test(value)) throw new WireRefusal('bad_parameter', `${name} must be a non-negative decimal integer`);
    const n = Number(value);
    if (!Number.isSafeInteger(n)) throw new WireRefusal('bad_parameter', `${name} is too large`);
    out[name] = n;
  }
  for (const name of required) {
    if (!(name in out)) throw new WireRefusal('bad_parameter', `missing query parameter: ${name}`);
  }
  return out;
}

const ackBody = z.strictObject({
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  checkpoint_size: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
});
const cosignBody = z.strictObject({ note: z.string().min(1).max(8 * 1024) });

function b64(hashes: Uint8Array[]): string[] {
  return hashes.map((h) => Buffer.from(h).toString('base64'));
}

/** How a certificate no client entry names is logged: subject CN, else the certificate fingerprint. */
function peerName(cert: ReturnType<TLSSocket['getPeerCertificate']> | undefined): string {
  if (!cert || Object.keys(cert).length === 0) return 'unknown';
  const cn = cert.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  return name ?? `sha256:${cert.fingerprint256}`;
}

async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new WireRefusal('unsupported_media_type', 'body must be application/json');
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new WireRefusal('body_too_large', `body exceeds ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_BODY_BYTES) throw new WireRefusal('body_too_large', `body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new WireRefusal('bad_body', 'body is not valid JSON');
  }
}

function parseBody<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new WireRefusal('bad_body', `invalid body${issue ? ` at ${issue.path.join('.') || '(root)'}: ${issue.message}` : ''}`);
  }
  return r.data;
}

interface Route {
  method: 'GET' | 'POST';
  /** The role a client needs (clients.ts). */
  role: SyncRole;
  handle(req: IncomingMessage, url: URL, client: SyncClientRule): Promise<unknown> | unknown;
}

/**
 * Events from `from` on, exactly the next seqs, or a refusal that names the first one missing: removed
 * by retention (below the first retained event, only ever after an ack) is not_found; missing anywhere
 * else means the journal lost or someone deleted an event, event_missing — never a page with a gap.
 */
function readContiguous(journal: JournalReaderLike, from: number, count: number): { seq: number; event: string }[] {
  const read = count === 0 ? [] : journal.readEvents(from, count);
  let i = 0;
  while (i < read.length && i < count && read[i]!.seq === from + i) i++;
  if (i === count) return read.slice(0, count).map((e) => ({ seq: e.seq, event: e.bytes }));
  const missing = from + i;
  const first = journal.firstRetained();
  if (missing < first) {
    throw new WireRefusal('not_found', `events from ${from} were removed after acknowledgement; the first held is ${first}`);
  }
  throw new WireRefusal('event_missing', `event seq ${missing} is missing from the journal`, { seq: missing });
}

function routes(opts: SyncServerOptions, storeCosignature: (note: string, client: SyncClientRule) => Promise<{ size: number; witness: string }>): Map<string, Route> {
  const { journal, onAudit } = opts;
  const pageSize = Math.max(1, Math.floor(opts.pageSize));
  return new Map<string, Route>([
    ['/v1/checkpoint', {
      method: 'GET',
      role: 'read',
      handle: (_req, url) => {
        parseIntegerQuery(url.searchParams, []);
        const cp = journal.latestCheckpoint();
        if (!cp) throw new WireRefusal('no_checkpoint', 'no checkpoint has been signed yet');
        return { size: cp.size, root_hash: cp.rootHash, note: cp.note };
      },
    }],
    ['/v1/events', {
      method: 'GET',
      role: 'read',
      handle: (_req, url) => {
        const q = parseIntegerQuery(url.searchParams, ['from'], ['limit']);
        if (q.limit === 0) throw new WireRefusal('bad_parameter', 'limit must be at least 1');
        const from = q.from!;
        const limit = Math.min(q.limit ?? pageSize, pageSize);
        const treeSize = journal.size();
        if (from > treeSize) throw new WireRefusal('out_of_range', `from ${from} is beyond the tree size ${treeSize}`);
        const events = readContiguous(journal, from, Math.min(limit, treeSize - from));
        return { events, next: from + events.length, tree_size: treeSize };
      },
    }],
    ['/v1/proof/consistency', {
      method: 'GET',
      role: 'read',
      handle: (_req, url) => {
        const q = parseIntegerQuery(url.searchParams, ['from', 'to']);
        const treeSize = journal.size();
        if (!(q.from! >= 1 && q.from! <= q.to! && q.to! <= treeSize)) {
          throw new WireRefusal('out_of_range', `need 1 <= from <= to <= ${treeSize}`);
        }
        return { proof: b64(journal.consistencyProof(q.from!, q.to!)) };
      },
    }],
    ['/v1/proof/inclusion', {
      method: 'GET',
      role: 'read',
      handle: (_req, url) => {
        const q = parseIntegerQuery(url.searchParams, ['seq', 'size']);
        const treeSize = journal.size();
        if (!(q.seq! < q.size! && q.size! <= treeSize)) {
          throw new WireRefusal('out_of_range', `need 0 <= seq < size <= ${treeSize}`);
        }
        return { proof: b64(journal.inclusionProof(q.seq!, q.size!)) };
      },
    }],
    ['/v1/key', {
      method: 'GET',
      role: 'read',
      handle: (_req, url) => {
        parseIntegerQuery(url.searchParams, []);
        return { vkey: journal.publicKeyVkey() };
      },
    }],
    ['/v1/ack', {
      method: 'POST',
      role: 'ack',
      handle: async (req, url, client) => {
        const by = client.name;
        parseIntegerQuery(url.searchParams, []);
        const body = parseBody(ackBody, await readJsonBody(req));
        if (body.seq >= body.checkpoint_size) throw new WireRefusal('out_of_range', 'seq must be below checkpoint_size');
        if (!journal.checkpointFor(body.checkpoint_size)) {
          throw new WireRefusal('out_of_range', `no checkpoint of size ${body.checkpoint_size}`);
        }
        const before = journal.acknowledged();
        await journal.acknowledge(body.seq, by);
        // Journaled only when the position moved: repeating an ack must not be a way to grow the journal.
        if (journal.acknowledged() > before) onAudit?.({ kind: 'acknowledged', by, seq: body.seq, checkpointSize: body.checkpoint_size });
        return { acknowledged: journal.acknowledged() };
      },
    }],
    ['/v1/cosign', {
      method: 'POST',
      role: 'cosign',
      handle: async (req, url, client) => {
        parseIntegerQuery(url.searchParams, []);
        const body = parseBody(cosignBody, await readJsonBody(req));
        const { size, witness } = await storeCosignature(body.note, client);
        onAudit?.({ kind: 'cosigned', by: client.name, size, witness });
        return { stored: true };
      },
    }],
  ]);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}

export async function startSyncServer(opts: SyncServerOptions): Promise<SyncServer> {
  const timeouts = { ...DEFAULT_SYNC_TIMEOUTS, ...opts.timeouts };
  const { log, onAudit } = opts;
  const fold = new RefusalFold({
    ...DEFAULT_FOLD,
    ...opts.fold,
    report: (r) => onAudit?.({ kind: 'auth_refused', ...r }),
  });
  const connections = new PerKeyLimit<string>(opts.maxConnectionsPerSource ?? 8);
  /** Raw sockets → their source, so a refused handshake is counted against the right one. */
  const sourceOf = new WeakMap<object, string>();
  const dropped = new WeakSet<object>();

  // One cosignature per witness per checkpoint: the check and the write run with no other cosign in between.
  let cosigning = Promise.resolve();
  const storeCosignature = (note: string, client: SyncClientRule): Promise<{ size: number; witness: string }> => {
    const run = cosigning.then(async () => {
      if (!client.witnessKey) throw new WireRefusal('forbidden', `client ${client.name} has no witness key`);
      const check = checkCosignature(note, client.witnessKey, opts.journal);
      if (!check.ok) {
        log.warn({ by: client.name, problem: check.problem }, 'sync: cosignature refused');
        throw new WireRefusal(check.code, check.code === 'already_cosigned' ? 'this witness already cosigned that checkpoint' : 'cosignature rejected');
      }
      await opts.journal.addCosignature(check.note);
      return { size: check.size, witness: check.witness };
    });
    cosigning = run.then(() => {}, () => {});
    return run;
  };
  const table = routes(opts, storeCosignature);

  const server: HttpsServer = createHttpsServer({
    cert: pemOrFile(opts.tls.cert, 'sync.tls.cert'),
    key: pemOrFile(opts.tls.key, 'sync.tls.key'),
    ca: pemOrFile(opts.tls.clientCa, 'sync.tls.client_ca'),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: SYNC_TLS_MIN_VERSION,
    ciphers: SYNC_TLS_CIPHERS,
    handshakeTimeout: timeouts.handshakeMs,
    maxHeaderSize: 8 * 1024,
    headersTimeout: timeouts.headersMs,
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: timeouts.keepAliveMs,
  }, (req, res) => {
    void handle(req, res);
  });
  server.maxConnections = opts.maxConnections ?? 32;
  server.setTimeout(timeouts.idleMs, (socket) => socket.destroy());
  // Runs after the TLS server wrapped the raw socket (its own 'connection' listener comes first).
  server.on('connection', (raw: Socket) => {
    const source = sourceKey(raw.remoteAddress);
    if (!connections.admit(source)) {
      dropped.add(raw);
      raw.destroy();
      fold.refuse(source, 'too_many_connections');
      return;
    }
    sourceOf.set(raw, source);
    raw.once('close', () => connections.release(source));
  });
  // Over the server-wide cap (only reachable from several sources at once): Node closed it already.
  server.on('drop', (data?: { remoteAddress?: string }) => fold.refuse(sourceKey(data?.remoteAddress), 'server_full'));
  server.on('tlsClientError', (err, socket) => {
    // Node destroys a socket whose client certificate fails verification before the handshake ends;
    // the verification result is kept in authorizationError. The source was noted at 'connection'.
    const raw = (socket as unknown as { _parent?: object })._parent;
    if (raw && dropped.has(raw)) return;
    const source = (raw && sourceOf.get(raw)) ?? sourceKey(socket.remoteAddress);
    const authError = (socket as TLSSocket).authorizationError;
    const reason = String(authError ?? (err as NodeJS.ErrnoException).code ?? err.message);
    log.debug({ source, reason }, 'sync: TLS handshake refused');
    fold.refuse(source, reason);
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const cert = (req.socket as TLSSocket).getPeerCertificate?.();
    const client = identifyClient(cert, opts.clients());
    const by = client?.name ?? peerName(cert);
    let path = '?';
    try {
      if (!client) {
        fold.refuse(sourceKey(req.socket.remoteAddress), 'unknown_client');
        throw new WireRefusal('unknown_client', 'this client certificate is not one sync.clients names');
      }
      const url = new URL(req.url ?? '/', 'https://penstock.invalid');
      path = url.pathname;
      const route = table.get(url.pathname);
      if (!route) throw new WireRefusal('not_found', 'no such endpoint');
      if (req.method !== route.method) {
        res.setHeader('allow', route.method);
        throw new WireRefusal('method_not_allowed', `use ${route.method}`);
      }
      if (!client.roles.has(route.role)) {
        fold.refuse(sourceKey(req.socket.remoteAddress), `forbidden_${route.role}`, client.name);
        throw new WireRefusal('forbidden', `client ${client.name} does not have the ${route.role} role`);
      }
      send(res, 200, await route.handle(req, url, client));
    } catch (err) {
      let code: SyncWireErrorCode;
      let message: string;
      let fields: Record<string, number> | undefined;
      if (err instanceof WireRefusal) {
        code = err.wireCode;
        message = err.message;
        fields = err.fields;
        if (code === 'event_missing') log.error({ path, by, ...fields }, 'sync: the journal is missing an event');
      } else if (isPenstockError(err, 'PS_JOURNAL_UNAVAILABLE')) {
        code = 'unavailable';
        message = 'journal temporarily unavailable';
        log.warn({ err, path, by }, 'sync: journal unavailable');
      } else {
        code = 'internal';
        message = 'internal error';
        log.error({ err, path, by }, 'sync: request failed');
      }
      const status = SYNC_WIRE_ERRORS[code];
      onAudit?.({ kind: 'request_refused', by, path, status, error: code });
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // Do not read on after a refused body: close the connection instead of draining it.
      if (req.method === 'POST' && !req.readableEnded) res.setHeader('connection', 'close');
      send(res, status, { error: { code, message, ...fields } });
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  log.info({ host: addr.address, port: addr.port }, 'sync: pull API listening');

  return {
    address: () => ({ host: addr.address, port: addr.port }),
    close: () => new Promise<void>((resolve) => {
      fold.close();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
