// One authenticated SSH connection: the glue between ssh2's channels and the core. Every channel kind
// becomes an Action that core.authorize decides before anything reaches the target:
//   exec, shell → one path (exec.ts): the command or shell decided, run, recorded
//   sftp        → per file: download / upload with path, direction and size (sftp.ts)
//   -L          → a decided tunnel (tunnels.ts): raw bytes to an SSH target's listed port, or the
//                 target's own protocol served by its front door (every request decided)
// Agent forwarding, X11, remote forwarding (-R), stream-local forwarding and other subsystems are
// refused, each through the core's one refusal path with a stable reason (host.ts: ChannelRefusal).
// While an approval is pending nothing else may start on the connection (new channels and requests are
// refused, raw tunnels are paused), so nothing flows unrecorded in the meantime.
import type net from 'node:net';
import type { Connection, PseudoTtyInfo, ServerChannel, TcpipRequestInfo, ClientChannel, SFTPWrapper } from 'ssh2';
import type { Core, Verdict } from '../../core/core.ts';
import type { Session, SessionEnd } from '../../sessions/registry.ts';
import type { Action } from '../../policy/types.ts';
import type { Authenticated } from './auth.ts';
import { sshTargetSchema, type SshTargetConfig } from './schema.ts';
import { connectUpstream, signalChannel, UpstreamError, type UpstreamConnection } from './upstream.ts';
import { SftpProxy } from './sftp.ts';
import { ClientBackpressure } from './flow.ts';
import { EXIT_REFUSED, EXIT_UPSTREAM, type ChannelRefusal, type ConnectionOptions, type ProgramHost, type TunnelHost } from './host.ts';
import { startProgram, type ProgramRequest } from './exec.ts';
import { openTunnel } from './tunnels.ts';

/** ssh2's decoder refuses any incoming packet longer than this (lib/protocol/crypto.js MAX_PACKET_SIZE). */
const SSH2_MAX_PACKET = 35_000;
/** SSH_EXTENDED_DATA_STDERR. */
const STDERR = 1;

/** The parts of ssh2's server objects used to answer on a channel when the decoder has failed. */
interface SessionInternals {
  _chanInfo: { outgoing: { id: number; state: string } };
}
interface ProtocolInternals {
  channelExtData(chan: number, data: Buffer, type: number): void;
  exitStatus(chan: number, status: number): void;
  channelEOF(chan: number): void;
  channelClose(chan: number): void;
}

interface SessionChannelEvents {
  on(event: string, listener: (...args: never[]) => void): unknown;
}

type Accept<T> = (() => T) | undefined;
type Reject = (() => void) | undefined;

export class SshConnection {
  readonly session: Session;
  readonly #core: Core;
  readonly #client: Connection;
  readonly #who: Authenticated;
  readonly #opts: ConnectionOptions;
  #upstream: Promise<UpstreamConnection> | undefined;
  #channels = 0;
  #pendingApprovals = 0;
  readonly #rawTunnels = new Set<net.Socket>();
  /** Channels that can carry a goodbye message (exec and shell stderr). */
  readonly #talkers = new Set<ServerChannel>();
  readonly #closers = new Set<() => void>();
  readonly #ptyChannels = new WeakSet<ServerChannel>();
  /** Programs running on the target, so a kill can stop them there too (without a pty sshd would not). */
  readonly #running = new Set<ClientChannel>();
  #closed = false;
  /** Session channels that have not started a program yet, with whether the client asked for a pty. */
  readonly #idle = new Map<SessionInternals['_chanInfo'], () => boolean>();
  /** Everything sent toward the client waits while its socket is full (a huge window buys nothing). */
  readonly #toClient: ClientBackpressure;
  /** What exec.ts and tunnels.ts see of this connection. */
  readonly #host: ProgramHost & TunnelHost;

  constructor(core: Core, client: Connection, who: Authenticated, opts: ConnectionOptions) {
    this.#core = core;
    this.#client = client;
    this.#who = who;
    this.#opts = opts;
    this.#toClient = ClientBackpressure.of(client);
    const p = who.principal;
    this.session = core.sessions.open(
      {
        principal: p,
        chain: [p.id, ...(p.acting_for ? [p.acting_for] : [])],
        ...(who.user.target ? { target: who.user.target } : {}),
        listener: opts.listener.id,
        protocol: 'ssh',
        remote: opts.remote,
        attributes: who.attributes,
      },
      (end) => this.#terminate(end),
    );
    this.#host = this.#makeHost();
    client.on('session', (accept: () => SessionChannelEvents, reject: () => void) => this.#onSession(accept, reject));
    client.on('tcpip', (accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo) => void openTunnel(this.#host, accept, reject, info).catch((err: unknown) => this.#bug(err)));
    client.on('openssh.streamlocal', (_accept: unknown, reject: () => void) => {
      this.#refused('streamlocal', 'streamlocal_not_offered');
      reject();
    });
    client.on('request', (_accept: unknown, reject: Reject, name: string) => {
      this.#refused('global_request', 'remote_forwarding_not_offered', { request: String(name).slice(0, 64) });
      reject?.();
    });
    client.on('close', () => this.#onClose());
    client.on('error', (err: Error) => this.#onWireError(err));
  }

  #makeHost(): ProgramHost & TunnelHost {
    const self = this;
    return {
      session: this.session,
      core: this.#core,
      who: this.#who,
      options: this.#opts,
      toClient: this.#toClient,
      get closed() {
        return self.#closed;
      },
      authorize: (action, notify) => this.#authorize(action, notify),
      refused: (kind, reason, more) => this.#refused(kind, reason, more),
      onShutdown: (fn) => {
        this.#closers.add(fn);
        return () => this.#closers.delete(fn);
      },
      channelOpened: () => void this.#channels++,
      channelClosed: () => void this.#channels--,
      upstream: (target) => this.#upstreamFor(target),
      nl: (stream, text) => this.#nl(stream, text),
      talk: (stream, pty) => this.#talk(stream, pty),
      untalk: (stream) => void this.#talkers.delete(stream),
      finish: (stream, code, out, err) => this.#finish(stream, code, out, err),
      admit: (kind) => this.#admit(kind),
      sshTarget: (id) => this.#sshTarget(id),
      holdRaw: (socket) => {
        this.#rawTunnels.add(socket);
        if (this.#pendingApprovals > 0) socket.pause();
        return () => void this.#rawTunnels.delete(socket);
      },
    };
  }

  // ----------------------------------------------------------------- channel admission

  /** Refuse a new channel or request while an approval is pending, or past the channel limit. */
  #admit(kind: string): boolean {
    if (this.#closed || !this.session.active) return false;
    if (this.#pendingApprovals > 0) {
      this.#refused(kind, 'approval_pending');
      return false;
    }
    if (this.#channels >= this.#opts.listener.max_channels) {
      this.#refused(kind, 'channel_limit', { limit: this.#opts.listener.max_channels });
      return false;
    }
    return true;
  }

  #onSession(accept: () => SessionChannelEvents, reject: () => void): void {
    if (!this.#admit('session')) return reject();
    this.#channels++;
    const ch = accept();
    let pty: PseudoTtyInfo | undefined;
    let started = false;
    const chanInfo = (ch as unknown as SessionInternals)._chanInfo;
    this.#idle.set(chanInfo, () => pty !== undefined);
    ch.on('close', () => this.#idle.delete(chanInfo));
    let upstreamStream: ClientChannel | undefined;
    const startOnce = (kind: string, reject: Reject): boolean => {
      journalEnv();
      if (started || this.#pendingApprovals > 0 || this.#closed) {
        this.#refused(kind, started ? 'second_program' : 'approval_pending');
        reject?.();
        return false;
      }
      started = true;
      this.#idle.delete(chanInfo);
      return true;
    };
    ch.on('close', () => this.#channels--);
    ch.on('pty', (accept: Accept<void>, reject: Reject, info: PseudoTtyInfo) => {
      if (this.#who.extensions && !this.#who.extensions.has('permit-pty')) {
        this.#refused('pty', 'certificate_forbids_pty');
        return reject?.();
      }
      pty = info;
      accept?.();
    });
    ch.on('window-change', (accept: Accept<void>, _reject: Reject, info: { cols: number; rows: number; width: number; height: number }) => {
      if (pty) pty = { ...pty, cols: info.cols, rows: info.rows, width: info.width, height: info.height };
      upstreamStream?.setWindow(info.rows, info.cols, info.height, info.width);
      accept?.();
    });
    // SendEnv/SetEnv: refused (the target's environment is Penstock's to set), and journaled once per
    // channel with the names asked for, so a client sending many is one event, not many.
    const envNames: string[] = [];
    let envAsked = 0;
    const journalEnv = () => {
      if (envAsked === 0) return;
      this.#refused('env', 'env_not_passed', { names: envNames.slice(), count: envAsked });
      envAsked = 0;
      envNames.length = 0;
    };
    ch.on('env', (_accept: Accept<void>, reject: Reject, info: { key: string }) => {
      envAsked++;
      if (envNames.length < 32) envNames.push(String(info.key).slice(0, 64));
      reject?.();
    });
    ch.on('close', journalEnv);
    ch.on('x11', (_accept: Accept<void>, reject: Reject) => {
      this.#refused('x11', 'x11_not_offered');
      reject?.();
    });
    ch.on('auth-agent', (_accept: Accept<void>, reject: Reject) => {
      this.#refused('auth_agent', 'agent_forwarding_not_offered');
      reject?.();
    });
    ch.on('signal', (accept: Accept<void>, _reject: Reject, info: { name: string }) => {
      if (upstreamStream) signalChannel(upstreamStream, info.name);
      accept?.();
    });
    const attach = (s: ClientChannel) => {
      upstreamStream = s;
      this.#running.add(s);
      s.once('close', () => this.#running.delete(s));
    };
    const program = (request: ProgramRequest) => (accept: () => ServerChannel, reject: Reject) => {
      if (!startOnce(request.kind, reject)) return;
      void startProgram(this.#host, accept(), pty, request, attach).catch((err: unknown) => this.#bug(err));
    };
    ch.on('exec', (accept: () => ServerChannel, reject: Reject, info: { command: string }) => program({ kind: 'exec', command: info.command })(accept, reject));
    ch.on('shell', program({ kind: 'shell' }));
    ch.on('sftp', (accept: () => never, reject: Reject) => {
      if (!startOnce('sftp', reject)) return;
      if (this.#forcedRefuses('sftp')) return reject?.();
      void this.#sftp(accept, reject).catch((err: unknown) => this.#bug(err));
    });
    ch.on('subsystem', (_accept: unknown, reject: Reject, info: { name: string }) => {
      if (this.#forcedRefuses('subsystem')) return reject?.();
      this.#refused('subsystem', 'subsystem_not_offered', { name: String(info.name).slice(0, 64) });
      reject?.();
    });
  }

  // ----------------------------------------------------------------- sftp

  async #sftp(accept: () => never, reject: Reject): Promise<void> {
    const target = this.#who.user.target;
    if (!target) {
      this.#refused('sftp', 'no_target');
      return reject?.();
    }
    // Accept at once: the client sends its INIT right behind the request. Requests wait for the
    // upstream SFTP channel inside the proxy, and each is forwarded only under its own Authorization.
    const server = accept() as unknown as SFTPWrapper;
    const remote = this.#upstreamFor(target).then(
      (up) => new Promise<SFTPWrapper>((resolve, fail) => up.client.sftp((err, sftp) => (err ? fail(err) : resolve(sftp)))),
    );
    remote.catch((err: unknown) => {
      this.#core.log.warn({ err, session: this.session.id }, 'ssh upstream failed for sftp');
      server.end();
    });
    const proxy = new SftpProxy({
      core: this.#core,
      session: this.session,
      target,
      server,
      remote,
      spoolDir: this.#opts.spoolDir,
      maxUploadBytes: this.#opts.listener.max_upload_mib * 1024 * 1024,
      authorize: (action) => this.#authorize(action, undefined),
      toClient: this.#toClient,
    });
    this.#closers.add(() => proxy.close());
  }

  // ----------------------------------------------------------------- policy, with a person in the loop

  /**
   * core.authorize, telling the user when a person must approve, and holding the connection still
   * meanwhile: no new channels or requests, raw tunnels paused.
   */
  async #authorize(action: Action, notify: ServerChannel | undefined): Promise<Verdict> {
    const preview = this.#core.explain(this.session.principal.id, action);
    if (preview.effect !== 'approve') return this.#core.authorize(this.session, action);
    this.#pendingApprovals++;
    for (const s of this.#rawTunnels) s.pause();
    try {
      const v = await this.#core.authorize(this.session, action, {
        // Said to the user once the request is journaled, with what staff type to approve it.
        onApprovalPending: (id) => {
          if (notify && !notify.destroyed) {
            notify.stderr.write(this.#nl(notify, `penstock: this needs approval by plant staff; waiting (request ${id}). Staff approve it with: penstockctl approvals approve ${id}\n`));
          }
        },
      });
      if (notify && v.authorization && !notify.destroyed) notify.stderr.write(this.#nl(notify, 'penstock: approved; running\n'));
      return v;
    } finally {
      this.#pendingApprovals--;
      if (this.#pendingApprovals === 0) for (const s of this.#rawTunnels) s.resume();
    }
  }

  // ----------------------------------------------------------------- upstream

  #sshTarget(id: string): SshTargetConfig | undefined {
    const raw = this.#core.config().targets.get(id);
    const r = raw ? sshTargetSchema.safeParse(raw) : undefined;
    return r?.success ? r.data : undefined;
  }

  #upstreamFor(targetId: string): Promise<UpstreamConnection> {
    if (!this.#upstream) {
      const target = this.#sshTarget(targetId);
      if (!target) return Promise.reject(new UpstreamError('unreachable', `${targetId} is not an ssh target`));
      this.#upstream = connectUpstream(this.#core, target);
      this.#upstream.then(
        (u) => {
          if (this.#closed) u.end();
          u.client.on('close', () => {
            this.#upstream = undefined;
          });
        },
        () => {
          this.#upstream = undefined;
        },
      );
    }
    return this.#upstream;
  }

  // ----------------------------------------------------------------- endings

  /** A terminal in raw mode (the client asked for a pty) needs CR LF; a pipe wants plain LF. */
  #nl(stream: ServerChannel, text: string): string {
    return this.#ptyChannels.has(stream) ? text.replace(/\n/g, '\r\n') : text;
  }

  #talk(stream: ServerChannel, pty?: PseudoTtyInfo): void {
    if (pty) this.#ptyChannels.add(stream);
    this.#talkers.add(stream);
    stream.on('close', () => this.#talkers.delete(stream));
  }

  #finish(stream: ServerChannel, code: number, out: string, err = ''): void {
    this.#talkers.delete(stream);
    if (stream.destroyed) return;
    if (out) stream.write(this.#nl(stream, out));
    if (err) stream.stderr.write(this.#nl(stream, err));
    stream.exit(code);
    stream.end();
  }

  /**
   * A certificate's force-command binds every channel of the login: exec and shell run the forced
   * command (policy still decides it); a subsystem (sftp included) is refused, as it cannot run it.
   */
  #forcedRefuses(kind: string): boolean {
    if (this.#who.forceCommand === undefined) return false;
    this.#refused(kind, 'force_command_binds');
    return true;
  }

  /** A refusal before policy (a channel kind or request the front door does not offer): the core journals it. */
  #refused(kind: string, reason: ChannelRefusal, more: Record<string, unknown> = {}): void {
    void this.#core.recordRefusal({
      event: 'ssh.channel_refused',
      listener: this.session.listener,
      remote: this.#opts.remote,
      session: this.session,
      detail: { protocol: 'ssh', reason, kind, ...more },
    });
  }

  /** Kill, grant expiry or revocation: tell the user, then cut the target and the client at once. */
  #terminate(end: SessionEnd): void {
    const why = `${end.reason.replace(/_/g, ' ')}${end.detail ? `: ${end.detail}` : ''}`;
    const closing: Promise<void>[] = [];
    for (const ch of this.#talkers) {
      try {
        closing.push(new Promise((resolve) => ch.once('close', () => resolve())));
        ch.stderr.write(this.#nl(ch, `\npenstock: session ended by the gateway (${why})\n`));
        ch.exit(EXIT_UPSTREAM);
        ch.end(); // EOF and close after the goodbye, so the client prints it and exits on its own
      } catch {
        // channel already gone
      }
    }
    this.#shutdown();
    // Disconnect once the goodbyes are closed (OpenSSH drops unprinted channel output on a
    // disconnect), or shortly after: a client that does not answer does not hold the connection.
    const sock = (this.#client as unknown as { _sock?: net.Socket })._sock;
    const disconnect = setTimeout(() => this.#client.end(), 250);
    disconnect.unref();
    void Promise.all(closing).then(() => {
      clearTimeout(disconnect);
      this.#client.end();
    });
    // A client that stops reading must not keep the socket: destroy it shortly after the goodbye.
    setTimeout(() => sock?.destroy(), 1000).unref();
  }

  #shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    // SIGKILL while the channel is open (also after the client's EOF), then close it: sshd kills the
    // session's process group on the signal request, and a command without a pty sees nothing else.
    for (const s of this.#running) {
      signalChannel(s, 'KILL');
      s.close();
    }
    void this.#upstream?.then((u) => u.end(), () => {});
    for (const s of this.#rawTunnels) s.destroy();
    for (const c of [...this.#closers]) c();
  }

  /**
   * ssh2 drops the connection on any packet over 35,000 bytes (a constant of its decoder, while sshd
   * takes 256 KiB), so an exec whose command line is longer never arrives as a request. The sending
   * direction still works when the decoder fails: tell each session channel still waiting for its
   * program why, as stderr and exit status 126, before the connection closes, and journal the refusal.
   */
  #onWireError(err: Error): void {
    if (!/^Bad packet length/.test(err.message)) return;
    this.#refused('oversize_request', 'oversize_request', { limit_bytes: SSH2_MAX_PACKET });
    const proto = (this.#client as unknown as { _protocol?: ProtocolInternals })._protocol;
    if (!proto) return;
    for (const [info, hasPty] of this.#idle) {
      if (info.outgoing.state !== 'open') continue;
      const text = `penstock: request refused: larger than the gateway's ${SSH2_MAX_PACKET}-byte packet limit (keep command lines under about 34 KB)\n`;
      try {
        proto.channelExtData(info.outgoing.id, Buffer.from(hasPty() ? text.replace(/\n/g, '\r\n') : text), STDERR);
        proto.exitStatus(info.outgoing.id, EXIT_REFUSED);
        proto.channelEOF(info.outgoing.id);
        proto.channelClose(info.outgoing.id);
      } catch {
        // the socket is already gone
      }
    }
    this.#idle.clear();
  }

  #onClose(): void {
    this.#shutdown();
    this.session.close();
  }

  #bug(err: unknown): void {
    this.#core.log.error({ err, session: this.session.id }, 'ssh channel handler failed');
    this.#terminate({ reason: 'closed', detail: 'internal error' });
  }
}
