// SFTP (and scp, which speaks SFTP in current OpenSSH) as a proxy: ssh2's server-side SFTP stream
// parses the client's requests; each allowed one is forwarded to the target's SFTP server over the
// upstream connection. Only the operations OpenSSH's sftp and scp use are offered (open, read, write,
// close, stat, lstat, fstat, setstat, fsetstat, opendir, readdir, realpath, mkdir, rmdir, remove,
// rename); anything else is answered "operation unsupported".
//
// Downloads read ahead, and the SHA-256 is taken over the bytes actually sent to the client, in file
// order (sftp-read-ahead.ts); each answer travels without intermediate copies (sftp-data.ts). Nothing
// is read from the target while the client's socket is full (flow.ts), so a client that asks and never
// reads costs bounded memory.
//
// Paths are decided where they lead on the target, never as written: each is made absolute (relative to
// the folder the client was told it starts in) and then resolved by the target itself (SFTP REALPATH
// upstream), so a symlink inside a granted folder that points outside is refused, and the operation is
// sent upstream with the resolved path. A path that does not exist yet is its resolved folder plus its
// name; something that exists but will not resolve (a link to nowhere) is refused. Operations on a
// name itself (lstat, mkdir, rmdir, remove, rename) resolve its folder only. REALPATH answers only
// with a path a grant covers; the client's start-up question (".") gets the login's home where a grant
// covers it, else "/", which tells nothing. Races: a link swapped in between the check and the
// operation is caught by resolving again after a download opens and before an upload is written; a
// swap and swap back inside that window is not (SFTP has no O_NOFOLLOW, nor inode numbers to compare).
//
// Decisions, per file and path:
//   download  OPEN for reading: the size is taken from the target and decided (rules may bound it)
//             before a byte flows; reads stop at that size. On CLOSE the SHA-256 and size of what was
//             sent are journaled (action.outcome).
//   upload    OPEN for writing is checked as a dry run; the data is spooled on the gateway (bounded),
//             and only on CLOSE, with the real size and SHA-256 known, is the upload decided and
//             journaled — then, and only then, the file is written to the target.
//   metadata  stat, opendir/readdir: `browse` where a rule allows download or upload of the path.
//   changes   mkdir, rmdir, remove, rename, setstat: `upload` of 0 bytes on each path touched.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { closeSync, createReadStream, fstatSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { Attributes, InputAttributes, SFTPWrapper, Stats } from 'ssh2';
import type { Core } from '../../core/core.ts';
import { requireAuthorization, type Authorization, type Verdict } from '../../core/authorization.ts';
import type { Session } from '../../sessions/registry.ts';
import type { Action, Decision } from '../../policy/types.ts';
import type { SshObject } from './rules.ts';
import { refusalLine, SFTP_PERMISSION_DENIED } from './refusals.ts';
import { windowFull, windowRoom, type ClientBackpressure } from './flow.ts';
import { AheadBudget, ByteBudget, InOrderHash, ReadAhead } from './sftp-read-ahead.ts';
import { readUpstream, sendData } from './sftp-data.ts';
import { advertiseLimits, answerLimits, LIMITS_EXTENSION, SFTP_MAX_READ_WRITE } from './sftp-limits.ts';

const STATUS = { OK: 0, EOF: 1, NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4, BAD_MESSAGE: 5, OP_UNSUPPORTED: 8 } as const;
const OPEN_WRITE = 0x02;
const OPEN_APPEND = 0x04;
/** Largest READ answered: what the client was told (OpenSSH then asks for 255 KiB; the SFTP draft allows servers to send less). */
const MAX_READ = SFTP_MAX_READ_WRITE;
/**
 * An upload's way to the target: 255 KiB WRITEs (ssh2 cuts them to what the target's limits allow), 8
 * in flight: 2 MiB, the upstream channel's window, from one 2 MiB buffer (64 × 32 KiB by default).
 */
const UPSTREAM_PUT = { chunkSize: SFTP_MAX_READ_WRITE, concurrency: 8 };
/**
 * Bytes of READ answers being fetched at once on one SFTP channel (OpenSSH keeps 64 READs of up to
 * 255 KiB in flight: 16 MiB); the rest wait, holding no data. Twice the client's usual 2 MiB window.
 */
const MAX_READ_BYTES_IN_FLIGHT = 4 * 1024 * 1024;

export interface SftpProxyOptions {
  core: Core;
  session: Session;
  target: string;
  server: SFTPWrapper;
  /** The target's SFTP channel; requests wait for it (the client starts talking before it is open). */
  remote: Promise<SFTPWrapper>;
  spoolDir: string;
  maxUploadBytes: number;
  authorize: (action: Action) => Promise<Verdict>;
  /** Backpressure of the client's socket: nothing is read from the target while it is full. */
  toClient: ClientBackpressure;
}

interface DirHandle {
  kind: 'dir';
  remote: Buffer;
  /** The browse of the folder that was allowed: every READDIR on it forwards under it. */
  auth: Authorization;
}
interface DownloadHandle {
  kind: 'download';
  remote: Buffer;
  path: string;
  auth: Authorization;
  size: number;
  reader: ReadAhead<SftpError>;
  hash: InOrderHash;
  sent: number;
  started: number;
}
interface UploadHandle {
  kind: 'upload';
  path: string;
  fd: number;
  spool: string;
  size: number;
  attrs: InputAttributes | undefined;
  started: number;
  /** A write was refused: the file is incomplete and is never sent. */
  failed: boolean;
  /**
   * SHA-256 of the spool taken as the writes come, while each starts where the last ended (as OpenSSH
   * sends them); any other write drops it, and the spool is hashed from disk at CLOSE instead.
   */
  appended: { hash: Hash; upTo: number } | undefined;
}
type Handle = DirHandle | DownloadHandle | UploadHandle;

export class SftpProxy {
  readonly #o: Omit<SftpProxyOptions, 'remote'> & { remote: SFTPWrapper };
  #remote: SFTPWrapper | undefined;
  readonly #handles = new Map<string, Handle>();
  #nextHandle = 1;
  #home: Promise<string> | undefined;
  #closed = false;
  readonly #aheadBudget = new AheadBudget();
  readonly #readBudget = new ByteBudget(MAX_READ_BYTES_IN_FLIGHT);

  constructor(options: SftpProxyOptions) {
    // `remote` is read through a getter that is only used after the promise resolved (see `on`).
    const self = this;
    const o = {
      ...options,
      get remote(): SFTPWrapper {
        return self.#remote!;
      },
    };
    this.#o = o;
    const s = o.server;
    const on = (event: string, fn: (reqid: number, ...args: never[]) => Promise<void>) => {
      s.on(event, (reqid: number, ...args: never[]) => {
        options.remote.then((r) => {
          this.#remote = r;
          if (this.#closed) return;
          return fn(reqid, ...args);
        }).catch((err: unknown) => {
          o.core.log.error({ err, session: o.session.id, op: event }, 'sftp request failed');
          this.#status(reqid, STATUS.FAILURE, 'internal error');
        });
      });
    };
    on('REALPATH', (id, path: string) => this.#realpath(id, path));
    on('STAT', (id, path: string) => this.#stat(id, path, 'stat'));
    on('LSTAT', (id, path: string) => this.#stat(id, path, 'lstat'));
    on('FSTAT', (id, handle: Buffer) => this.#fstat(id, handle));
    on('OPENDIR', (id, path: string) => this.#opendir(id, path));
    on('READDIR', (id, handle: Buffer) => this.#readdir(id, handle));
    on('OPEN', (id, path: string, flags: number, attrs: InputAttributes) => this.#open(id, path, flags, attrs));
    on('READ', (id, handle: Buffer, offset: number, length: number) => this.#read(id, handle, offset, length));
    on('WRITE', (id, handle: Buffer, offset: number, data: Buffer) => this.#write(id, handle, offset, data));
    on('FSETSTAT', (id, handle: Buffer, attrs: InputAttributes) => this.#fsetstat(id, handle, attrs));
    on('CLOSE', (id, handle: Buffer) => this.#close(id, handle));
    // setstat follows a link; the others act on the name itself.
    on('SETSTAT', (id, path: string, attrs: InputAttributes) => this.#change(id, [path], true, (up, p) => (cb) => up.setstat(p[0]!, attrs, cb)));
    on('MKDIR', (id, path: string, attrs: InputAttributes) => this.#change(id, [path], false, (up, p) => (cb) => up.mkdir(p[0]!, attrs, cb)));
    on('RMDIR', (id, path: string) => this.#change(id, [path], false, (up, p) => (cb) => up.rmdir(p[0]!, cb)));
    on('REMOVE', (id, path: string) => this.#change(id, [path], false, (up, p) => (cb) => up.unlink(p[0]!, cb)));
    on('RENAME', (id, from: string, to: string) => this.#change(id, [from, to], false, (up, p) => (cb) => up.rename(p[0]!, p[1]!, cb)));
    // Tell the client it may READ and WRITE 255 KiB at a time (sftp-limits.ts); no other extension.
    advertiseLimits(s);
    s.on('EXTENDED', (reqid: number, name: string) => {
      if (name !== LIMITS_EXTENSION || !answerLimits(s, reqid)) this.#status(reqid, STATUS.OP_UNSUPPORTED);
    });
    s.on('close', () => this.close());
    s.on('end', () => this.close()); // the client sent EOF: it is done
  }

  /** End the proxy: drop spooled uploads (never decided, never sent) and the upstream SFTP channel. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const h of this.#handles.values()) {
      if (h.kind === 'upload') dropSpool(h);
      // A download cut off (revoke, kill, the client gone) still gets its outcome: what was sent.
      if (h.kind === 'download') this.#downloaded(h, false);
    }
    this.#handles.clear();
    this.#remote?.end();
    try {
      // As sshd does when its sftp-server exits: exit status 0, then close (scp checks the status).
      const ch = this.#o.server as unknown as { outgoing?: { id: number; state: string }; _protocol?: { exitStatus(id: number, status: number): void } };
      if (ch.outgoing?.state === 'open') ch._protocol?.exitStatus(ch.outgoing.id, 0);
      this.#o.server.end();
    } catch {
      // already closed
    }
  }

  // ----------------------------------------------------------------- paths and decisions

  async #abs(path: string): Promise<string> {
    if (path.includes('\0')) throw new PathError('a path with a NUL byte');
    if (!path.startsWith('/')) return posix.resolve(await this.#homeDir(), path);
    return posix.resolve(path);
  }

  /** Where relative paths start, as the client is told: the login's home where a grant covers it, else `/`. */
  #homeDir(): Promise<string> {
    this.#home ??= call<string>((cb) => this.#o.remote.realpath('.', cb)).then(
      (real) => (typeof real === 'string' && real.startsWith('/') && this.#browsable(posix.normalize(real)) ? posix.normalize(real) : '/'),
      () => '/',
    );
    return this.#home;
  }

  /**
   * Where an absolute, normal path leads on the target, resolved by the target (SFTP REALPATH). With
   * `follow` false only the folder is resolved: the last name is the object itself (a link is not
   * followed). Undefined when the target cannot tell: a link to nowhere, a loop, an unsearchable folder.
   */
  async #onTarget(path: string, follow: boolean): Promise<string | undefined> {
    if (path === '/') return '/';
    if (!follow) {
      const folder = await this.#onTarget(posix.dirname(path), true);
      return folder === undefined ? undefined : posix.join(folder, posix.basename(path));
    }
    const r = this.#o.remote;
    const real = await call<string>((cb) => r.realpath(path, cb)).catch((e: unknown) => e as SftpError);
    if (!(real instanceof Error)) return typeof real === 'string' && real.startsWith('/') && !real.includes('\0') ? posix.normalize(real) : undefined;
    if (real.code !== STATUS.NO_SUCH_FILE) return undefined;
    // Nothing there yet: its folder's resolution plus its name. Something there that does not resolve
    // (a dangling link) is refused: creating through it would write wherever it points.
    const there = await call<Stats>((cb) => r.lstat(path, cb)).then(() => true, (e: unknown) => (e as SftpError).code !== STATUS.NO_SUCH_FILE);
    return there ? undefined : this.#onTarget(path, false);
  }

  #action(verb: Action['verb'], path: string, direction: 'download' | 'upload', bytes?: number): Action {
    const object: SshObject = { kind: 'ssh', channel: 'sftp', path, direction, ...(bytes !== undefined ? { bytes } : {}) };
    return { target: this.#o.target, verb, object };
  }

  /** The direction a metadata read of `path` is decided as: one a rule allows, if any (no decision journaled). */
  #browseDirection(path: string): 'download' | 'upload' | undefined {
    const { core, session } = this.#o;
    for (const dir of ['download', 'upload'] as const) if (core.explain(session.principal.id, this.#action('browse', path, dir, 0)).effect !== 'deny') return dir;
    return undefined;
  }

  #browsable(path: string): boolean {
    return this.#browseDirection(path) !== undefined;
  }

  /** Metadata reads: allowed where either direction is allowed on the path (aggregated as browse). */
  async #mayBrowse(path: string): Promise<Verdict> {
    return this.#o.authorize(this.#action('browse', path, this.#browseDirection(path) ?? 'download', 0));
  }

  /** The path as the target resolves it (see #onTarget), or undefined with the refusal already sent. */
  async #resolveOr(reqid: number, path: string, follow = true): Promise<Resolved | undefined> {
    let abs: string;
    try {
      abs = await this.#abs(path);
    } catch (err) {
      this.#status(reqid, STATUS.BAD_MESSAGE, err instanceof PathError ? err.message : 'bad path');
      return undefined;
    }
    const real = await this.#onTarget(abs, follow);
    if (real === undefined) {
      // Outside every grant as asked: the policy refusal (journaled). Inside: a target error, like ENOENT.
      if (!this.#allowed(reqid, await this.#mayBrowse(abs))) return undefined;
      this.#o.core.log.info({ session: this.#o.session.id, path: abs }, 'sftp path does not resolve on the target');
      this.#status(reqid, STATUS.PERMISSION_DENIED, `penstock: ${abs} cannot be resolved on the target (a link to nowhere, a loop or a folder that cannot be searched)`);
      return undefined;
    }
    return { path: real, asked: abs };
  }

  /** Whether `path` still leads where it did when it was decided (a link swapped in since is refused). */
  async #unchanged(path: string): Promise<boolean> {
    return (await this.#onTarget(path, true)) === path;
  }

  // ----------------------------------------------------------------- operations

  async #realpath(reqid: number, path: string): Promise<void> {
    // The client's start-up question: the home where a grant covers it, else "/" (see #homeDir).
    const start = path === '.' || path === '';
    const r = start ? { path: await this.#homeDir(), asked: '.' } : await this.#resolveOr(reqid, path);
    if (r === undefined) return;
    const p = r.path;
    // Anything else: where the path leads, as the target resolves it, told only where a grant covers it.
    if (!start && !this.#allowed(reqid, await this.#mayBrowse(p), r)) return;
    this.#o.server.name(reqid, [{ filename: p, longname: p, attrs: {} as Attributes }]);
  }

  async #stat(reqid: number, path: string, how: 'stat' | 'lstat'): Promise<void> {
    const r = await this.#resolveOr(reqid, path, how === 'stat');
    if (r === undefined) return;
    const p = r.path;
    const auth = this.#allowed(reqid, await this.#mayBrowse(p), r);
    if (!auth) return;
    const remote = this.#upstream(auth);
    const st = await call<Stats>((cb) => (how === 'stat' ? remote.stat(p, cb) : remote.lstat(p, cb))).catch((e: unknown) => e as SftpError);
    if (st instanceof Error) return this.#fail(reqid, st);
    this.#o.server.attrs(reqid, toAttrs(st));
  }

  async #fstat(reqid: number, handle: Buffer): Promise<void> {
    const h = this.#handles.get(handle.toString('hex'));
    if (!h) return this.#status(reqid, STATUS.FAILURE, 'no such handle');
    if (h.kind === 'upload') return this.#o.server.attrs(reqid, { mode: 0o100644, uid: 0, gid: 0, size: h.size, atime: 0, mtime: 0 } as Attributes);
    const st = await call<Stats>((cb) => this.#upstream(h.auth).fstat(h.remote, cb)).catch((e: unknown) => e as SftpError);
    if (st instanceof Error) return this.#fail(reqid, st);
    this.#o.server.attrs(reqid, toAttrs(st));
  }

  async #opendir(reqid: number, path: string): Promise<void> {
    const r = await this.#resolveOr(reqid, path);
    if (r === undefined) return;
    const p = r.path;
    const auth = this.#allowed(reqid, await this.#mayBrowse(p), r);
    if (!auth) return;
    const remote = await call<Buffer>((cb) => this.#upstream(auth).opendir(p, cb)).catch((e: unknown) => e as SftpError);
    if (remote instanceof Error) return this.#fail(reqid, remote);
    this.#o.server.handle(reqid, this.#store({ kind: 'dir', remote, auth }));
  }

  async #readdir(reqid: number, handle: Buffer): Promise<void> {
    const h = this.#handles.get(handle.toString('hex'));
    if (!h || h.kind !== 'dir') return this.#status(reqid, STATUS.FAILURE, 'no such handle');
    const list = await call<{ filename: string; longname: string; attrs: Attributes }[]>((cb) => this.#upstream(h.auth).readdir(h.remote, cb)).catch((e: unknown) => e as SftpError);
    if (list instanceof Error) return this.#fail(reqid, list);
    if (list.length === 0) return this.#status(reqid, STATUS.EOF);
    this.#o.server.name(reqid, list.map((e) => ({ filename: e.filename, longname: e.longname, attrs: toAttrs(e.attrs) })));
  }

  async #open(reqid: number, path: string, flags: number, _attrs: InputAttributes): Promise<void> {
    const r = await this.#resolveOr(reqid, path);
    if (r === undefined) return;
    const p = r.path;
    const { core, session, remote } = this.#o;
    if (flags & (OPEN_WRITE | OPEN_APPEND)) {
      // A dry run now (nothing journaled, nothing sent); the real decision comes with the size at CLOSE.
      const dry = this.#action('upload', p, 'upload', 0);
      if (core.explain(session.principal.id, dry).effect === 'deny') {
        const d = await this.#o.authorize(dry); // decided and journaled as the refusal it is
        if (!this.#allowed(reqid, d, r)) return;
      }
      mkdirSync(this.#o.spoolDir, { recursive: true, mode: 0o700 });
      const spool = join(this.#o.spoolDir, `up-${randomBytes(8).toString('hex')}`);
      const fd = openSync(spool, 'wx', 0o600);
      this.#o.server.handle(reqid, this.#store({ kind: 'upload', path: p, fd, spool, size: 0, attrs: undefined, started: performance.now(), failed: false, appended: { hash: createHash('sha256'), upTo: 0 } }));
      return;
    }
    // The size is asked first (a probe, see #upstream): a rule may bound it.
    const st = await call<Stats>((cb) => remote.stat(p, cb)).catch((e: unknown) => e as SftpError);
    if (st instanceof Error) {
      // Say nothing about the file's existence to someone who may not read it.
      const action = this.#action('download', p, 'download');
      if (!this.#allowed(reqid, await this.#o.authorize(action), r)) return;
      void core.recordOutcome(session, action, { ok: false, path: p, direction: 'download', error: sftpErrorCode(st) });
      return this.#fail(reqid, st);
    }
    const action = this.#action('download', p, 'download', st.size);
    const auth = this.#allowed(reqid, await this.#o.authorize(action), r);
    if (!auth) return;
    const up = this.#upstream(auth);
    const h = await call<Buffer>((cb) => up.open(p, 'r', cb)).catch((e: unknown) => e as SftpError);
    if (h instanceof Error || this.#closed) {
      void core.recordOutcome(session, action, { ok: false, path: p, direction: 'download', size: st.size, bytes_sent: 0, error: h instanceof Error ? sftpErrorCode(h) : 'session_ended' });
      return h instanceof Error ? this.#fail(reqid, h) : undefined;
    }
    if (!(await this.#unchanged(p))) {
      await call<void>((cb) => up.close(h, cb)).catch(() => {});
      void core.recordOutcome(session, action, { ok: false, path: p, direction: 'download', error: 'path_changed' });
      return this.#status(reqid, STATUS.PERMISSION_DENIED, `penstock: ${p} changed on the target while it was opened; nothing was read`);
    }
    const reader = new ReadAhead<SftpError>((offset, length) => this.#readRange(auth, h, offset, length), st.size, this.#aheadBudget);
    this.#o.server.handle(reqid, this.#store({ kind: 'download', remote: h, path: p, auth, size: st.size, reader, hash: new InOrderHash(), sent: 0, started: performance.now() }));
  }

  async #read(reqid: number, handle: Buffer, offset: number, length: number): Promise<void> {
    const bytes = Math.min(length, MAX_READ);
    await this.#readBudget.take(bytes);
    try {
      // Read from the target only when the client's socket has room: a client that asks and never reads stalls here.
      await this.#o.toClient.room();
      await this.#answerRead(reqid, handle, offset, length);
    } finally {
      this.#readBudget.give(bytes);
    }
  }

  async #answerRead(reqid: number, handle: Buffer, offset: number, length: number): Promise<void> {
    const key = handle.toString('hex');
    const h = this.#handles.get(key);
    if (!h || h.kind !== 'download') return this.#status(reqid, STATUS.FAILURE, 'no such handle');
    // Never more than was decided on: the size the file had when it was opened.
    if (offset >= h.size) return this.#status(reqid, STATUS.EOF);
    const data = await h.reader.read(offset, Math.min(length, MAX_READ));
    if (data instanceof Error) return this.#fail(reqid, data);
    if (data.length === 0) return this.#status(reqid, STATUS.EOF);
    // Sent only once ssh2 holds no earlier answer back for want of the client's SSH window (flow.ts):
    // meanwhile this one waits here, within the READ budget, and no more is read from the target.
    while (windowFull(this.#o.server)) await windowRoom(this.#o.server);
    if (this.#handles.get(key) !== h) return this.#status(reqid, STATUS.FAILURE, 'the handle was closed');
    h.hash.add(offset, data);
    h.sent += data.length;
    this.#o.session.counters.bytesOut += data.length;
    sendData(this.#o.server, reqid, data);
  }

  /** One READ upstream, for a download the core allowed. */
  #readRange(auth: Authorization, remote: Buffer, offset: number, len: number): Promise<Buffer | SftpError> {
    return readUpstream(this.#upstream(auth), remote, offset, len);
  }

  async #write(reqid: number, handle: Buffer, offset: number, data: Buffer): Promise<void> {
    const h = this.#handles.get(handle.toString('hex'));
    if (!h || h.kind !== 'upload') return this.#status(reqid, STATUS.FAILURE, 'no such handle');
    const end = offset + data.length;
    if (h.failed) return this.#status(reqid, STATUS.FAILURE, 'an earlier write to this file was refused');
    if (end > this.#o.maxUploadBytes) {
      h.failed = true;
      return this.#status(reqid, STATUS.FAILURE, `uploads through this gateway are limited to ${this.#o.maxUploadBytes} bytes`);
    }
    if (end > h.size && this.#o.core.explain(this.#o.session.principal.id, this.#action('upload', h.path, 'upload', end)).effect === 'deny') {
      h.failed = true;
      // Decided and journaled with the size it reached, so the refusal is on record.
      void this.#o.authorize(this.#action('upload', h.path, 'upload', end));
      return this.#status(reqid, STATUS.PERMISSION_DENIED, `${h.path}: ${end} bytes exceed what your grant allows`);
    }
    writeSync(h.fd, data, 0, data.length, offset);
    if (h.appended?.upTo === offset) {
      h.appended.hash.update(data);
      h.appended.upTo = end;
    } else h.appended = undefined;
    h.size = Math.max(h.size, end);
    this.#o.session.counters.bytesIn += data.length;
    this.#status(reqid, STATUS.OK);
  }

  async #fsetstat(reqid: number, handle: Buffer, attrs: InputAttributes): Promise<void> {
    const h = this.#handles.get(handle.toString('hex'));
    if (!h) return this.#status(reqid, STATUS.FAILURE, 'no such handle');
    if (h.kind !== 'upload') return this.#status(reqid, STATUS.PERMISSION_DENIED, 'only files being uploaded can be changed');
    // Applied on the target after the upload itself (times and mode, as `put -p` / `scp -p` send them).
    h.attrs = { ...h.attrs, ...attrs };
    this.#status(reqid, STATUS.OK);
  }

  async #close(reqid: number, handle: Buffer): Promise<void> {
    const key = handle.toString('hex');
    const h = this.#handles.get(key);
    if (!h) return this.#status(reqid, STATUS.FAILURE, 'no such handle');
    this.#handles.delete(key);
    const { core, session } = this.#o;
    if (h.kind === 'dir') {
      await call<void>((cb) => this.#upstream(h.auth).close(h.remote, cb)).catch(() => {});
      return this.#status(reqid, STATUS.OK);
    }
    if (h.kind === 'download') {
      h.reader.drop();
      await call<void>((cb) => this.#upstream(h.auth).close(h.remote, cb)).catch(() => {});
      this.#downloaded(h, true);
      return this.#status(reqid, STATUS.OK);
    }
    // Upload: decide with the real size; journaled before the file reaches the target.
    if (h.failed) {
      dropSpool(h);
      return this.#status(reqid, STATUS.FAILURE, 'the upload was refused and nothing was sent');
    }
    try {
      const size = fstatSync(h.fd).size;
      closeSync(h.fd);
      h.fd = -1;
      // Hashed on the way in when it was written front to back, else read back from the spool.
      const sha256 = h.appended?.upTo === size ? h.appended.hash.digest('hex') : await sha256File(h.spool);
      const action = this.#action('upload', h.path, 'upload', size);
      const auth = this.#allowed(reqid, await this.#o.authorize(action));
      if (!auth) return;
      if (!(await this.#unchanged(h.path))) {
        void core.recordOutcome(session, action, { ok: false, path: h.path, direction: 'upload', size, sha256, error: 'path_changed' });
        return this.#status(reqid, STATUS.PERMISSION_DENIED, `penstock: ${h.path} changed on the target since it was opened; nothing was written`);
      }
      const up = this.#upstream(auth);
      const sent = await call<void>((cb) => up.fastPut(h.spool, h.path, UPSTREAM_PUT, cb)).then(() => undefined, (e: unknown) => e as SftpError);
      if (sent === undefined && h.attrs) {
        const attrs = h.attrs;
        await call<void>((cb) => up.setstat(h.path, attrs, cb)).catch(() => {});
      }
      void core.recordOutcome(session, action, {
        ok: sent === undefined,
        path: h.path,
        direction: 'upload',
        size,
        sha256,
        duration_ms: Math.round(performance.now() - h.started),
        ...(sent ? { error: sftpErrorCode(sent) } : {}),
      });
      if (sent) return this.#fail(reqid, sent);
      this.#status(reqid, STATUS.OK);
    } finally {
      dropSpool(h);
    }
  }

  /** A download's outcome: the bytes sent and the SHA-256 of what the client got. */
  #downloaded(h: DownloadHandle, closedByClient: boolean): void {
    h.reader.drop();
    const complete = h.hash.hashing && h.hash.hashedUpTo === h.size;
    const prefix = h.hash.hashedUpTo;
    const digest = h.hash.digest();
    void this.#o.core.recordOutcome(this.#o.session, h.auth.action, {
      ok: closedByClient,
      path: h.path,
      direction: 'download',
      size: h.size,
      bytes_sent: h.sent,
      complete,
      ...(complete ? { sha256: digest } : { sha256_of_prefix: digest, prefix_bytes: prefix }),
      duration_ms: Math.round(performance.now() - h.started),
      ...(closedByClient ? {} : { error: 'the session ended before the client closed the file' }),
    });
  }

  /** mkdir, rmdir, remove, rename, setstat: each path touched is an upload of 0 bytes. */
  async #change(reqid: number, paths: string[], follow: boolean, op: (up: SFTPWrapper, abs: string[]) => (cb: (err: Error | null | undefined) => void) => void): Promise<void> {
    const resolved: Resolved[] = [];
    for (const p of paths) {
      const a = await this.#resolveOr(reqid, p, follow);
      if (a === undefined) return;
      resolved.push(a);
    }
    const abs = resolved.map((r) => r.path);
    const actions = abs.map((a) => this.#action('upload', a, 'upload', 0));
    const auths: Authorization[] = [];
    for (const [i, action] of actions.entries()) {
      const auth = this.#allowed(reqid, await this.#o.authorize(action), resolved[i]);
      if (!auth) return;
      auths.push(auth);
    }
    let up: SFTPWrapper | undefined;
    for (const auth of auths) up = this.#upstream(auth);
    const err = await call<void>((cb) => op(up!, abs)(cb)).then(() => undefined, (e: unknown) => e as SftpError);
    // Each allowed change gets its outcome, done or failed on the target.
    for (const [i, path] of abs.entries()) void this.#o.core.recordOutcome(this.#o.session, actions[i]!, { ok: !err, path, ...(err ? { error: sftpErrorCode(err) } : {}) });
    if (err) return this.#fail(reqid, err);
    this.#status(reqid, STATUS.OK);
  }

  // ----------------------------------------------------------------- answers

  #store(h: Handle): Buffer {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(this.#nextHandle++ >>> 0);
    this.#handles.set(b.toString('hex'), h);
    return b;
  }

  /** The proof to forward with, or undefined with the refusal sent. */
  #allowed(reqid: number, v: Verdict, r?: Resolved): Authorization | undefined {
    if (v.authorization) return v.authorization;
    this.#deny(reqid, v, r);
    return undefined;
  }

  /**
   * The target's SFTP channel, for an operation the core allowed. (Resolving a path, asking the size
   * of a file to decide on it and the home folder are asked without one: they only inform a decision,
   * and nothing they return reaches the client unless an allowed operation follows.)
   */
  #upstream(auth: Authorization): SFTPWrapper {
    requireAuthorization(auth, this.#o.session.id, { target: this.#o.target });
    return this.#o.remote;
  }

  /** The refusal as the client sees it: where a link led is in the journal, never in the answer. */
  #deny(reqid: number, d: Decision, r?: Resolved): void {
    const explanation = r && r.path !== r.asked ? d.explanation.split(r.path).join(`${r.asked} (where it leads on the target)`) : d.explanation;
    this.#status(reqid, SFTP_PERMISSION_DENIED, refusalLine(d.reason, explanation).trimEnd());
  }

  /** An error from the target: its status, with Penstock's own words for it (never the target's text). */
  #fail(reqid: number, err: SftpError): void {
    const status = targetStatus(err);
    this.#status(reqid, status, `penstock: the target answered ${STATUS_CODES[status]}`);
  }

  #status(reqid: number, code: number, message?: string): void {
    if (this.#closed) return;
    try {
      this.#o.server.status(reqid, code, message);
    } catch {
      // the client went away
    }
  }
}

type SftpError = Error & { code?: number | string };

/** SFTP status names, as the journal and Penstock's own answers say them (draft-ietf-secsh-filexfer-02). */
const STATUS_CODES: Readonly<Record<number, string>> = {
  [STATUS.OK]: 'ok',
  [STATUS.EOF]: 'eof',
  [STATUS.NO_SUCH_FILE]: 'no_such_file',
  [STATUS.PERMISSION_DENIED]: 'permission_denied',
  [STATUS.FAILURE]: 'failure',
  [STATUS.BAD_MESSAGE]: 'bad_message',
  6: 'no_connection',
  7: 'connection_lost',
  [STATUS.OP_UNSUPPORTED]: 'op_unsupported',
};

/** The status an error from the target maps to: its own when it is a known one, else FAILURE. */
export function targetStatus(err: { code?: number | string }): number {
  return typeof err.code === 'number' && err.code > 0 && err.code <= 8 ? err.code : STATUS.FAILURE;
}

/** The stable code an error from the target is journaled as (its message text is the target's, never kept). */
export function sftpErrorCode(err: { code?: number | string }): string {
  return `target_${STATUS_CODES[targetStatus(err)]}`;
}

class PathError extends Error {}

/** A path as the client asked for it (absolute, normal form) and where it leads on the target. */
interface Resolved {
  path: string;
  asked: string;
}

function call<T>(fn: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
}

function toAttrs(st: Partial<Attributes>): Attributes {
  return { mode: st.mode ?? 0, uid: st.uid ?? 0, gid: st.gid ?? 0, size: st.size ?? 0, atime: st.atime ?? 0, mtime: st.mtime ?? 0 } as Attributes;
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path).on('data', (d) => hash.update(d)).on('error', reject).on('end', () => resolve(hash.digest('hex')));
  });
}

function dropSpool(h: UploadHandle): void {
  if (h.fd >= 0) {
    closeSync(h.fd);
    h.fd = -1;
  }
  try {
    unlinkSync(h.spool);
  } catch {
    // already gone
  }
}
