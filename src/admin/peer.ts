// Who is on the other end of an admin connection: the uid the kernel recorded when the peer connected
// (SO_PEERCRED), read in-process with getsockopt(2) on the accepted socket's descriptor. No child
// process and no /proc, so it works under ProtectProc=invisible, for any user, with no privilege, and
// cannot be slow. Node exposes no getsockopt, so libc's is called through koffi (FFI).
//
// When the kernel cannot say (an architecture whose constants we do not know, no descriptor, libc not
// loadable), the connection is unverified: read-only commands still answer, state-changing ones are
// refused (server.ts). The client's own claim of who it is is never used as the operator's identity.
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import koffi from 'koffi';
import type { Operator } from '../grants/types.ts';

/** The peer as the kernel identified it. */
export interface PeerIdentity {
  uid: number;
  pid: number;
}

export type PeerResult = PeerIdentity | { failure: string };

/**
 * SOL_SOCKET and SO_PEERCRED by Node's process.arch. The asm-generic values (1, 17) hold on x86-64,
 * arm64 and 32-bit arm; other architectures (mips, powerpc, sparc, parisc…) differ, and a wrong constant
 * would read another option, so anything not listed here is refused rather than guessed.
 */
const PEERCRED_CONSTANTS: Readonly<Record<string, { SOL_SOCKET: number; SO_PEERCRED: number }>> = {
  x64: { SOL_SOCKET: 1, SO_PEERCRED: 17 },
  arm64: { SOL_SOCKET: 1, SO_PEERCRED: 17 },
  arm: { SOL_SOCKET: 1, SO_PEERCRED: 17 },
};

/** The constants for a platform and architecture, or undefined where we would have to guess. */
export function peercredConstants(platform: string, arch: string): { SOL_SOCKET: number; SO_PEERCRED: number } | undefined {
  return platform === 'linux' && Object.hasOwn(PEERCRED_CONSTANTS, arch) ? PEERCRED_CONSTANTS[arch] : undefined;
}

/** struct ucred { pid_t pid; uid_t uid; gid_t gid; } — 32-bit fields on every Linux architecture. */
const UCRED_SIZE = 12;

type GetPeerCred = (fd: number) => PeerResult;

let reader: GetPeerCred | { failure: string } | undefined;

/** Bind getsockopt once; a failure to bind is kept and reported on every connection. */
function peerCredReader(): GetPeerCred | { failure: string } {
  if (reader) return reader;
  const constants = peercredConstants(process.platform, process.arch);
  if (!constants) {
    reader = { failure: `SO_PEERCRED is not known for ${process.platform}/${process.arch}` };
    return reader;
  }
  try {
    const libc = koffi.load('libc.so.6');
    const ucred = koffi.struct({ pid: 'int32', uid: 'uint32', gid: 'uint32' });
    const getsockopt = libc.func('getsockopt', 'int', ['int', 'int', 'int', koffi.out(koffi.pointer(ucred)), koffi.inout(koffi.pointer('uint32'))]);
    reader = (fd: number): PeerResult => {
      const cred: { pid?: number; uid?: number } = {};
      const len = [UCRED_SIZE];
      const rc = getsockopt(fd, constants.SOL_SOCKET, constants.SO_PEERCRED, cred, len) as number;
      if (rc !== 0) return { failure: `getsockopt(SO_PEERCRED) failed: errno ${koffi.errno()}` };
      if (len[0] !== UCRED_SIZE || typeof cred.uid !== 'number' || typeof cred.pid !== 'number') return { failure: 'getsockopt(SO_PEERCRED) returned no credentials' };
      return { uid: cred.uid, pid: cred.pid };
    };
  } catch (err) {
    reader = { failure: `cannot call getsockopt through libc: ${(err as Error).message}` };
  }
  return reader;
}

/** The descriptor behind an accepted Node socket (Node keeps it in its libuv handle). */
function socketFd(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * The uid (and pid) of the process that connected, as the kernel recorded it at connect(2), or the
 * reason it cannot be known. Synchronous: it is one system call.
 */
export function verifyPeer(socket: Socket): PeerResult {
  const read = peerCredReader();
  if (typeof read !== 'function') return read;
  const fd = socketFd(socket);
  if (fd === undefined) return { failure: 'socket descriptor unknown' };
  try {
    return read(fd);
  } catch (err) {
    // Never let an FFI surprise take the daemon down with it: the peer is then merely unverified.
    return { failure: `getsockopt(SO_PEERCRED) threw: ${(err as Error).message}` };
  }
}

/** User name of a uid from /etc/passwd (undefined when it has none). */
export async function userName(uid: number, passwdFile = '/etc/passwd'): Promise<string | undefined> {
  try {
    for (const line of (await readFile(passwdFile, 'utf8')).split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && Number(f[2]) === uid && f[2] !== '') return f[0];
    }
  } catch {
    // No passwd file: the uid alone identifies the operator.
  }
  return undefined;
}

/** Group id of a group name from /etc/group. */
export async function groupId(name: string, groupFile = '/etc/group'): Promise<number | undefined> {
  for (const line of (await readFile(groupFile, 'utf8')).split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0] === name && /^\d+$/.test(f[2]!)) return Number(f[2]);
  }
  return undefined;
}

/**
 * The Operator for a connection the kernel identified, or undefined when it could not: then nobody is
 * named and the server refuses every state-changing command. Whatever the client claims is ignored.
 */
export async function identifyOperator(verified: PeerResult): Promise<Operator | undefined> {
  if (!('uid' in verified)) return undefined;
  const user = await userName(verified.uid);
  return { uid: verified.uid, ...(user !== undefined ? { user } : {}), verified: true };
}
