// The admin socket: a Unix socket for local operators, owner-only (0600) or owner + one group (0660).
// Requests are dispatched from an allowlist table; every state-changing request is audited (the daemon
// journals it) before its handler runs, and is refused if that record cannot be written.
import { chmod, chown, lstat, mkdir, stat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname, isAbsolute } from 'node:path';
import { ERROR_CODES, PenstockError, isPenstockError, type ErrorCode } from '../common/errors.ts';
import { identifyOperator, groupId, verifyPeer, type PeerIdentity } from './peer.ts';
import { LineSplitter, MAX_REQUEST_BYTES, encodeResponse, requestEnvelopeSchema, type AdminResponse, type RequestId } from './protocol.ts';
import type { AdminAudit, AdminAuditEntry, AdminCommandTable, AdminContext, AdminLog, Operator } from './types.ts';
import type { z } from 'zod';

export interface AdminServerOptions {
  /** Absolute path of the socket. */
  socketPath: string;
  /** Group allowed to use the socket (mode 0660, group-owned); without it the socket is 0600. */
  group?: string;
  commands: AdminCommandTable;
  context: AdminContext;
  log: AdminLog;
  audit: AdminAudit;
  /** Close a connection that sends nothing for this long while no request is in flight (default 30 s). */
  idleTimeoutMs?: number;
  /** Most connections served at once (default 32). */
  maxConnections?: number;
  /** How the peer's uid is found (default: the kernel's socket table, see peer.ts). Tests replace it. */
  identifyPeer?: (socket: Socket) => Promise<PeerIdentity | { failure: string }>;
}

export interface AdminServer {
  readonly path: string;
  close(): Promise<void>;
}

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
  const server = createServer({ allowHalfOpen: false, pauseOnConnect: false }, (socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    serveConnection(socket, opts);
  });
  server.maxConnections = opts.maxConnections ?? 32;

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

  let closed: Promise<void> | undefined;
  return {
    path,
    close() {
      closed ??= closeServer(server, connections).then(() => unlink(path).catch(() => undefined));
      return closed;
    },
  };
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

function serveConnection(socket: Socket, opts: AdminServerOptions): void {
  const { log } = opts;
  const splitter = new LineSplitter(MAX_REQUEST_BYTES);
  // Ask the kernel who connected while the request is still in flight (the client is alive and waiting).
  const peer = (opts.identifyPeer ?? verifyPeer)(socket);
  const queue: string[] = [];
  let busy = false;
  let closing = false;

  socket.setTimeout(opts.idleTimeoutMs ?? 30_000);
  socket.on('timeout', () => {
    if (!busy) socket.destroy();
  });
  socket.on('error', (err) => log.debug({ err }, 'admin connection error'));

  socket.on('data', (chunk: Buffer) => {
    if (closing) return;
    const { lines, tooLarge } = splitter.push(chunk);
    queue.push(...lines);
    if (tooLarge) {
      closing = true;
      socket.pause();
    }
    void drain();
  });

  const operatorFor = async (claim: { uid: number; user?: string } | undefined): Promise<Operator | undefined> => {
    const verified = await peer;
    if ('failure' in verified) log.debug({ reason: verified.failure }, 'admin peer uid not verified by the kernel');
    return identifyOperator(verified, claim);
  };

  async function drain(): Promise<void> {
    if (busy) return;
    busy = true;
    try {
      while (queue.length > 0) {
        const line = queue.shift()!;
        socket.pause();
        const res = await handleLine(line, opts, operatorFor);
        if (socket.destroyed) return;
        socket.write(encodeResponse(res));
      }
      if (closing) {
        const operator = (await operatorFor(undefined)) ?? UNKNOWN_OPERATOR;
        await auditQuietly(opts, { command: '(too large)', operator, params: undefined, ok: false, error: 'PS_ADMIN_TOO_LARGE', phase: 'after' });
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

async function handleLine(line: string, opts: AdminServerOptions, operatorFor: OperatorFor): Promise<AdminResponse> {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    const operator = (await operatorFor(undefined)) ?? UNKNOWN_OPERATOR;
    await auditQuietly(opts, { command: '(malformed)', operator, params: undefined, ok: false, error: 'PS_ADMIN_BAD_REQUEST', phase: 'after' });
    return { id: null, ok: false, error: body('PS_ADMIN_BAD_REQUEST', 'request is not valid JSON') };
  }
  const envelope = requestEnvelopeSchema.safeParse(raw);
  if (!envelope.success) {
    const id = pickId(raw);
    const operator = (await operatorFor(undefined)) ?? UNKNOWN_OPERATOR;
    await auditQuietly(opts, { command: '(malformed)', operator, params: undefined, ok: false, error: 'PS_ADMIN_BAD_REQUEST', phase: 'after' });
    return { id, ok: false, error: body('PS_ADMIN_BAD_REQUEST', `bad request: ${describeIssues(envelope.error)}`) };
  }
  const req = envelope.data;
  const operator = await operatorFor(req.operator);
  return dispatch(req.id, req.command, req.params ?? {}, operator, opts);
}

async function dispatch(id: RequestId, command: string, params: unknown, operator: Operator | undefined, opts: AdminServerOptions): Promise<AdminResponse> {
  const who = operator ?? UNKNOWN_OPERATOR;
  const refuse = async (code: ErrorCode, message: string): Promise<AdminResponse> => {
    await auditQuietly(opts, { command, operator: who, params, ok: false, error: code, phase: 'after' });
    return { id, ok: false, error: body(code, message) };
  };

  // Own properties only: `constructor` or `__proto__` is not a command.
  const cmd = Object.hasOwn(opts.commands, command) ? opts.commands[command] : undefined;
  if (!cmd) return refuse('PS_ADMIN_UNKNOWN_COMMAND', `unknown command ${command}`);

  const parsed = cmd.params.safeParse(params);
  if (!parsed.success) return refuse('PS_ADMIN_BAD_REQUEST', `bad params for ${command}: ${describeIssues(parsed.error)}`);

  if (cmd.mutates) {
    if (!operator) return refuse('PS_ADMIN_FORBIDDEN', `${command} changes state and the operator could not be identified: send "operator": {"uid": …}`);
    // No record, no change: the handler runs only once the request is journaled.
    try {
      await opts.audit({ command, operator, params: parsed.data, ok: true, phase: 'before' });
    } catch (err) {
      opts.log.error({ err, command }, 'admin request refused: audit record could not be written');
      return { id, ok: false, error: errorBody(err) };
    }
  }

  try {
    const result = await cmd.handler(parsed.data as never, { operator: who, context: opts.context });
    if (!cmd.mutates) await auditQuietly(opts, { command, operator: who, params, ok: true, phase: 'after' });
    return { id, ok: true, result: result ?? null };
  } catch (err) {
    const error = errorBody(err);
    if (error.code === 'PS_INTERNAL') opts.log.error({ err, command }, 'admin command failed');
    else opts.log.info({ code: error.code, command }, 'admin command refused');
    await auditQuietly(opts, { command, operator: who, params, ok: false, error: error.code, phase: 'after' });
    return { id, ok: false, error };
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
