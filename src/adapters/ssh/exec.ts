// Programs on the target: exec and shell are one path. Each becomes an Action core.authorize decides;
// an allowed one runs on the target through the connection's upstream, recorded (asciicast), its
// outcome journaled exactly once. What differs between them is data (a ProgramPlan): the action, the
// terminal the target gets, what is recorded, how the target is asked to start it.
import { posix } from 'node:path';
import type { ClientChannel, PseudoTtyInfo, ServerChannel } from 'ssh2';
import { requireAuthorization, type Authorization } from '../../core/authorization.ts';
import type { Action } from '../../policy/types.ts';
import type { SshObject } from './rules.ts';
import { parseCommandLine } from './argv.ts';
import { EXIT_REFUSED, EXIT_UPSTREAM, type ProgramHost } from './host.ts';
import { refusalLine } from './refusals.ts';
import { listing } from './listings.ts';
import { Recording, type FinishedRecording } from './recording.ts';
import { SAFE_TERMINAL_ENV, signalChannel, UpstreamError, type UpstreamConnection } from './upstream.ts';

export type ProgramRequest = { kind: 'exec'; command: string } | { kind: 'shell' };

type Open = (up: UpstreamConnection, cb: (err: Error | undefined, remote: ClientChannel) => void) => void;

/** How one program is decided, started and recorded. */
interface ProgramPlan {
  action: Action;
  /** The terminal the target gets (and the recording's size), if any. */
  pty: PseudoTtyInfo | undefined;
  /** The recording's header: the command, or a title. */
  what: { command?: string; title?: string };
  open: Open;
  /** Said when the target refuses to start it. */
  refusedText: string;
  /** What is typed is recorded too (with a terminal it is evidence: a pager's `!`). */
  recordInput: boolean;
  /** ^C becomes SIGINT here: the client's terminal is raw and the target has none. */
  interruptOnCtrlC: boolean;
  /** Said on stderr once allowed, before it runs. */
  note?: string;
  /** More for the outcome. */
  extra: Record<string, unknown>;
}

/** Refused before policy: what is journaled and what the client is told. */
export interface Refused {
  refuse: 'legacy_scp';
  text: string;
}

/**
 * Decide and run a program on the login's target. `attach` learns the target's channel (for signals
 * and window changes). Without a target in the user name: the listing.
 */
export async function startProgram(host: ProgramHost, stream: ServerChannel, pty: PseudoTtyInfo | undefined, request: ProgramRequest, attach: (s: ClientChannel) => void): Promise<void> {
  host.talk(stream, pty);
  const target = host.who.user.target;
  if (!target) return host.finish(stream, 0, listing(host.core, host.session.principal, host.options.port));
  const plan = planProgram(host, target, pty, request);
  if ('refuse' in plan) {
    host.refused('exec', plan.refuse);
    return host.finish(stream, 1, '', plan.text);
  }
  const verdict = await host.authorize(plan.action, stream);
  if (!verdict.authorization) return host.finish(stream, EXIT_REFUSED, '', refusalLine(verdict.reason, verdict.explanation));
  if (plan.note && !stream.destroyed) stream.stderr.write(host.nl(stream, plan.note));
  await run(host, stream, verdict.authorization, plan, attach);
}

/**
 * The action object of an exec request for `command` — the one the front door decides, and the agent
 * tool (agent-exec.ts) too — or the refusal that comes before policy.
 */
export function execObject(command: string): SshObject | Refused {
  const parsed = parseCommandLine(command);
  if (!('error' in parsed) && isLegacyScp(parsed.argv)) {
    return { refuse: 'legacy_scp', text: 'penstock: the legacy scp protocol (scp -O) is refused; use scp without -O (it uses SFTP, which Penstock checks per file)\n' };
  }
  return {
    kind: 'ssh',
    channel: 'exec',
    commandLine: command,
    ...('error' in parsed ? {} : { argv: parsed.argv, metacharacters: parsed.metacharacters }),
  };
}

function planProgram(host: ProgramHost, target: string, pty: PseudoTtyInfo | undefined, request: ProgramRequest): ProgramPlan | Refused {
  const forced = host.who.forceCommand;
  // A certificate's force-command replaces whatever the client asked for, a shell included (as OpenSSH does).
  if (request.kind === 'shell' && forced === undefined) {
    return {
      action: { target, verb: 'shell', object: { kind: 'ssh', channel: 'shell' } },
      pty,
      what: { title: `${host.session.principal.id} shell on ${target}` },
      open: (up, cb) => up.client.shell(pty ? ptyOptions(pty) : false, cb),
      refusedText: `penstock: target ${target} refused a shell\n`,
      recordInput: true,
      interruptOnCtrlC: false,
      extra: {},
    };
  }
  const requested = request.kind === 'exec' ? request.command : forced!;
  const command = forced ?? requested;
  const object = execObject(command);
  if ('refuse' in object) return object;
  // A terminal only where a rule says `pty: true`: on a terminal a pager or an editor is a shell.
  // Without such a rule the command still runs, without a terminal upstream. The client's pty
  // request was accepted already (it comes before the command): refusing it makes OpenSSH 9.2
  // close the channel under `ssh -tt` (measured), so the allowed command would not run at all.
  const ptyGranted = pty !== undefined && host.core.explain(host.session.principal.id, { target, verb: 'exec', object: { ...object, pty: true } }).effect !== 'deny';
  const upstreamPty = ptyGranted ? pty : undefined;
  return {
    action: { target, verb: 'exec', object: ptyGranted ? { ...object, pty: true } : object },
    pty: upstreamPty,
    what: { command },
    open: (up, cb) => up.client.exec(command, upstreamPty ? { pty: ptyOptions(upstreamPty), env: { ...SAFE_TERMINAL_ENV } } : {}, cb),
    refusedText: `penstock: target ${target} refused to run the command\n`,
    recordInput: upstreamPty !== undefined,
    interruptOnCtrlC: pty !== undefined && !ptyGranted,
    ...(pty && !ptyGranted ? { note: 'penstock: running without a terminal (no rule grants this command one: pty: true)\n' } : {}),
    extra: forced !== undefined ? { requested } : {},
  };
}

/**
 * Run an allowed program on the target: connect, record, splice. The allowed action's outcome is
 * journaled exactly once, whatever happens: the program's exit, the target's refusal, or the client or
 * the session going before the program started (then nothing runs, and no recording stays).
 */
async function run(host: ProgramHost, stream: ServerChannel, auth: Authorization, plan: ProgramPlan, attach: (s: ClientChannel) => void): Promise<void> {
  const { core, session } = host;
  // The proof must be for this program on the login's target: the upstream below is that target's.
  const target = host.who.user.target!;
  requireAuthorization(auth, session.id, { target, verb: plan.action.verb });
  const action = auth.action;
  let settled = false;
  let recording: Recording | undefined;
  let cancelAbandon = () => {};
  const settle = (outcome: Record<string, unknown>) => {
    if (settled) return;
    settled = true;
    cancelAbandon();
    void core.recordOutcome(session, action, outcome);
  };
  const abandon = () => {
    recording?.discard();
    settle({ ok: false, started: false, error: 'the client or the session ended before the program started' });
  };
  if (host.closed) return abandon();
  cancelAbandon = host.onShutdown(abandon);
  const up = await connect(host, stream, target, settle);
  if (!up || settled) return;
  if (host.closed || stream.destroyed) return abandon();
  recording = record(host, plan);
  const rec = recording;
  const started = performance.now();
  plan.open(up, (err, remote) => {
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
      return host.finish(stream, EXIT_UPSTREAM, '', plan.refusedText);
    }
    cancelAbandon(); // from here the splice owns the outcome
    attach(remote);
    splice(host, stream, remote, rec, plan, (exit, bytes) => {
      const finished = rec.finish();
      settle({ ok: true, ...exit, ...bytes, duration_ms: Math.round(performance.now() - started), recording: recordingRef(finished), ...plan.extra });
    });
  });
}

async function connect(host: ProgramHost, stream: ServerChannel, target: string, settle: (outcome: Record<string, unknown>) => void): Promise<UpstreamConnection | undefined> {
  try {
    return await host.upstream(target);
  } catch (err) {
    const failure = err instanceof UpstreamError ? err.failure : 'unreachable';
    host.core.log.warn({ err, session: host.session.id, target }, 'ssh upstream failed');
    settle({ ok: false, upstream: failure, message: (err as Error).message });
    const say = failure === 'host_key_mismatch' ? `target ${target} presented a host key that is not pinned; refusing to connect` : `target ${target} could not be reached`;
    host.finish(stream, EXIT_UPSTREAM, '', `penstock: ${say}\n`);
    return undefined;
  }
}

function record(host: ProgramHost, plan: ProgramPlan): Recording {
  const { pty, what } = plan;
  return new Recording(
    host.options.recordingsDir,
    {
      width: pty?.cols || 80,
      height: pty?.rows || 24,
      timestamp: Math.floor(host.core.clock.now() / 1000),
      ...(what.command !== undefined ? { command: what.command } : {}),
      title: what.title ?? `${host.session.principal.id}@${host.who.user.target}: ${what.command ?? ''}`,
      env: { TERM: pty?.term ?? '', SHELL: '' },
    },
    host.options.listener.max_recording_mib * 1024 * 1024,
  );
}

/** Join the client's channel and the target's, recording as data passes; exit status as the target gave it. */
function splice(host: ProgramHost, client: ServerChannel, remote: ClientChannel, recording: Recording, plan: ProgramPlan, done: (exit: Record<string, unknown>, bytes: Record<string, number>) => void): void {
  const { session, core, toClient } = host;
  const bytes = { stdin_bytes: 0, stdout_bytes: 0, stderr_bytes: 0 };
  let exit: Record<string, unknown> = {};
  const touch = () => {
    session.lastActivityMs = core.clock.now();
  };
  client.on('data', (d: Buffer) => {
    bytes.stdin_bytes += d.length;
    session.counters.bytesIn += d.length;
    if (plan.recordInput) recording.input(d);
    if (plan.interruptOnCtrlC && d.includes(0x03)) signalChannel(remote, 'INT');
    touch();
  });
  client.pipe(remote);
  remote.on('data', (d: Buffer) => {
    bytes.stdout_bytes += d.length;
    session.counters.bytesOut += d.length;
    recording.output(d);
    touch();
  });
  remote.stderr.on('data', (d: Buffer) => {
    bytes.stderr_bytes += d.length;
    session.counters.bytesOut += d.length;
    recording.output(d, 'stderr');
  });
  toClient.forward(remote.stderr, client.stderr);
  toClient.forward(remote, client);
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
    host.untalk(client);
  };
  remote.on('close', end);
  client.on('close', () => {
    if (!finished) remote.close();
  });
}

function ptyOptions(p: PseudoTtyInfo) {
  return { rows: p.rows, cols: p.cols, width: p.width, height: p.height, term: p.term, modes: p.modes };
}

export function recordingRef(r: FinishedRecording): Record<string, unknown> {
  return { sha256: r.sha256, bytes: r.bytes, path: r.path, ...(r.truncated ? { truncated: true, stream_bytes: r.streamBytes } : {}) };
}

/** `scp -t …` / `scp -f …`: the legacy scp protocol, which would move files unseen by the SFTP checks. */
function isLegacyScp(argv: readonly string[]): boolean {
  return posix.basename(argv[0] ?? '') === 'scp' && argv.slice(1).some((a) => /^-[a-zA-Z]*[tf]/.test(a));
}
