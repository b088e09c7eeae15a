// SSH rules: which channel kinds, and for exec which argv. An exec pattern is a list of words
// (argv-pattern.ts): a literal word matches itself, `*` one operand (never an option), `--NAME=*` that
// option with any value, a final `...` any operands; `-*` and `-...` admit options and are warned about.
// The argv comes from parsing the raw command line here (argv.ts), not from the adapter's copy, so
// policy and the shell agree on the words. A line the shell would do more with (metacharacters) is
// allowed only by a `command_line` rule naming that exact line.
import { posix } from 'node:path';
import type { Action } from '../../policy/types.ts';
import { fit, miss, type MatchEnv, type MatchMode, type ProtocolMatcher, type RuleFit } from '../../policy/matcher.ts';
import { matchPath } from '../../policy/glob.ts';
import { parseCommandLine } from './argv.ts';
import { argvMismatch, matchArgvPattern } from './argv-pattern.ts';
import { tunnelKindSchema, type SshObject, type SshRuleConfig } from './rules.ts';

const SEPARATOR_TOKENS = new Set([';', '|', '&', '<', '>', '(', ')', '\n']);

/** The simple commands a line with separators would run, as far as words show them. */
function commandSegments(argv: readonly string[]): string[][] {
  const out: string[][] = [[]];
  for (const w of argv) {
    if (SEPARATOR_TOKENS.has(w)) out.push([]);
    else out[out.length - 1]!.push(w);
  }
  return out.filter((s) => s.length > 0);
}

interface ExecLine {
  line: string | undefined;
  argv: string[];
  metacharacters: boolean;
}

/** The exec's words as policy sees them: parsed here from the raw line whenever it is present. */
function execLine(o: SshObject): ExecLine | { error: string } {
  if (o.commandLine !== undefined) {
    const p = parseCommandLine(o.commandLine);
    return 'error' in p ? p : { line: o.commandLine, ...p };
  }
  if (o.argv) return { line: undefined, argv: o.argv, metacharacters: o.metacharacters ?? true };
  return { error: 'an exec with no command line' };
}

function ruleKind(rule: SshRuleConfig): string {
  if (rule.exec || rule.command_line !== undefined) return 'exec';
  if (rule.shell) return 'shell';
  if (rule.tunnel) return 'tunnel';
  return 'sftp';
}

function validate(_action: Action, o: SshObject): string | undefined {
  switch (o.channel) {
    case 'exec': {
      const e = execLine(o);
      return 'error' in e ? `command line: ${e.error}` : undefined;
    }
    case 'shell':
      return undefined;
    case 'tunnel':
      // Which kinds a target offers is the front door's to say; a name that is no name is malformed.
      return tunnelKindSchema.safeParse(o.tunnel).success ? undefined : 'a tunnel of no known kind';
    case 'sftp': {
      if (o.direction !== 'download' && o.direction !== 'upload') return 'a file transfer with no direction';
      if (typeof o.path !== 'string' || !o.path.startsWith('/') || o.path.includes('\0')) return 'a file transfer needs an absolute path';
      // Compared as written, so refuse anything a file system would read differently.
      if (posix.normalize(o.path) !== o.path) return `path ${o.path} is not in normal form (no . or .. segments, no //)`;
      if (o.bytes !== undefined && (!Number.isInteger(o.bytes) || o.bytes < 0)) return 'bytes must be a whole number';
      return undefined;
    }
    default:
      return `unknown channel ${String((o as { channel: unknown }).channel)}`;
  }
}

function match(rule: SshRuleConfig, _action: Action, o: SshObject, _env: MatchEnv, mode: MatchMode): RuleFit {
  const contain = mode === 'contain';
  const kind = ruleKind(rule);
  if (kind !== o.channel) return miss('function_not_granted', `the rule grants ${kind}, not ${o.channel}`);
  switch (o.channel) {
    case 'exec': {
      const e = execLine(o);
      if ('error' in e) return miss('object_not_granted', e.error);
      // A terminal turns pagers and editors into shells: only a rule that says `pty: true` grants one.
      if (o.pty && contain && !rule.pty) return miss('function_not_granted', 'the rule does not grant a terminal (pty: true)');
      const shown = e.line ?? e.argv.join(' ');
      if (rule.command_line !== undefined) {
        return e.line === rule.command_line ? fit : miss('object_not_granted', `command line ${JSON.stringify(shown)} is not ${JSON.stringify(rule.command_line)}`);
      }
      const pattern = rule.exec!;
      if (e.metacharacters) {
        if (contain) return miss('metacharacters', `command line ${JSON.stringify(shown)} holds shell metacharacters, and no rule names that exact line`);
        // A deny pattern refuses the line when any command it would run matches.
        return matchArgvPattern(pattern, e.argv, mode) || commandSegments(e.argv).some((s) => matchArgvPattern(pattern, s, mode)) ? fit : miss('object_not_granted', 'no command matches');
      }
      const why = argvMismatch(pattern, e.argv, mode);
      return why === undefined ? fit : miss('object_not_granted', `argv ${JSON.stringify(e.argv)} does not match ${JSON.stringify(pattern)}: ${why}`);
    }
    case 'shell':
      return fit;
    case 'tunnel':
      return rule.tunnel === o.tunnel ? fit : miss('object_not_granted', `the rule grants ${rule.tunnel} tunnels, not ${o.tunnel}`);
    case 'sftp': {
      const s = rule.sftp!;
      if (s.direction !== 'both' && s.direction !== o.direction) return miss('function_not_granted', `the rule grants ${s.direction}s, not ${o.direction}s`);
      if (!s.paths.some((p) => matchPath(p, o.path!))) return miss('object_not_granted', `path ${o.path} is not under ${s.paths.join(', ')}`);
      if (s.max_bytes === undefined) return fit;
      if (o.bytes === undefined) return contain ? miss('value_out_of_bounds', `the rule limits transfers to ${s.max_bytes} bytes, and the size is not known`) : fit;
      if (o.bytes > s.max_bytes) return contain ? miss('value_out_of_bounds', `${o.bytes} bytes exceed the rule's ${s.max_bytes}`) : miss('value_out_of_bounds', 'larger than the rule names');
      return fit;
    }
  }
}

function describe(rule: SshRuleConfig): string {
  const tty = rule.pty ? ', with a terminal' : '';
  if (rule.exec) return `ssh: exec ${rule.exec.join(' ')}${tty}`;
  if (rule.command_line !== undefined) return `ssh: exactly the command line ${JSON.stringify(rule.command_line)}${tty}`;
  if (rule.shell) return 'ssh: interactive shell';
  if (rule.tunnel) return `ssh: ${rule.tunnel} tunnel`;
  const s = rule.sftp!;
  return `ssh: sftp ${s.direction === 'both' ? 'upload and download' : s.direction} ${s.paths.join(', ')}${s.max_bytes !== undefined ? ` up to ${s.max_bytes} bytes` : ''}`;
}

export const sshMatcher: ProtocolMatcher<SshObject, SshRuleConfig> = { kind: 'ssh', validate, match, describe };
