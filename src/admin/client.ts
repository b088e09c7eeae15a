// A client of the admin socket: one request, one answer. A refusal comes back as a PenstockError with
// the server's code; a socket that is missing or closed to this user gets a message that says what to check.
import { createConnection } from 'node:net';
import { userInfo } from 'node:os';
import { PenstockError } from '../common/errors.ts';
import { LineSplitter, MAX_RESPONSE_BYTES, decodeResponse, encodeRequest, type AdminRequest } from './protocol.ts';

export const DEFAULT_ADMIN_SOCKET = '/run/penstock/admin.sock';

export interface AdminRequestOptions {
  timeoutMs?: number;
  /** Who this client says it is; the server prefers what the kernel says. Default: this process's uid and user. */
  operator?: AdminRequest['operator'];
}

/** This process's own claim of identity. */
export function ownClaim(): NonNullable<AdminRequest['operator']> {
  const uid = process.getuid?.() ?? 0;
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    // A uid with no passwd entry: the uid alone.
  }
  return { uid, ...(user ? { user } : {}) };
}

export function adminRequest(socketPath: string, command: string, params: unknown, opts: AdminRequestOptions = {}): Promise<unknown> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const request: AdminRequest = { id: 1, command, params: params ?? {}, operator: opts.operator ?? ownClaim() };
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    const splitter = new LineSplitter(MAX_RESPONSE_BYTES);
    let settled = false;
    const finish = (err: Error | undefined, result?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(result);
    };
    const timer = setTimeout(() => finish(noAnswer(socketPath, timeoutMs)), timeoutMs);

    socket.once('connect', () => socket.write(encodeRequest(request)));
    socket.on('data', (chunk: Buffer) => {
      const { lines, tooLarge } = splitter.push(chunk);
      if (tooLarge) return finish(new PenstockError('PS_INTERNAL', 'the admin socket answered with an oversize response'));
      const line = lines[0];
      if (line === undefined) return;
      try {
        const res = decodeResponse(line);
        if (res.ok) finish(undefined, res.result);
        else finish(new PenstockError(res.error.code, res.error.message));
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.once('end', () => finish(new PenstockError('PS_UPSTREAM_UNAVAILABLE', `${socketPath} closed the connection without an answer`, { socket: socketPath })));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(connectError(socketPath, err)));
  });
}

function noAnswer(socketPath: string, timeoutMs: number): PenstockError {
  return new PenstockError('PS_UPSTREAM_UNAVAILABLE', `no answer from ${socketPath} within ${timeoutMs} ms (is penstock running?)`, { socket: socketPath });
}

function connectError(socketPath: string, err: NodeJS.ErrnoException): PenstockError {
  switch (err.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return new PenstockError('PS_UPSTREAM_UNAVAILABLE', `cannot connect to ${socketPath} (${err.code}): is penstock running? (set --socket or PENSTOCK_ADMIN_SOCKET if it uses another path)`, { socket: socketPath, errno: err.code }, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new PenstockError('PS_ADMIN_FORBIDDEN', `permission denied on ${socketPath}: is your user in group penstock-admin? (log in again after being added)`, { socket: socketPath, errno: err.code }, { cause: err });
    default:
      return new PenstockError('PS_UPSTREAM_UNAVAILABLE', `cannot use ${socketPath}: ${err.message}`, { socket: socketPath, errno: err.code }, { cause: err });
  }
}

export interface AdminFollow {
  /** Resolves when the stream ends (the daemon closed it, or close() was called); rejects on a refusal or socket error. */
  readonly done: Promise<void>;
  close(): void;
}

/**
 * Follow a streaming command: `onHeader` gets the reply's result, then `onLine` each line after it
 * (parsed JSON), in order, until the daemon closes or close() is called.
 */
export function adminFollow(
  socketPath: string,
  command: string,
  params: unknown,
  handlers: { onHeader(result: unknown): void; onLine(line: unknown): void },
  opts: AdminRequestOptions = {},
): AdminFollow {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const request: AdminRequest = { id: 1, command, params: params ?? {}, operator: opts.operator ?? ownClaim() };
  const socket = createConnection(socketPath);
  const splitter = new LineSplitter(MAX_RESPONSE_BYTES);
  let headed = false;
  let settled = false;
  let settle: (err?: Error) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    settle = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
  });
  // Only the reply is awaited within the time-out; the stream may then be quiet for hours.
  const timer = setTimeout(() => settle(noAnswer(socketPath, timeoutMs)), timeoutMs);
  socket.once('connect', () => socket.write(encodeRequest(request)));
  socket.on('data', (chunk: Buffer) => {
    const { lines, tooLarge } = splitter.push(chunk);
    for (const line of lines) {
      if (settled) return;
      try {
        if (!headed) {
          const res = decodeResponse(line);
          if (!res.ok) return settle(new PenstockError(res.error.code, res.error.message));
          headed = true;
          clearTimeout(timer);
          handlers.onHeader(res.result);
        } else {
          handlers.onLine(JSON.parse(line));
        }
      } catch (err) {
        return settle(err instanceof PenstockError ? err : new PenstockError('PS_INTERNAL', 'the admin socket sent a line that is not JSON'));
      }
    }
    if (tooLarge) settle(new PenstockError('PS_INTERNAL', 'the admin socket sent an oversize line'));
  });
  socket.once('end', () => settle(headed ? undefined : new PenstockError('PS_UPSTREAM_UNAVAILABLE', `${socketPath} closed the connection without an answer`, { socket: socketPath })));
  socket.once('error', (err: NodeJS.ErrnoException) => settle(connectError(socketPath, err)));
  return { done, close: () => settle() };
}
