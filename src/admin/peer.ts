// Who is on the other end of an admin connection. Node exposes no SO_PEERCRED, so we ask the kernel
// through a tiny child: perl (perl-base is Essential on Debian, always installed) inherits the accepted
// socket as fd 3 and reads getsockopt(SO_PEERCRED) — the uid the peer had when it connected, as the
// kernel recorded it, for any user and with no privilege (≈ 10 ms; admin requests are rare).
//
// Fallback when perl is missing: the way `ss` finds it — the accepted socket's inode (/proc/self/fd),
// the peer socket's inode (`ss -xpn`), the process holding it, and its uid from /proc/PID/status. That
// needs the right to read the peer's /proc/PID/fd (root, CAP_SYS_PTRACE or the same uid), so a daemon
// running as its own user falls back to the client's claim — marked verified: false — for anyone else.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import type { Socket } from 'node:net';
import type { Operator } from '../grants/types.ts';

const SS_CANDIDATES = ['/usr/bin/ss', '/usr/sbin/ss', '/bin/ss', '/sbin/ss'];
const SS_TIMEOUT_MS = 3000;
const SS_MAX_OUTPUT = 32 * 1024 * 1024;

export interface PeerClaim {
  uid: number;
  user?: string;
}

export interface UnixSocketEntry {
  /** Inode of this end of the connection. */
  inode: number;
  /** Inode of the other end (0 when not connected). */
  peer: number;
  /** Processes holding this end, as `ss -p` lists them. */
  users: { command: string; pid: number; fd: number }[];
}

/** Where a verified identification came from (for the log). */
export interface PeerIdentity {
  uid: number;
  pid: number;
}

/** The inode of the socket behind a Node socket, from its file descriptor; undefined if unknown. */
export async function socketInode(socket: Socket): Promise<number | undefined> {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    return parseSocketLink(await readlink(`/proc/self/fd/${fd}`));
  } catch {
    return undefined;
  }
}

function parseSocketLink(link: string): number | undefined {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : undefined;
}

/**
 * Parse `ss -xpn` output. A line: `u_str ESTAB 0 0 /run/x.sock 29278 * 29277 users:(("node",pid=8122,fd=5))`:
 * netid, state, queues, local address and its inode, peer address and its inode, then the holders. A
 * local address may be a path holding spaces, so the line is matched from both ends.
 */
export function parseSsUnix(output: string): Map<number, UnixSocketEntry> {
  const entries = new Map<number, UnixSocketEntry>();
  for (const line of output.split('\n')) {
    if (!line.startsWith('u_')) continue;
    const usersAt = line.indexOf('users:(');
    const head = (usersAt === -1 ? line : line.slice(0, usersAt)).trim();
    const m = /^u_\S+\s+\S+\s+\d+\s+\d+\s+.*?\s+(\d+)\s+\S+\s+(\d+)$/.exec(head);
    if (!m) continue;
    const inode = Number(m[1]);
    const peer = Number(m[2]);
    const users: UnixSocketEntry['users'] = [];
    if (usersAt !== -1) {
      for (const u of line.slice(usersAt).matchAll(/\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=(\d+)\)/g)) {
        users.push({ command: u[1]!, pid: Number(u[2]), fd: Number(u[3]) });
      }
    }
    entries.set(inode, { inode, peer, users });
  }
  return entries;
}

/** Effective uid of a process, from /proc/PID/status (`Uid: real effective saved fs`). */
export async function uidOfPid(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
    return m ? Number(m[2]) : undefined;
  } catch {
    return undefined;
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

function findSs(): string | undefined {
  return SS_CANDIDATES.find((p) => existsSync(p));
}

function runSs(ss: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(ss, ['-xpn'], { timeout: SS_TIMEOUT_MS, maxBuffer: SS_MAX_OUTPUT, encoding: 'utf8', env: { LC_ALL: 'C' } }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout);
    });
  });
}

/**
 * The uid of the process at the other end of an accepted admin connection, as the kernel knows it, or
 * undefined with the reason when it cannot be established. Every process holding the peer socket must
 * have the same uid (a socket passed between users is ambiguous, so it is not verified).
 */
export async function verifyPeer(socket: Socket): Promise<PeerIdentity | { failure: string }> {
  const cred = await peerCredentials(socket);
  if (!('failure' in cred)) return cred;
  const ss = findSs();
  if (!ss) return { failure: 'ss (iproute2) is not installed' };
  const inode = await socketInode(socket);
  if (inode === undefined) return { failure: 'socket inode unknown' };
  let table: Map<number, UnixSocketEntry>;
  try {
    table = parseSsUnix(await runSs(ss));
  } catch (err) {
    return { failure: `ss failed: ${(err as Error).message}` };
  }
  const ours = table.get(inode);
  if (!ours || ours.peer === 0) return { failure: 'connection not found in the socket table' };
  const peer = table.get(ours.peer);
  if (!peer || peer.users.length === 0) return { failure: 'the process holding the peer socket is not visible to this user' };
  let identity: PeerIdentity | undefined;
  for (const holder of peer.users) {
    const uid = await uidOfPid(holder.pid);
    if (uid === undefined) return { failure: `process ${holder.pid} went away` };
    if (identity && identity.uid !== uid) return { failure: 'the peer socket is shared by processes of different users' };
    identity ??= { uid, pid: holder.pid };
    // The pid could have been reused between ss and /proc/PID/status: the fd must still be the peer socket.
    let link: string;
    try {
      link = await readlink(`/proc/${holder.pid}/fd/${holder.fd}`);
    } catch {
      return { failure: `process ${holder.pid} went away` };
    }
    if (parseSocketLink(link) !== peer.inode) return { failure: `process ${holder.pid} no longer holds the peer socket` };
  }
  return identity!;
}

/**
 * The Operator for a connection: verified by the kernel when possible, else the client's claim (marked
 * unverified), else undefined (nobody can be named: state-changing commands are refused).
 */
export async function identifyOperator(verified: PeerIdentity | { failure: string }, claim: PeerClaim | undefined): Promise<Operator | undefined> {
  if ('uid' in verified) {
    const user = await userName(verified.uid);
    return { uid: verified.uid, ...(user !== undefined ? { user } : {}), verified: true };
  }
  if (!claim) return undefined;
  return { uid: claim.uid, ...(claim.user !== undefined ? { user: claim.user } : {}), verified: false };
}

const PERL_CANDIDATES = ['/usr/bin/perl', '/bin/perl'];
const PEERCRED_SCRIPT =
  'use Socket; open(my $s, "+<&=3") or exit 2; my $c = getsockopt($s, SOL_SOCKET, SO_PEERCRED) or exit 3; ' +
  'my ($pid, $uid) = unpack("iI", $c); print "$pid $uid\\n";';

/** SO_PEERCRED of an accepted unix socket, read by a perl child that inherits it as fd 3. */
export function peerCredentials(socket: Socket): Promise<PeerIdentity | { failure: string }> {
  const perl = PERL_CANDIDATES.find((p) => existsSync(p));
  if (!perl) return Promise.resolve({ failure: 'perl is not installed' });
  // Pass the raw descriptor, not the Socket: handing Node the Socket object makes it stop reading it.
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return Promise.resolve({ failure: 'socket descriptor unknown' });
  return new Promise((resolve) => {
    let out = '';
    let child;
    try {
      child = spawn(perl, ['-e', PEERCRED_SCRIPT], { stdio: ['ignore', 'pipe', 'ignore', fd], timeout: SS_TIMEOUT_MS, env: { LC_ALL: 'C' } });
    } catch (err) {
      resolve({ failure: `perl failed: ${(err as Error).message}` });
      return;
    }
    // Not 'close': that waits for every stdio stream, and fd 3 is the live admin connection itself.
    let exitCode: number | null | undefined;
    let ended = false;
    const settle = () => {
      if (exitCode === undefined || !ended) return;
      const m = /^(\d+) (\d+)$/.exec(out.trim());
      if (exitCode !== 0 || !m) resolve({ failure: `SO_PEERCRED not available (perl exit ${exitCode})` });
      else resolve({ pid: Number(m[1]), uid: Number(m[2]) });
    };
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => (out += d));
    child.stdout!.on('end', () => {
      ended = true;
      settle();
    });
    child.on('error', (err) => resolve({ failure: `perl failed: ${err.message}` }));
    child.on('exit', (code) => {
      exitCode = code;
      settle();
    });
  });
}
