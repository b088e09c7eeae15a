// One authenticated SSH connection: the glue between ssh2's channels and the core. Every channel kind
// becomes an Action that core.authorize decides before anything reaches the target:
//   exec    → verb exec (argv parsed from the raw line; policy re-parses it), recorded output
//   shell   → verb shell, recorded input and output, pty honoured
//   sftp    → per file: download / upload with path, direction and size (sftp.ts)
//   -L      → a Modbus target: the Modbus broker's stream entry point (every request decided);
//             an SSH target's host: verb tunnel raw, on a port the target lists, byte counts journaled
// Agent forwarding, X11, remote forwarding (-R), stream-local forwarding and other subsystems are
// refused. While an approval is pending nothing else may start on the connection (new channels and
// requests are refused, raw tunnels are paused), so nothing flows unrecorded in the meantime.
import net from 'node:net';
import { posix } from 'node:path';
import type { Connection, PseudoTtyInfo, ServerChannel, TcpipRequestInfo, ClientChannel, SFTPWrapper } from 'ssh2';
import type { Core } from '../../core/core.ts';
import type { Session, SessionEnd } from '../../sessions/registry.ts';
import type { Action, Decision, SshObject } from '../../policy/types.ts';
import { parseCommandLine } from '../../policy/argv.ts';
import { explainRule } from '../../policy/decide.ts';
import { serveModbusStream, type ModbusRoute } from '../modbus/stream.ts';
import type { Authenticated } from './auth.ts';
import { Recording, type FinishedRecording } from './recording.ts';
import { sshTargetSchema, type SshListenerConfig, type SshTargetConfig } from './schema.ts';
import { connectUpstream, SAFE_TERMINAL_ENV, signalChannel, UpstreamError, type UpstreamConnection } from './upstream.ts';
import { SftpProxy } from './sftp.ts';
import { ClientBackpressure } from './flow.ts';

/** Exit status of a command Penstock refused (a shell's "cannot execute"). */
export const EXIT_REFUSED = 126;
/** Exit status when the target could not be reached (what ssh itself uses for connection errors). */
export const EXIT_UPSTREAM = 255;

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

export interface ConnectionOptions {
  listener: SshListenerConfig;
  recordingsDir: string;
  /** Where SFTP uploads wait for their decision. */
  spoolDir: string;
  remote: string;
  /** Where Penstock listens, for the hints in the listing. */
  port: number;
}

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
    client.on('session', (accept: () => SessionChannelEvents, reject: () => void) => this.#onSession(accept, reject));
    client.on('tcpip', (accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo) => void this.#onTunnel(accept, reject, info));
    client.on('openssh.streamlocal', (_accept: unknown, reject: () => void) => {
      this.#refused('streamlocal', 'Unix socket forwarding is not offered');
      reject();
    });
    client.on('request', (_accept: unknown, reject: Reject, name: string) => {
      this.#refused('global_request', `${name} (remote forwarding) is not offered`);
      reject?.();
    });
    client.on('close', () => this.#onClose());
    client.on('error', (err: Error) => this.#onWireError(err));
  }

  // ----------------------------------------------------------------- channel admission

  /** Refuse a new channel or request while an approval is pending, or past the channel limit. */
  #admit(kind: string): boolean {
    if (this.#closed || !this.session.active) return false;
    if (this.#pendingApprovals > 0) {
      this.#refused(kind, 'refused while an approval request is pending on this connection');
      return false;
    }
    if (this.#channels >= this.#opts.listener.max_channels) {
      this.#refused(kind, `more than ${this.#opts.listener.max_channels} channels at once`);
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
        this.#refused(kind, started ? 'a second program on one session channel' : 'refused while an approval request is pending on this connection');
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
        this.#refused('pty', 'the certificate does not permit a pty');
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
      this.#refused('env', 'environment variables from the client are not passed on', { names: envNames.slice(), count: envAsked });
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
      this.#refused('x11', 'X11 forwarding is not offered');
      reject?.();
    });
    ch.on('auth-agent', (_accept: Accept<void>, reject: Reject) => {
      this.#refused('auth_agent', 'agent forwarding is not offered');
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
    ch.on('exec', (accept: () => ServerChannel, reject: Reject, info: { command: string }) => {
      if (!startOnce('exec', reject)) return;
      void this.#exec(accept(), info.command, pty, attach).catch((err: unknown) => this.#bug(err));
    });
    ch.on('shell', (accept: () => ServerChannel, reject: Reject) => {
      if (!startOnce('shell', reject)) return;
      void this.#shell(accept(), pty, attach).catch((err: unknown) => this.#bug(err));
    });
    ch.on('sftp', (accept: () => never, reject: Reject) => {
      if (!startOnce('sftp', reject)) return;
      if (this.#forcedRefuses('sftp')) return reject?.();
      void this.#sftp(accept, reject).catch((err: unknown) => this.#bug(err));
    });
    ch.on('subsystem', (_accept: unknown, reject: Reject, info: { name: string }) => {
      if (this.#forcedRefuses('subsystem')) return reject?.();
      this.#refused('subsystem', `subsystem ${info.name} is not offered`);
      reject?.();
    });
  }

  // ----------------------------------------------------------------- exec and shell

  async #exec(stream: ServerChannel, requested: string, pty: PseudoTtyInfo | undefined, attach: (s: ClientChannel) => void): Promise<void> {
    this.#talk(stream, pty);
    const target = this.#who.user.target;
    if (!target) return this.#finish(stream, 0, this.#listing());
    // A certificate's force-command replaces whatever the client asked for (as OpenSSH does).
    const command = this.#who.forceCommand ?? requested;
    const parsed = parseCommandLine(command);
    if (!('error' in parsed) && isLegacyScp(parsed.argv)) {
      this.#refused('exec', 'legacy scp protocol (scp -O)');
      return this.#finish(stream, 1, '', 'penstock: the legacy scp protocol (scp -O) is refused; use scp without -O (it uses SFTP, which Penstock checks per file)\n');
    }
    const object: SshObject = {
      kind: 'ssh',
      channel: 'exec',
      commandLine: command,
      ...('error' in parsed ? {} : { argv: parsed.argv, metacharacters: parsed.metacharacters }),
    };
    // A terminal only where a rule says `pty: true`: on a terminal a pager or an editor is a shell.
    // Without such a rule the command still runs, without a terminal upstream. The client's pty
    // request was accepted already (it comes before the command): refusing it makes OpenSSH 9.2
    // close the channel under `ssh -tt` (measured), so the allowed command would not run at all.
    const ptyGranted = pty !== undefined && this.#core.explain(this.session.principal.id, { target, verb: 'exec', object: { ...object, pty: true } }).effect !== 'deny';
    const action: Action = { target, verb: 'exec', object: ptyGranted ? { ...object, pty: true } : object };
    const decision = await this.#authorize(action, stream);
    if (decision.effect !== 'allow') return this.#finish(stream, EXIT_REFUSED, '', refusalText(decision));
    if (pty && !ptyGranted && !stream.destroyed) stream.stderr.write(this.#nl(stream, 'penstock: running without a terminal (no rule grants this command one: pty: true)\n'));
    const upstreamPty = ptyGranted ? pty : undefined;
    await this.#run(stream, action, upstreamPty, { command }, attach, {
      refusedText: `penstock: target ${target} refused to run the command\n`,
      open: (up, cb) => up.client.exec(command, upstreamPty ? { pty: ptyOptions(upstreamPty), env: { ...SAFE_TERMINAL_ENV } } : {}, cb),
      // With a terminal, what is typed is evidence (a pager's `!`), so it is recorded.
      recordInput: upstreamPty !== undefined,
      interruptOnCtrlC: pty !== undefined && !ptyGranted,
      extra: this.#who.forceCommand !== undefined ? { requested } : {},
    });
  }

  async #shell(stream: ServerChannel, pty: PseudoTtyInfo | undefined, attach: (s: ClientChannel) => void): Promise<void> {
    this.#talk(stream, pty);
    const target = this.#who.user.target;
    if (!target) return this.#finish(stream, 0, this.#listing());
    if (this.#who.forceCommand !== undefined) return this.#exec(stream, this.#who.forceCommand, pty, attach);
    const action: Action = { target, verb: 'shell', object: { kind: 'ssh', channel: 'shell' } };
    const decision = await this.#authorize(action, stream);
    if (decision.effect !== 'allow') return this.#finish(stream, EXIT_REFUSED, '', refusalText(decision));
    await this.#run(stream, action, pty, { title: `${this.session.principal.id} shell on ${target}` }, attach, {
      refusedText: `penstock: target ${target} refused a shell\n`,
      open: (up, cb) => up.client.shell(pty ? ptyOptions(pty) : false, cb),
      recordInput: true,
      extra: {},
    });
  }

  /**
   * Run an allowed exec or shell on the target: connect, record, splice. The allowed action's outcome
   * is journaled exactly once, whatever happens: the program's exit, the target's refusal, or the
   * client or the session going before the program started (then nothing runs, and no recording stays).
   */
  async #run(
    stream: ServerChannel,
    action: Action,
    pty: PseudoTtyInfo | undefined,
    what: { command?: string; title?: string },
    attach: (s: ClientChannel) => void,
    how: { refusedText: string; open: (up: UpstreamConnection, cb: (err: Error | undefined, remote: ClientChannel) => void) => void; recordInput: boolean; interruptOnCtrlC?: boolean; extra: Record<string, unknown> },
  ): Promise<void> {
    let settled = false;
    let recording: Recording | undefined;
    const settle = (outcome: Record<string, unknown>) => {
      if (settled) return;
      settled = true;
      this.#closers.delete(abandon);
      void this.#core.recordOutcome(this.session, action, outcome);
    };
    const abandon = () => {
      recording?.discard();
      settle({ ok: false, started: false, error: 'the client or the session ended before the program started' });
    };
    if (this.#closed) return abandon();
    this.#closers.add(abandon);
    const up = await this.#connect(stream, settle);
    if (!up || settled) return;
    if (this.#closed || stream.destroyed) return abandon();
    recording = this.#record(pty, what);
    const rec = recording;
    const started = performance.now();
    how.open(up, (err, remote) => {
      if (settled || stream.destroyed) {
        // Gone while the target started it: stop it there, keep nothing.
        if (remote) {
          signalChannel(remote, 'KILL');
          remote.close();
        }
        rec.discard();
        return settle({ ok: false, started: !err, error: 'the client or the session ended before the program started' });
      }
      if (err) {
        rec.discard();
        settle({ ok: false, error: `${action.verb} request refused by target` });
        return this.#finish(stream, EXIT_UPSTREAM, '', how.refusedText);
      }
      this.#closers.delete(abandon); // from here the splice owns the outcome
      attach(remote);
      this.#splice(stream, remote, rec, how.recordInput, how.interruptOnCtrlC ?? false, (exit, bytes) => {
        const finished = rec.finish();
        settle({ ok: true, ...exit, ...bytes, duration_ms: Math.round(performance.now() - started), recording: recordingRef(finished), ...how.extra });
      });
    });
  }

  /** Join the client's channel and the target's, recording as data passes; exit status as the target gave it. */
  #splice(
    client: ServerChannel,
    remote: ClientChannel,
    recording: Recording,
    recordInput: boolean,
    interruptOnCtrlC: boolean,
    done: (exit: Record<string, unknown>, bytes: Record<string, number>) => void,
  ): void {
    const bytes = { stdin_bytes: 0, stdout_bytes: 0, stderr_bytes: 0 };
    let exit: Record<string, unknown> = {};
    const touch = () => {
      this.session.lastActivityMs = this.#core.clock.now();
    };
    client.on('data', (d: Buffer) => {
      bytes.stdin_bytes += d.length;
      this.session.counters.bytesIn += d.length;
      if (recordInput) recording.input(d);
      // The client's terminal is in raw mode and the target has none to turn ^C into SIGINT: do it here.
      if (interruptOnCtrlC && d.includes(0x03)) signalChannel(remote, 'INT');
      touch();
    });
    client.pipe(remote);
    remote.on('data', (d: Buffer) => {
      bytes.stdout_bytes += d.length;
      this.session.counters.bytesOut += d.length;
      recording.output(d);
      touch();
    });
    remote.stderr.on('data', (d: Buffer) => {
      bytes.stderr_bytes += d.length;
      this.session.counters.bytesOut += d.length;
      recording.output(d, 'stderr');
    });
    this.#toClient.forward(remote.stderr, client.stderr);
    this.#toClient.forward(remote, client);
    remote.on('exit', (code: number | null, signal?: string) => {
      exit = code !== null && code !== undefined ? { exit_code: code } : { signal: signal ?? 'unknown' };
    });
    let finished = false;
    const end = () => {
      if (finished) return;
      finished = true;
      done(exit, bytes);
      if (!client.destroyed) {
        if (typeof exit.exit_code === 'number') client.exit(exit.exit_code);
        else if (typeof exit.signal === 'string') client.exit(exit.signal, false, '');
        client.end();
      }
      this.#talkers.delete(client);
    };
    remote.on('close', end);
    client.on('close', () => {
      if (!finished) remote.close();
    });
  }

  // ----------------------------------------------------------------- sftp

  async #sftp(accept: () => never, reject: Reject): Promise<void> {
    const target = this.#who.user.target;
    if (!target) {
      this.#refused('sftp', 'no target in the user name');
      return reject?.();
    }
    // Accept at once: the client sends its INIT right behind the request. Requests wait for the
    // upstream SFTP channel inside the proxy.
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

  // ----------------------------------------------------------------- tunnels

  async #onTunnel(accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo): Promise<void> {
    if (!this.#admit('tunnel')) return reject();
    if (this.#who.extensions && !this.#who.extensions.has('permit-port-forwarding')) {
      this.#refused('tunnel', 'the certificate does not permit port forwarding');
      return reject();
    }
    const id = info.destIP;
    const target = this.#core.config().targets.get(id);
    if (!target) {
      this.#refused('tunnel', `-L destination ${id} is not a target (use -L PORT:TARGET_ID:PORT)`);
      return reject();
    }
    if (target.protocol === 'modbus') return this.#modbusTunnel(accept, reject, id);
    if (target.protocol === 'ssh') return this.#rawTunnel(accept, reject, id, info.destPort);
    this.#refused('tunnel', `tunnels to ${target.protocol} targets are not offered`);
    reject();
  }

  async #modbusTunnel(accept: () => ServerChannel, reject: () => void, target: string): Promise<void> {
    const action: Action = { target, verb: 'tunnel', object: { kind: 'ssh', channel: 'tunnel', tunnel: 'modbus' } };
    // The tunnel opens when a grant for the target is active; each request in it is then decided by
    // the target's Modbus rules. Without one, ask policy anyway so the refusal is decided and journaled.
    const now = this.#core.clock.now();
    const held = this.#core.grants.forPrincipal(this.session.principal.id).filter((g) => g.targets.includes(target) && this.#core.grants.isActive(g, now));
    if (held.length === 0) {
      await this.#core.authorize(this.session, action);
      return reject();
    }
    this.#channels++;
    const stream = accept();
    const routes: ModbusRoute[] = Array.from({ length: 256 }, (_, unit) => ({ unit, target, targetUnit: unit }));
    const opened = performance.now();
    void this.#core.recordOutcome(this.session, action, { tunnel: 'opened', grants: held.map((g) => g.id) });
    const handle = serveModbusStream(stream, this.session, this.#core, { routes });
    this.#closers.add(() => handle.close());
    void handle.done.then((reason) => {
      this.#channels--;
      void this.#core.recordOutcome(this.session, action, { tunnel: 'closed', reason, duration_ms: Math.round(performance.now() - opened) });
    });
  }

  async #rawTunnel(accept: () => ServerChannel, reject: () => void, targetId: string, port: number): Promise<void> {
    const target = this.#sshTarget(targetId);
    if (!target) return reject();
    const action: Action = { target: targetId, verb: 'tunnel', object: { kind: 'ssh', channel: 'tunnel', tunnel: 'raw' } };
    if (!target.tunnel_ports?.includes(port)) {
      this.#refused('tunnel', `port ${port} of ${targetId} is not in its tunnel_ports`);
      return reject();
    }
    const decision = await this.#authorize(action, undefined);
    if (decision.effect !== 'allow' || this.#closed) return reject();
    const socket = net.connect({ host: target.host, port });
    const counts = { bytes_to_target: 0, bytes_from_target: 0 };
    const opened = performance.now();
    let stream: ServerChannel | undefined;
    // An allowed tunnel that never opens still gets its outcome.
    const notOpened = (error: string) => void this.#core.recordOutcome(this.session, action, { tunnel: 'failed', port, error });
    socket.once('error', (err: Error) => {
      if (!stream) {
        reject();
        notOpened(`the target's port could not be reached (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      socket.destroy();
    });
    socket.once('connect', () => {
      if (this.#closed) {
        notOpened('the session ended before the tunnel opened');
        return socket.destroy();
      }
      this.#channels++;
      stream = accept();
      this.#rawTunnels.add(socket);
      if (this.#pendingApprovals > 0) socket.pause();
      stream.on('data', (d: Buffer) => {
        counts.bytes_to_target += d.length;
        this.session.counters.bytesIn += d.length;
      });
      socket.on('data', (d: Buffer) => {
        counts.bytes_from_target += d.length;
        this.session.counters.bytesOut += d.length;
      });
      stream.pipe(socket);
      this.#toClient.forward(socket, stream);
      const ch = stream;
      let done = false;
      const close = () => {
        if (done) return;
        done = true;
        this.#channels--;
        this.#rawTunnels.delete(socket);
        socket.destroy();
        ch.destroy();
        void this.#core.recordOutcome(this.session, action, { tunnel: 'closed', port, ...counts, duration_ms: Math.round(performance.now() - opened) });
      };
      stream.on('close', close);
      stream.on('error', close);
      socket.on('close', close);
    });
  }

  // ----------------------------------------------------------------- policy, with a person in the loop

  /**
   * core.authorize, telling the user when a person must approve, and holding the connection still
   * meanwhile: no new channels or requests, raw tunnels paused.
   */
  async #authorize(action: Action, notify: ServerChannel | undefined): Promise<Decision> {
    const preview = this.#core.explain(this.session.principal.id, action);
    if (preview.effect !== 'approve') return this.#core.authorize(this.session, action);
    this.#pendingApprovals++;
    for (const s of this.#rawTunnels) s.pause();
    try {
      const d = await this.#core.authorize(this.session, action, {
        // Said to the user once the request is journaled, with what staff type to approve it.
        onApprovalPending: (id) => {
          if (notify && !notify.destroyed) {
            notify.stderr.write(this.#nl(notify, `penstock: this needs approval by plant staff; waiting (request ${id}). Staff approve it with: penstockctl approvals approve ${id}\n`));
          }
        },
      });
      if (notify && d.effect === 'allow' && !notify.destroyed) notify.stderr.write(this.#nl(notify, 'penstock: approved; running\n'));
      return d;
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

  async #connect(stream: ServerChannel, settle: (outcome: Record<string, unknown>) => void): Promise<UpstreamConnection | undefined> {
    const target = this.#who.user.target!;
    try {
      return await this.#upstreamFor(target);
    } catch (err) {
      const failure = err instanceof UpstreamError ? err.failure : 'unreachable';
      this.#core.log.warn({ err, session: this.session.id, target }, 'ssh upstream failed');
      settle({ ok: false, upstream: failure, message: (err as Error).message });
      const say = failure === 'host_key_mismatch' ? `target ${target} presented a host key that is not pinned; refusing to connect` : `target ${target} could not be reached`;
      this.#finish(stream, EXIT_UPSTREAM, '', `penstock: ${say}\n`);
      return undefined;
    }
  }

  #record(pty: PseudoTtyInfo | undefined, what: { command?: string; title?: string }): Recording {
    return new Recording(
      this.#opts.recordingsDir,
      {
        width: pty?.cols || 80,
        height: pty?.rows || 24,
        timestamp: Math.floor(this.#core.clock.now() / 1000),
        ...(what.command !== undefined ? { command: what.command } : {}),
        title: what.title ?? `${this.session.principal.id}@${this.#who.user.target}: ${what.command ?? ''}`,
        env: { TERM: pty?.term ?? '', SHELL: '' },
      },
      this.#opts.listener.max_recording_mib * 1024 * 1024,
    );
  }

  // ----------------------------------------------------------------- listing

  #listing(): string {
    const core = this.#core;
    const p = this.session.principal;
    const now = core.clock.now();
    const config = core.config();
    const held = core.grants.forPrincipal(p.id);
    const lines = [`Penstock: you are ${p.id} (${p.kind}, ${p.owner}).`, ''];
    const active = held.filter((g) => core.grants.isActive(g, now));
    if (active.length === 0) lines.push('You hold no active grant now.');
    else {
      lines.push('Targets you may reach now:');
      for (const g of active) {
        for (const t of g.targets) {
          const target = config.targets.get(t);
          const how = target?.protocol === 'ssh' ? `ssh -p ${this.#opts.port} ${t}@GATEWAY 'COMMAND'` : target?.protocol === 'modbus' ? `ssh -N -L 1502:${t}:502 -p ${this.#opts.port} ${p.id}@GATEWAY` : '';
          lines.push(`  ${t.padEnd(16)} ${String(target?.protocol ?? '?').padEnd(7)} grant ${g.id} (ticket ${g.task.ticket})${g.window ? ` until ${g.window.to}` : ''}${how ? `\n      ${how}` : ''}`);
        }
        g.rules.forEach((r, i) => lines.push(`      rule ${g.id}#${i}: ${explainRule(r)}`));
      }
    }
    const inactive = held.filter((g) => !core.grants.isActive(g, now));
    if (inactive.length > 0) lines.push('', `Grants not active now: ${inactive.map((g) => g.id).join(', ')}`);
    return `${lines.join('\n')}\n`;
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
    this.#refused(kind, 'the certificate has a force-command, which binds every channel of this login');
    return true;
  }

  /** A refusal before policy (a channel kind or request the front door does not offer). */
  #refused(kind: string, reason: string, more: Record<string, unknown> = {}): void {
    const s = this.session;
    void this.#core.journal
      .append({ event: 'ssh.channel_refused', session: s.id, principal: s.principal.id, chain: s.chain, listener: s.listener, ...(s.target ? { target: s.target } : {}), detail: { kind, reason, ...more } })
      .catch((err: unknown) => this.#core.log.error({ err }, 'journal append failed (ssh.channel_refused)'));
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
    for (const c of this.#closers) c();
  }

  /**
   * ssh2 drops the connection on any packet over 35,000 bytes (a constant of its decoder, while sshd
   * takes 256 KiB), so an exec whose command line is longer never arrives as a request. The sending
   * direction still works when the decoder fails: tell each session channel still waiting for its
   * program why, as stderr and exit status 126, before the connection closes, and journal the refusal.
   */
  #onWireError(err: Error): void {
    if (!/^Bad packet length/.test(err.message)) return;
    this.#refused('oversize_request', `a request over ssh2's ${SSH2_MAX_PACKET}-byte packet limit (such as a command line over about 34 KB) was refused; the connection was closed`, { limit_bytes: SSH2_MAX_PACKET });
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

function ptyOptions(p: PseudoTtyInfo) {
  return { rows: p.rows, cols: p.cols, width: p.width, height: p.height, term: p.term, modes: p.modes };
}

function refusalText(d: Decision): string {
  const what = d.reason === 'approval_refused' ? 'not approved' : d.reason === 'journal_unavailable' ? 'refused (the gateway cannot record it)' : 'denied by policy';
  return `penstock: ${what} [${d.reason}]: ${d.explanation}\n`;
}

function recordingRef(r: FinishedRecording): Record<string, unknown> {
  return { sha256: r.sha256, bytes: r.bytes, path: r.path, ...(r.truncated ? { truncated: true, stream_bytes: r.streamBytes } : {}) };
}

/** `scp -t …` / `scp -f …`: the legacy scp protocol, which would move files unseen by the SFTP checks. */
function isLegacyScp(argv: readonly string[]): boolean {
  return posix.basename(argv[0] ?? '') === 'scp' && argv.slice(1).some((a) => /^-[a-zA-Z]*[tf]/.test(a));
}
