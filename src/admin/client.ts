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
    const timer = setTimeout(
      () => finish(new PenstockError('PS_UPSTREAM_UNAVAILABLE', `no answer from ${socketPath} within ${timeoutMs} ms (is penstock running?)`, { socket: socketPath })),
      timeoutMs,
    );

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
