// `ssh_exec` (agent-tools.ts) run: the agent's argv becomes the command line that makes the target's
// shell run exactly that argv, then the exec action the front door builds for that line (exec.ts:
// execObject), decided through the call. An allowed one runs on the target over an upstream connection
// of its own (Penstock's credential from the vault, the pinned host key: upstream.ts), without a
// terminal, recorded like a front-door exec; its output comes back bounded, its outcome journaled once.
// On the time-out, or when the call is aborted, the program is killed on the target: SIGKILL over the
// channel while it is open, then the channel closed (without a pty sshd stops a command on nothing else).
import { join } from 'node:path';
import type { ClientChannel } from 'ssh2';
import { requireAuthorization, type Authorization } from '../../core/authorization.ts';
import type { AgentCall, AgentToolResult } from '../types.ts';
import { SSH_EXEC, SSH_EXEC_LIMITS, sshExecInput, type SshExecArgs, type SshExecResult } from './agent-tools.ts';
import { commandLineOf } from './argv.ts';
import { execObject, recordingRef } from './exec.ts';
import { Recording } from './recording.ts';
import type { SshObject } from './rules.ts';
import { sshTargetSchema, type SshTargetConfig } from './schema.ts';
import { connectUpstream, signalChannel, UpstreamError, type UpstreamConnection } from './upstream.ts';

/** How long a killed program's channel may take to close before the connection is dropped under it. */
const CLOSE_GRACE_MS = 5000;
/** A recording of an agent's program stops taking content beyond this (the listener default). */
const MAX_RECORDING_BYTES = 64 * 1024 * 1024;

type Failure = Extract<AgentToolResult, { error: unknown }>;
const failure = (code: string, message: string, detail?: Record<string, unknown>): Failure => ({ ok: false, error: { code, message, ...(detail ? { detail } : {}) } });

export async function callSshAgentTool(name: string, args: Record<string, unknown>, call: AgentCall): Promise<AgentToolResult> {
  if (name !== SSH_EXEC) return failure('unknown_tool', `the ssh protocol offers no tool ${JSON.stringify(name)}`);
  // Checked again here (the agents' door validated already): a caller that did not cannot reach a target.
  const parsed = sshExecInput.safeParse(args);
  if (!parsed.success) {
    const where = parsed.error.issues.map((i) => `${i.path.join('.') || 'arguments'}: ${i.message}`).join('; ');
    return failure('invalid_arguments', where);
  }
  const a = parsed.data;
  const target = sshTarget(call, a.target);
  if ('error' in target) return target;
  const commandLine = commandLineOf(a.argv);
  if (commandLine.length > SSH_EXEC_LIMITS.commandLineChars) {
    return failure('argv_too_long', `the quoted command line would be ${commandLine.length} characters; at most ${SSH_EXEC_LIMITS.commandLineChars}`);
  }
  const object = execObject(commandLine);
  if ('refuse' in object) {
    void call.core.recordRefusal({ event: 'ssh.channel_refused', listener: call.session.listener, remote: call.session.remote, session: call.session, detail: { protocol: 'ssh', reason: object.refuse, kind: 'exec' } });
    return failure(object.refuse, object.text.trim());
  }
  // What policy and the target's shell will see must be the agent's words and nothing more.
  if (object.metacharacters !== false || !sameWords(object.argv ?? [], a.argv)) return failure('argv_not_representable', 'the argv cannot be said as a command line');
  const verdict = await call.authorize({ target: target.id, verb: 'exec', object });
  if (!verdict.authorization) return { ok: false, refused: verdict };
  return runOnTarget(call, verdict.authorization, target, a);
}

function sshTarget(call: AgentCall, id: string): SshTargetConfig | Failure {
  const raw = call.core.config().targets.get(id);
  if (!raw) return failure('unknown_target', `no target ${JSON.stringify(id)}`);
  if (raw.protocol !== 'ssh') return failure('not_an_ssh_target', `target ${id} speaks ${raw.protocol}, not ssh`);
  const parsed = sshTargetSchema.safeParse(raw);
  return parsed.success ? parsed.data : failure('not_an_ssh_target', `target ${id} is not a usable ssh target`);
}

function sameWords(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((w, i) => w === b[i]);
}

/** Connect, run, collect: the outcome of the allowed action is journaled exactly once, before the answer. */
async function runOnTarget(call: AgentCall, auth: Authorization, target: SshTargetConfig, a: SshExecArgs): Promise<AgentToolResult> {
  const { core, session, signal } = call;
  // The proof must be for an exec on this target: the upstream below is this target's.
  requireAuthorization(auth, session.id, { target: target.id, verb: 'exec' });
  const action = auth.action;
  const command = (action.object as SshObject).commandLine!;
  const notStarted = async (why: string) => {
    await call.outcome(action, { ok: false, started: false, error: why });
    return failure('cancelled', why);
  };
  if (signal.aborted) return notStarted('the call was cancelled before the program started');
  let up: UpstreamConnection | undefined;
  try {
    up = await untilAborted(connectUpstream(core, target), signal, (late) => late.end());
  } catch (err) {
    const why = err instanceof UpstreamError ? err.failure : 'unreachable';
    core.log.warn({ err, session: session.id, target: target.id }, 'ssh upstream failed for an agent tool call');
    await call.outcome(action, { ok: false, upstream: why, message: (err as Error).message });
    return failure(why, why === 'host_key_mismatch' ? `target ${target.id} presented a host key that is not pinned; refusing to connect` : `target ${target.id} could not be reached (${why})`);
  }
  if (!up) return notStarted('the call was cancelled before the program started');
  const upstream = up;
  try {
    let recording: Recording;
    try {
      recording = new Recording(join(core.config().appliance.state_dir, 'recordings'), {
        width: 80,
        height: 24,
        timestamp: Math.floor(core.clock.now() / 1000),
        command,
        title: `${session.principal.id}@${target.id}: ${command}`,
        env: { TERM: '', SHELL: '' },
      }, MAX_RECORDING_BYTES);
    } catch (err) {
      // Nothing runs unrecorded.
      core.log.error({ err, session: session.id }, 'ssh_exec could not start a recording');
      await call.outcome(action, { ok: false, started: false, error: 'the recording could not be started' });
      return failure('recording_failed', 'the gateway could not record the program, so it did not run it');
    }
    // A target that never answers the channel request holds the call no longer than the program could run.
    const opening = AbortSignal.any([signal, AbortSignal.timeout(a.timeout_seconds * 1000)]);
    const remote = await untilAborted(openExec(upstream, command), opening, (late) => {
      if (late instanceof Error) return;
      signalChannel(late, 'KILL');
      late.close();
    });
    if (remote === undefined || remote instanceof Error) {
      recording.discard();
      if (remote instanceof Error) {
        await call.outcome(action, { ok: false, error: 'exec request refused by target' });
        return failure('target_refused', `target ${target.id} refused to run the command`);
      }
      if (signal.aborted) return notStarted('the call was cancelled before the program started');
      await call.outcome(action, { ok: false, started: false, error: 'the target did not start the program in time' });
      return failure('timed_out', `target ${target.id} did not start the program within ${a.timeout_seconds} s`);
    }
    const ran = await collect(call, upstream, remote, recording, a);
    const kept = keepRecording(recording, ran.recordingFailed);
    const { stdout, stderr, ...counts } = ran.result;
    await call.outcome(action, { ok: true, ...counts, stdin_bytes: ran.stdinBytes, ...(ran.cancelled ? { cancelled: true } : {}), ...kept });
    if (ran.cancelled) return failure('cancelled', 'the call was cancelled; the program was killed on the target', { ...counts });
    if (ran.recordingFailed) return failure('recording_failed', 'the gateway could not record the program, so it killed it', { ...counts });
    const status = ran.result.exit_code !== undefined ? `exit status ${ran.result.exit_code}` : `killed by signal ${ran.result.signal}`;
    return { ok: true, result: ran.result, text: `${ran.result.timed_out ? `timed out after ${a.timeout_seconds} s, ` : ''}${status}${ran.result.truncated ? ' (output truncated)' : ''}` };
  } finally {
    upstream.end();
  }
}

function openExec(up: UpstreamConnection, command: string): Promise<ClientChannel | Error> {
  // No pty, no environment: the program runs as the target's sshd runs any exec request.
  return new Promise((resolve) => up.client.exec(command, {}, (err, ch) => resolve(err ?? ch)));
}

/** The finished recording's reference for the outcome, or that there is none. */
function keepRecording(recording: Recording, failed: boolean): Record<string, unknown> {
  if (!failed) {
    try {
      return { recording: recordingRef(recording.finish()) };
    } catch {
      // fsync or rename failed: said below
    }
  }
  recording.discard();
  return { recording_failed: true };
}

/** Resolves with `p`'s value, or undefined once `signal` aborts (a late value is handed to `late`). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal, late: (value: T) => void): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) late(v);
        else resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** At most `max` bytes kept, all counted. */
class BoundedOutput {
  readonly #max: number;
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  bytes = 0;
  constructor(max: number) {
    this.#max = max;
  }
  add(d: Buffer): void {
    this.bytes += d.length;
    const room = this.#max - this.#kept;
    if (room <= 0) return;
    const part = d.length > room ? d.subarray(0, room) : d;
    this.#chunks.push(Buffer.from(part));
    this.#kept += part.length;
  }
  get truncated(): boolean {
    return this.bytes > this.#kept;
  }
  text(): string {
    return Buffer.concat(this.#chunks).toString('utf8');
  }
}

interface Ran {
  result: SshExecResult;
  stdinBytes: number;
  cancelled: boolean;
  /** The recording could not be written: the program was killed. */
  recordingFailed: boolean;
}

/** Feed stdin, read both streams bounded, kill on the time-out or an abort; resolves once the channel closed. */
function collect(call: AgentCall, up: UpstreamConnection, remote: ClientChannel, recording: Recording, a: SshExecArgs): Promise<Ran> {
  const { core, session, signal } = call;
  const started = performance.now();
  const stdout = new BoundedOutput(a.max_output_bytes);
  const stderr = new BoundedOutput(a.max_output_bytes);
  let exit: { exit_code: number } | { signal: string } | undefined;
  let killedBy: 'timeout' | 'abort' | 'recording' | undefined;
  const stdin = a.stdin === undefined ? Buffer.alloc(0) : Buffer.from(a.stdin, 'utf8');
  return new Promise((resolve) => {
    let grace: NodeJS.Timeout | undefined;
    const kill = (why: 'timeout' | 'abort' | 'recording') => {
      if (killedBy) return;
      killedBy = why;
      signalChannel(remote, 'KILL');
      remote.close();
      // A target that never confirms the close does not hold the call: the connection goes under it.
      grace = setTimeout(() => up.end(), CLOSE_GRACE_MS);
    };
    const timer = setTimeout(() => kill('timeout'), a.timeout_seconds * 1000);
    const onAbort = () => kill('abort');
    signal.addEventListener('abort', onAbort, { once: true });
    const touch = () => {
      session.lastActivityMs = core.clock.now();
    };
    // A disk that fails under the recording stops the program: nothing runs unrecorded.
    const record = (write: () => void) => {
      if (killedBy === 'recording') return;
      try {
        write();
      } catch (err) {
        core.log.error({ err, session: session.id }, 'ssh_exec recording failed; killing the program');
        kill('recording');
      }
    };
    remote.on('data', (d: Buffer) => {
      stdout.add(d);
      session.counters.bytesOut += d.length;
      record(() => recording.output(d));
      touch();
    });
    remote.stderr.on('data', (d: Buffer) => {
      stderr.add(d);
      session.counters.bytesOut += d.length;
      record(() => recording.output(d, 'stderr'));
    });
    remote.on('exit', (code: number | null, sig?: string) => {
      exit = code !== null && code !== undefined ? { exit_code: code } : { signal: sig ?? 'unknown' };
    });
    remote.once('close', () => {
      clearTimeout(timer);
      clearTimeout(grace);
      signal.removeEventListener('abort', onAbort);
      // Killed before the target said how it ended: it ended by our SIGKILL.
      const ended = exit ?? (killedBy ? { signal: 'SIGKILL' } : { signal: 'unknown' });
      resolve({
        result: {
          ...ended,
          stdout: stdout.text(),
          stderr: stderr.text(),
          stdout_bytes: stdout.bytes,
          stderr_bytes: stderr.bytes,
          truncated: stdout.truncated || stderr.truncated,
          timed_out: killedBy === 'timeout',
          duration_ms: Math.round(performance.now() - started),
        },
        stdinBytes: stdin.length,
        cancelled: killedBy === 'abort',
        recordingFailed: killedBy === 'recording',
      });
    });
    if (signal.aborted) return kill('abort');
    if (stdin.length > 0) {
      record(() => recording.input(stdin));
      session.counters.bytesIn += stdin.length;
    }
    remote.on('error', () => {}); // a write after the program exited; the close still comes
    remote.end(stdin);
  });
}
