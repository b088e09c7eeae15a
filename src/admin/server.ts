// The admin socket: a Unix socket for local operators, owner-only (0600) or owner + one group (0660).
// Requests are dispatched from an allowlist table; every state-changing request is audited (the daemon
// journals it) before its handler runs, and is refused if that record cannot be written, or if the kernel
// did not confirm who sent it. Requests that change nothing are counted and audited as aggregates.
// A streaming command's answer is followed by its lines (stream.ts): the connection is then the stream's.
//
// Connections are bounded per uid (as the kernel names it) so that one user's idle connections cannot
// lock the others out; a connection must send its first request within seconds of connecting.
import { chmod, chown, lstat, mkdir, stat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname, isAbsolute } from 'node:path';
import { ERROR_CODES, PenstockError, isPenstockError, type ErrorCode } from '../common/errors.ts';
import { identifyOperator, groupId, verifyPeer, type PeerResult } from './peer.ts';
import { ReadOnlyAudit } from './read-audit.ts';
import { StreamReply } from './stream.ts';
import { LineSplitter, MAX_REQUEST_BYTES, encodeResponse, requestEnvelopeSchema, type AdminResponse, type RequestId } from './protocol.ts';
import type { AdminAudit, AdminAuditEntry, AdminCommandTable, AdminContext, AdminLog, Operator } from './types.ts';
import type { z } from 'zod';
import { PerKeyLimit } from '../common/per-key-limit.ts';

export interface AdminServerOptions {
  /** Absolute path of the socket. */
  socketPath: string;
  /** Group allowed to use the socket (mode 0660, group-owned); without it the socket is 0600. */
  group?: string;
  commands: AdminCommandTable;
  context: AdminContext;
  log: AdminLog;
  audit: AdminAudit;
  /** After its first request, close a connection that sends nothing for this long while no request is in flight (default 30 s). */
  idleTimeoutMs?: number;
  /** Close a connection whose first request has not fully arrived this long after it connected (default 2 s). */
  firstRequestTimeoutMs?: number;
  /** Most connections served at once, root's not counted (default 32). */
  maxConnections?: number;
  /** Most connections of one uid at once; all unverified peers count as one uid (default 8). */
  maxConnectionsPerUid?: number;
  /** Read-only requests are audited as one aggregate per command, operator and outcome this often (default 60 s). */
  aggregateReadsMs?: number;
  /** How the peer's uid is found (default: SO_PEERCRED, see peer.ts). Tests replace it to inject a failure. */
  identifyPeer?: (socket: Socket) => PeerResult;
}

export interface AdminServer {
  readonly path: string;
  /** Audit what the read-only aggregates hold now (also done every interval and on close). */
  flushAudit(): Promise<void>;
  close(): Promise<void>;
}

export const DEFAULT_MAX_CONNECTIONS = 32;
export const DEFAULT_MAX_CONNECTIONS_PER_UID = 8;
export const DEFAULT_FIRST_REQUEST_TIMEOUT_MS = 2_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

/** The operator recorded when neither the kernel nor the client named one (read-only commands only). */
const UNKNOWN_OPERATOR: Operator = { uid: -1, verified: false };

export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const path = opts.socketPath;
  if (!isAbsolute(path)) throw new PenstockError('PS_CONFIG_INVALID', `admin socket path must be absolute: ${path}`);
  const gid = opts.group === undefined ? undefined : await groupId(opts.group);
  if (opts.group !== undefined && gid === undefined) throw new PenstockError('PS_CONFIG_INVALID', `admin group ${opts.group} does not exist (see /etc/group)`);

  await prepareDirectory(dirname(path), gid, opts.log);
  await removeStaleSocket(path);

  const connections = new Set<Socket>();
  const reads = new ReadOnlyAudit();
  let flushing: Promise<void> = Promise.resolve();
  const flushAudit = (): Promise<void> => {
    // One flush at a time, in order: entries are taken when this flush's turn comes.
    flushing = flushing.then(async () => {
      for (const entry of reads.take()) await auditQuietly(opts, entry);
    });
    return flushing;
  };
  const audit: Auditor = {
    changes: (entry) => opts.audit(entry),
    counted: (entry) => {
      if (reads.add(entry, Date.now())) void flushAudit();
    },
  };
  const limits = new ConnectionLimits(opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS, opts.maxConnectionsPerUid ?? DEFAULT_MAX_CONNECTIONS_PER_UID);
  const server = createServer({ allowHalfOpen: false, pauseOnConnect: false }, (socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    // One system call, before anything is read: the uid decides which bound the connection counts against.
    const peer = (opts.identifyPeer ?? verifyPeer)(socket);
    const uid = 'uid' in peer ? peer.uid : undefined;
    if (!limits.admit(uid)) {
      refuseBusy(socket, uid, opts, audit);
      return;
    }
    socket.once('close', () => limits.release(uid));
    serveConnection(socket, peer, opts, audit);
  });

  await listen(server, path);
  try {
    // Until this chmod the socket has the umask's mode; the 0750 directory keeps others out meanwhile.
    if (gid !== undefined) {
      await chown(path, -1, gid);
      await chmod(path, 0o660);
    } else {
      await chmod(path, 0o600);
    }
  } catch (err) {
    await closeServer(server, connections);
    throw new PenstockError('PS_CONFIG_INVALID', `cannot set permissions of admin socket ${path}: ${(err as Error).message}`, undefined, { cause: err });
  }
  opts.log.info({ socket: path, group: opts.group ?? null, mode: gid !== undefined ? '0660' : '0600' }, 'admin socket listening');
  const flushTimer = setInterval(() => void flushAudit(), opts.aggregateReadsMs ?? 60_000);
  flushTimer.unref();

  let closed: Promise<void> | undefined;
  return {
    path,
    flushAudit,
    close() {
      clearInterval(flushTimer);
      closed ??= closeServer(server, connections)
        .then(() => unlink(path).catch(() => undefined))
        .then(flushAudit);
      return closed;
    },
  };
}

/** Where audit records go: state changes one by one (and awaited), everything else counted. */
interface Auditor {
  changes(entry: AdminAuditEntry): Promise<void>;
  counted(entry: Pick<AdminAuditEntry, 'command' | 'operator' | 'ok' | 'error'>): void;
}

/**
 * Connections held per uid, and in all. Root (uid 0) counts only against its own per-uid bound, so
 * other users filling the total can never lock root out; unverified peers share one bound.
 */
class ConnectionLimits {
  readonly #perUid: PerKeyLimit<number>;
  readonly #maxTotal: number;
  #total = 0;

  constructor(maxTotal: number, maxPerUid: number) {
    this.#maxTotal = maxTotal;
    this.#perUid = new PerKeyLimit(maxPerUid);
  }

  admit(uid: number | undefined): boolean {
    if (uid !== 0 && this.#total >= this.#maxTotal) return false;
    if (!this.#perUid.admit(uid ?? -1)) return false;
    if (uid !== 0) this.#total++;
    return true;
  }

  release(uid: number | undefined): void {
    this.#perUid.release(uid ?? -1);
    if (uid !== 0) this.#total--;
  }
}

/** Too many connections from this uid (or in all): say so in the protocol, count it, close. */
function refuseBusy(socket: Socket, uid: number | undefined, opts: AdminServerOptions, audit: Auditor): void {
  socket.on('error', () => {});
  const operator: Operator = uid === undefined ? UNKNOWN_OPERATOR : { uid, verified: true };
  audit.counted({ command: '(connection)', operator, ok: false, error: 'PS_ADMIN_BUSY' });
  opts.log.warn({ uid: uid ?? null }, 'admin connection refused: too many connections from this user');
  const res: AdminResponse = { id: null, ok: false, error: body('PS_ADMIN_BUSY', 'too many admin connections from this user; close some and retry') };
  socket.end(encodeResponse(res), () => socket.destroy());
}

async function prepareDirectory(dir: string, gid: number | undefined, log: AdminLog): Promise<void> {
  const created = await mkdir(dir, { recursive: true, mode: 0o750 });
  if (created !== undefined && gid !== undefined) {
    // Group members must be able to reach the socket through its directory.
    await chown(dir, -1, gid);
  }
  const st = await stat(dir);
  if (gid !== undefined && st.gid !== gid && (st.mode & 0o001) === 0) {
    log.warn({ dir, group_gid: gid }, 'the admin group cannot enter the socket directory: give the directory that group, or make it searchable (0751/0755)');
  }
  if ((st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0) {
    log.warn({ dir }, 'the admin socket directory is writable by everyone: anyone could replace the socket');
  }
}

/** Remove a socket file left by a process that died; refuse to touch a live socket or anything else. */
async function removeStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new PenstockError('PS_CONFIG_INVALID', `admin socket path ${path} exists and is not a socket; refusing to remove it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new PenstockError('PS_CONFIG_INVALID', `admin socket ${path} is in use by a running process (is another penstock running?)`);
  await unlink(path);
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function closeServer(server: Server, connections: Set<Socket>): Promise<void> {
  const done = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const s of connections) s.destroy();
  await done;
}

function serveConnection(socket: Socket, peer: PeerResult, opts: AdminServerOptions, audit: Auditor): void {
  const { log } = opts;
  const splitter = new LineSplitter(MAX_REQUEST_BYTES);
  const queue: string[] = [];
  let busy = false;
  let closing = false;
  let started = false;
  // Once a streaming command answered, the connection is that stream's: what the client sends is dropped.
  let streaming = false;

  // A hard deadline for the first request, however slowly its bytes trickle in; then an idle time-out.
  // Checked again after the event loop's I/O phase: when the loop was busy, a request that arrived in
  // time is read before the connection is judged.
  const firstRequest = setTimeout(() => setImmediate(() => {
    if (!started) socket.destroy();
  }), opts.firstRequestTimeoutMs ?? DEFAULT_FIRST_REQUEST_TIMEOUT_MS);
  socket.once('close', () => clearTimeout(firstRequest));
  socket.on('timeout', () => {
    if (!busy) socket.destroy();
  });
  socket.on('error', (err) => log.debug({ err }, 'admin connection error'));

  socket.on('data', (chunk: Buffer) => {
    if (closing || streaming) return;
    const { lines, tooLarge } = splitter.push(chunk);
    if (lines.length > 0 && !started) {
      started = true;
      clearTimeout(firstRequest);
      socket.setTimeout(opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
    }
    queue.push(...lines);
    if (tooLarge) {
      closing = true;
      socket.pause();
    }
    void drain();
  });

  let operator: Promise<Operator | undefined> | undefined;
  const operatorFor: OperatorFor = (claim) => {
    if ('failure' in peer) log.debug({ reason: peer.failure, claim: claim ?? null }, 'admin peer uid not verified by the kernel');
    operator ??= identifyOperator(peer);
    return operator;
  };

  async function drain(): Promise<void> {
    if (busy) return;
    busy = true;
    try {
      while (queue.length > 0) {
        const line = queue.shift()!;
        socket.pause();
        const { res, stream } = await handleLine(line, opts, operatorFor, audit);
        if (socket.destroyed) {
          stream?.cancel();
          return;
        }
        socket.write(encodeResponse(res));
        if (stream) {
          streaming = true;
          queue.length = 0;
          // A watcher may sit quiet for hours; reading on lets its close (EOF) be seen.
          socket.setTimeout(0);
          socket.resume();
          const stop = stream.start(socket);
          socket.once('close', stop);
          return;
        }
      }
      if (closing) {
        const operator = (await operatorFor(undefined)) ?? UNKNOWN_OPERATOR;
        audit.counted({ command: '(too large)', operator, ok: false, error: 'PS_ADMIN_TOO_LARGE' });
        const res: AdminResponse = { id: null, ok: false, error: body('PS_ADMIN_TOO_LARGE', `request line longer than ${MAX_REQUEST_BYTES} bytes`) };
        if (!socket.destroyed) socket.end(encodeResponse(res), () => socket.destroy());
        return;
      }
      if (!socket.destroyed) socket.resume();
    } finally {
      busy = false;
    }
  }
}

type OperatorFor = (claim: { uid: number; user?: string } | undefined) => Promise<Operator | undefined>;

/** A response, and the stream that follows it when the command streams. */
interface Answer {
  res: AdminResponse;
  stream?: StreamReply;
}

async function handleLine(line: string, opts: AdminServerOptions, operatorFor: OperatorFor, audit: Auditor): Promise<Answer> {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    const operator = (await operatorFor(undefined)) ?? UNKNOWN_OPERATOR;
    audit.counted({ command: '(malformed)', operator, ok: false, error: 'PS_ADMIN_BAD_REQUEST' });
    return { res: { id: null, ok: false, error: body('PS_ADMIN_BAD_REQUEST', 'request is not valid JSON') } };
  }
  const envelope = requestEnvelopeSchema.safeParse(raw);
  if (!envelope.success) {
    const id = pickId(raw);
    const operator = (await operatorFor(undefined)) ?? UNKNOWN_OPERATOR;
    audit.counted({ command: '(malformed)', operator, ok: false, error: 'PS_ADMIN_BAD_REQUEST' });
    return { res: { id, ok: false, error: body('PS_ADMIN_BAD_REQUEST', `bad request: ${describeIssues(envelope.error)}`) } };
  }
  const req = envelope.data;
  const operator = await operatorFor(req.operator);
  return dispatch(req.id, req.command, req.params ?? {}, operator, opts, audit);
}

async function dispatch(id: RequestId, command: string, params: unknown, operator: Operator | undefined, opts: AdminServerOptions, audit: Auditor): Promise<Answer> {
  const who = operator ?? UNKNOWN_OPERATOR;
  // Own properties only: `constructor` or `__proto__` is not a command.
  const cmd = Object.hasOwn(opts.commands, command) ? opts.commands[command] : undefined;
  // A refused attempt at a state change is recorded on its own; any other refusal is only counted.
  const record = async (ok: boolean, error?: ErrorCode): Promise<void> => {
    if (cmd?.mutates) await auditQuietly(opts, { command, operator: who, params, ok, ...(error ? { error } : {}), phase: 'after' });
    else audit.counted({ command, operator: who, ok, ...(error ? { error } : {}) });
  };
  const refuse = async (code: ErrorCode, message: string): Promise<Answer> => {
    await record(false, code);
    return { res: { id, ok: false, error: body(code, message) } };
  };

  if (!cmd) return refuse('PS_ADMIN_UNKNOWN_COMMAND', `unknown command ${command}`);

  const parsed = cmd.params.safeParse(params);
  if (!parsed.success) return refuse('PS_ADMIN_BAD_REQUEST', `bad params for ${command}: ${describeIssues(parsed.error)}`);

  if (cmd.mutates) {
    // Only the kernel's word names an operator: a client's claim could name anyone.
    if (!operator) return refuse('PS_ADMIN_PEER_UNVERIFIED', `${command} changes state, and the kernel did not confirm who sent it (SO_PEERCRED unavailable); read-only commands still answer`);
    // No record, no change: the handler runs only once the request is journaled.
    try {
      await audit.changes({ command, operator, params: parsed.data, ok: true, phase: 'before' });
    } catch (err) {
      opts.log.error({ err, command }, 'admin request refused: audit record could not be written');
      return { res: { id, ok: false, error: errorBody(err) } };
    }
  }

  try {
    const result = await cmd.handler(parsed.data as never, { operator: who, context: opts.context });
    // A stream is one read, counted once when it starts, never per line it sends.
    if (!cmd.mutates) await record(true);
    if (result instanceof StreamReply) return { res: { id, ok: true, result: result.header ?? null }, stream: result };
    return { res: { id, ok: true, result: result ?? null } };
  } catch (err) {
    const error = errorBody(err);
    if (error.code === 'PS_INTERNAL') opts.log.error({ err, command }, 'admin command failed');
    else opts.log.info({ code: error.code, command }, 'admin command refused');
    await record(false, error.code);
    return { res: { id, ok: false, error } };
  }
}

/** Audit records that gate nothing: a failure is logged, the answer stands. */
async function auditQuietly(opts: AdminServerOptions, entry: AdminAuditEntry): Promise<void> {
  try {
    await opts.audit(entry);
  } catch (err) {
    opts.log.warn({ err, command: entry.command }, 'admin audit record could not be written');
  }
}

function body(code: ErrorCode, message: string): { code: ErrorCode; message: string } {
  return { code, message };
}

/** A PenstockError keeps its code and message; anything else is a generic internal error (detail to the log). */
function errorBody(err: unknown): { code: ErrorCode; message: string } {
  if (isPenstockError(err) && err.code !== 'PS_INTERNAL') return body(err.code, err.message);
  return body('PS_INTERNAL', ERROR_CODES.PS_INTERNAL);
}

function pickId(raw: unknown): RequestId {
  const id = raw && typeof raw === 'object' ? (raw as Record<string, unknown>).id : undefined;
  if (typeof id === 'number' && Number.isSafeInteger(id)) return id;
  if (typeof id === 'string' && id.length <= 64) return id;
  return null;
}

/** `field.path: message; …`, naming each field as the client wrote it. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => {
      const field = formatPath(i.path);
      return field ? `${field}: ${i.message}` : i.message;
    })
    .join('; ');
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}
