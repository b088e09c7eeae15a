// The SSH agent tool, `ssh_exec`, as the module describes it: arguments, result, and which rules list
// it. Light (zod and the argv helpers only); the front door runs it (agent-exec.ts).
//
// An agent gives an argv, never a command line: the tool quotes every word for the target's shell
// (argv.ts: commandLineOf) and builds the exec action the front door builds for that line, so the
// same rules decide it and the words reach the program exactly as given — `$(id)` or `;` in a word is
// data, not shell.
import { z } from 'zod';
import type { AgentToolSpec } from '../types.ts';
import { commandLineOf, parseCommandLine } from './argv.ts';
import type { SshRuleConfig } from './rules.ts';

export const SSH_EXEC = 'ssh_exec';

/** Bounds of one call's arguments and result. */
export const SSH_EXEC_LIMITS = {
  argvItems: 256,
  itemChars: 4096,
  /** The quoted command line, as the action object carries it (rules.ts: commandLine). */
  commandLineChars: 16384,
  stdinChars: 65536,
  timeoutSeconds: { default: 30, max: 600 },
  outputBytes: { default: 65536, max: 1048576 },
} as const;

const argvItem = z.string().max(SSH_EXEC_LIMITS.itemChars).regex(/^[^\0]*$/, 'an argument cannot hold NUL');

export const sshExecInput = z.strictObject({
  target: z.string().describe('id of an SSH target a grant names'),
  argv: z.array(argvItem).min(1).max(SSH_EXEC_LIMITS.argvItems).describe('the program and its arguments, one word per item; never a shell command line'),
  stdin: z.string().max(SSH_EXEC_LIMITS.stdinChars).optional().describe('text sent to the program as its standard input, then end of input'),
  timeout_seconds: z.number().int().min(1).max(SSH_EXEC_LIMITS.timeoutSeconds.max).default(SSH_EXEC_LIMITS.timeoutSeconds.default).describe('the program is killed after this long'),
  max_output_bytes: z.number().int().min(1).max(SSH_EXEC_LIMITS.outputBytes.max).default(SSH_EXEC_LIMITS.outputBytes.default).describe('stdout and stderr are each cut to this many bytes'),
});
export type SshExecArgs = z.output<typeof sshExecInput>;

export const sshExecOutput = z.strictObject({
  /** The program's exit status; absent when a signal ended it. */
  exit_code: z.number().int().optional(),
  /** The signal that ended it, as `SIGKILL` (which the time-out sends). */
  signal: z.string().optional(),
  stdout: z.string(),
  stderr: z.string(),
  /** Bytes the program wrote, including any cut off. */
  stdout_bytes: z.number().int(),
  stderr_bytes: z.number().int(),
  /** stdout or stderr was longer than max_output_bytes and was cut. */
  truncated: z.boolean(),
  /** The program ran past timeout_seconds and was killed. */
  timed_out: z.boolean(),
  duration_ms: z.number().int(),
});
export type SshExecResult = z.output<typeof sshExecOutput>;

/**
 * Whether a rule could let `ssh_exec` run something: an `exec` rule, or a `command_line` rule whose
 * line is exactly what the tool would send for some argv (no metacharacters, quoted as the tool quotes).
 */
export function execReachable(rule: SshRuleConfig): boolean {
  if (rule.exec) return true;
  if (rule.command_line === undefined) return false;
  const parsed = parseCommandLine(rule.command_line);
  return !('error' in parsed) && !parsed.metacharacters && parsed.argv.length > 0 && commandLineOf(parsed.argv) === rule.command_line;
}

const description = `Run one program on an SSH target, through Penstock, without a terminal, and return its exit status and output.
argv is the program and its arguments as a list of words, never a shell command line: each word reaches the program exactly as given (quotes, $, ;, *, spaces and newlines are plain characters), so pipes, redirections and variables are not available. The target's rules decide the argv word by word, as they do for an SSH login: an argument starting with "-" is allowed only where a rule names it.
Examples: {"target":"rtu-7","argv":["systemctl","status","bridge"]}; {"target":"rtu-7","argv":["journalctl","-u","bridge","-n","50","--no-pager"],"timeout_seconds":10}; {"target":"rtu-7","argv":["tee","/tmp/note"],"stdin":"hello\\n"}.
stdin (up to ${SSH_EXEC_LIMITS.stdinChars} characters) is sent, then end of input. After timeout_seconds (default ${SSH_EXEC_LIMITS.timeoutSeconds.default}, at most ${SSH_EXEC_LIMITS.timeoutSeconds.max}) the program is killed: timed_out is true and signal SIGKILL.
Result: exit_code (or signal), stdout and stderr as UTF-8 text, each cut to max_output_bytes (default ${SSH_EXEC_LIMITS.outputBytes.default}, at most ${SSH_EXEC_LIMITS.outputBytes.max}; truncated says so, stdout_bytes and stderr_bytes count all), duration_ms. A non-zero exit status is a result, not an error.
A refusal by policy runs nothing; a rule that needs a person's approval answers with the approval's id: once approved, the same call runs once.`;

export const sshExecTool: AgentToolSpec<SshRuleConfig> = {
  name: SSH_EXEC,
  title: 'Run a program on an SSH target',
  description,
  input: sshExecInput,
  output: sshExecOutput,
  readOnly: false,
  listedBy: execReachable,
};

export const sshAgentTools: readonly AgentToolSpec<SshRuleConfig>[] = [sshExecTool];
