// Config-check warnings for SSH rules that grant more than they seem to: an exec of a program that runs
// whatever its argument says (an interpreter, a wrapper), a pattern that lets the client add options,
// programs that reach a shell through their own features (a pager's `!`, an editor's `:!`,
// `tar --to-command`, `find -exec`, `ssh -o ProxyCommand`), and SFTP uploads to any top-level path.
// Warnings, not errors: a site may mean it, but it should say so knowingly. Codes are stable; tests
// match them.
import type { RuleCheckContext, RuleWarning } from '../types.ts';
import { admitsAnyOption, hasWildcard } from './argv-pattern.ts';
import { parseCommandLine } from './argv.ts';
import type { SshRuleConfig } from './rules.ts';

export const SSH_RULE_WARNINGS = {
  /** The program word is a wildcard (`["*", "..."]`, `["..."]`): any command. */
  W_SSH_EXEC_ANY_PROGRAM: 'the rule lets the client choose the program',
  /** An interpreter or wrapper with a free argument (`bash *`, `env -...`): it runs what the client says. */
  W_SSH_EXEC_INTERPRETER: 'the rule lets the client choose what the program runs',
  /** `-*` or `-...`: the client may add any option. */
  W_SSH_EXEC_ANY_OPTION: 'the rule admits options it does not name',
  /** The program reaches a shell through a pager, an editor, stdin commands or its own options. */
  W_SSH_EXEC_SHELL_ESCAPE: 'the program can reach a shell as the rule allows it',
} as const;
export type SshRuleWarningCode = keyof typeof SSH_RULE_WARNINGS;

export const SFTP_RULE_WARNINGS = {
  /** An upload path whose first segment is a wildcard (`/*`, `/**`): uploads anywhere from the root down. */
  W_SFTP_UPLOAD_ANYWHERE: 'the rule allows uploads to every top-level path',
} as const;

export interface SshRuleWarning {
  /** The rule's key the warning points at (`exec`, `command_line`). */
  field: string;
  code: SshRuleWarningCode;
  message: string;
}

/** Programs that, given a free argument, run anything at all (a shell, an interpreter, a wrapper). */
const runsAnything = /^(bash|sh|dash|zsh|ksh|csh|tcsh|fish|ash|python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|lua[0-9.]*|luajit|tclsh[0-9.]*|wish|php[0-9.]*|awk|gawk|mawk|nawk|sed|busybox|env|sudo|su|doas|pkexec|runuser|xargs|nice|ionice|taskset|nohup|timeout|setsid|stdbuf|chroot|unshare|nsenter|flock|watch|strace|ltrace|script|socat)$/;

/**
 * How a program reaches a shell: `tty` with a terminal (a pager or full-screen program, so only with
 * `pty: true`), `options` through options the rule would have to admit, `stdin` by reading commands
 * from its input (always open on an exec).
 */
interface Escape {
  tty?: string;
  options?: string;
  stdin?: string;
  /** Reads its first argument as option letters even without a dash (`tar xIf CMD`): a wildcard there opens options. */
  bareFirstOptions?: boolean;
  /** An option that, named in the rule, turns the terminal's way off (`--no-pager`). */
  ttyOff?: string;
}
const PAGER = 'its pager (less) runs shell commands with !';
const SYSTEMD: Escape = { tty: `${PAGER} unless the rule names --no-pager`, ttyOff: '--no-pager', options: '--host/-H and -M reach other machines' };
const EDITOR: Escape = { tty: 'an editor runs shell commands (:!, !, ^T)', stdin: 'an editor reads commands, :! among them, from its input', options: 'editor options run commands (-c, +cmd)' };
const SHELL_ESCAPES: Readonly<Record<string, Escape>> = {
  less: { tty: 'less runs shell commands with ! and opens an editor with v' },
  more: { tty: 'more runs shell commands with !' },
  most: { tty: 'most runs shell commands' },
  pg: { tty: 'pg runs shell commands with !' },
  man: { tty: PAGER, options: '-P/--pager and -H/--html choose a program to run' },
  dmesg: { tty: PAGER },
  systemctl: SYSTEMD,
  journalctl: SYSTEMD,
  loginctl: SYSTEMD,
  busctl: SYSTEMD,
  coredumpctl: { ...SYSTEMD, options: '--debugger and -A run a program of the caller\'s choice' },
  networkctl: SYSTEMD,
  machinectl: SYSTEMD,
  resolvectl: SYSTEMD,
  timedatectl: SYSTEMD,
  localectl: SYSTEMD,
  git: { tty: `${PAGER} unless the rule names --no-pager`, ttyOff: '--no-pager', options: '-c core.pager=…, -c core.sshCommand=…, --upload-pack=… run programs' },
  vi: EDITOR,
  vim: EDITOR,
  nvim: EDITOR,
  view: EDITOR,
  vimdiff: EDITOR,
  ex: EDITOR,
  ed: EDITOR,
  nano: { tty: 'nano runs commands with ^T / ^R^X' },
  emacs: { tty: 'emacs runs shell commands (M-!)', options: '--eval and -l run code' },
  mg: { tty: 'mg runs shell commands' },
  ssh: { tty: 'the ~C escape and a remote shell on another host', options: '-o ProxyCommand=…/LocalCommand=… run programs; the client picks hosts' },
  scp: { options: '-S and -o ProxyCommand=… run programs' },
  sftp: { stdin: 'sftp runs local shell commands with ! read from its input', options: '-S and -o ProxyCommand=… run programs' },
  rsync: { options: '-e/--rsh and --rsync-path run programs' },
  find: { options: '-exec, -execdir, -ok and -okdir run programs; -fprint and -delete change files' },
  tar: { options: '--to-command, -I/--use-compress-program, --checkpoint-action=exec and -F run programs', bareFirstOptions: true },
  zip: { options: '-TT/--unzip-command runs a program' },
  crontab: { options: '-e opens an editor' },
  tcpdump: { options: '-z runs a program after each file' },
  make: { options: '-f, --eval and -C choose what recipes run' },
  mail: { stdin: 'mail runs shell commands with ~! read from its input' },
  mailx: { stdin: 'mailx runs shell commands with ~! read from its input' },
  ftp: { stdin: 'ftp runs shell commands with ! read from its input' },
  sqlite3: { stdin: 'sqlite3 runs shell commands with .shell/.system read from its input', options: '-cmd runs dot-commands' },
  mysql: { stdin: 'mysql runs shell commands with \\! read from its input' },
  psql: { stdin: 'psql runs shell commands with \\! read from its input' },
  gdb: { stdin: 'gdb runs shell commands read from its input', options: '-ex runs commands' },
  nc: { options: '-e/-c run a program' },
};

const program = (word: string | undefined): string => word?.split('/').pop() ?? '';

/** Warnings for one SSH rule body (the plain YAML map, read defensively). Deny rules grant nothing. */
export function sshRuleWarnings(rule: Record<string, unknown>): SshRuleWarning[] {
  if (rule.effect === 'deny') return [];
  const pty = rule.pty === true;
  let field: string;
  let words: string[];
  let pattern: string[] | undefined;
  if (Array.isArray(rule.exec)) {
    field = 'exec';
    pattern = rule.exec.filter((w): w is string => typeof w === 'string');
    words = pattern;
  } else if (typeof rule.command_line === 'string') {
    field = 'command_line';
    const parsed = parseCommandLine(rule.command_line);
    words = 'error' in parsed ? [] : parsed.argv;
  } else {
    return [];
  }
  const out: SshRuleWarning[] = [];
  const shown = pattern ? pattern.join(' ') : String(rule.command_line);
  const name = program(words[0]);
  const free = pattern !== undefined && hasWildcard(pattern.slice(1));
  if (pattern && hasWildcard(pattern.slice(0, 1))) {
    out.push({ field, code: 'W_SSH_EXEC_ANY_PROGRAM', message: `allows any command: \`${shown}\` lets the client choose the program; name it` });
  } else if (runsAnything.test(name) && free) {
    out.push({ field, code: 'W_SSH_EXEC_INTERPRETER', message: `allows everything: \`${shown}\` lets the client choose what ${name} runs; name exact commands (exec with literal words, or command_line) instead` });
  }
  const openOptions = pattern !== undefined && admitsAnyOption(pattern);
  if (openOptions) {
    out.push({ field, code: 'W_SSH_EXEC_ANY_OPTION', message: `admits any option: \`${shown}\` lets the client add options the rule does not name (-* or -...); name the options instead (--no-pager, -n *, --lines=*)` });
  }
  if (out.some((w) => w.code === 'W_SSH_EXEC_ANY_PROGRAM' || w.code === 'W_SSH_EXEC_INTERPRETER')) return out;
  const escape = SHELL_ESCAPES[name];
  if (!escape) return out;
  const bareOptions = escape.bareFirstOptions === true && pattern !== undefined && hasWildcard(pattern.slice(1, 2));
  const ways: string[] = [];
  if (escape.stdin) ways.push(escape.stdin);
  if (pty && escape.tty && !(escape.ttyOff && words.includes(escape.ttyOff))) ways.push(`with a pty, ${escape.tty}`);
  if (openOptions && escape.options) ways.push(`with any option, ${escape.options}`);
  else if (bareOptions && escape.options) ways.push(`its first argument is option letters even without a dash, and ${escape.options}`);
  if (ways.length > 0) out.push({ field, code: 'W_SSH_EXEC_SHELL_ESCAPE', message: `reaches a shell: \`${shown}\`: ${ways.join('; ')}` });
  return out;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** An upload path pattern whose first segment is a wildcard can write anywhere from the root down. */
function sftpUploadAnywhere(rule: Obj): RuleWarning[] {
  const sftp = isObj(rule.sftp) ? rule.sftp : undefined;
  if (!sftp || (sftp.direction !== 'upload' && sftp.direction !== 'both')) return [];
  const out: RuleWarning[] = [];
  (Array.isArray(sftp.paths) ? sftp.paths : []).forEach((p: unknown, i) => {
    if (typeof p !== 'string') return;
    const first = p.split('/').find((seg) => seg !== '');
    if (first === undefined || /^\*+$/.test(first)) {
      out.push({ path: ['sftp', 'paths', i], code: 'W_SFTP_UPLOAD_ANYWHERE' satisfies keyof typeof SFTP_RULE_WARNINGS, message: `allows uploads anywhere: \`${p}\` matches every top-level path; name the directory uploads go to` });
    }
  });
  return out;
}

/**
 * Every warning one SSH rule body gets, paths below the body: the exec warnings, then the SFTP one.
 * Read defensively, so a plain YAML map whose other parts the schema refused works too.
 */
export function ruleWarnings(rule: SshRuleConfig | Obj, context?: RuleCheckContext): RuleWarning[] {
  const body = rule as Obj;
  const out: RuleWarning[] = sshRuleWarnings(body).map(({ field, code, message }) => ({ path: [field], code, message }));
  if (body.effect !== 'deny') out.push(...sftpUploadAnywhere(body));
  // A tunnel carries bytes as they are (`raw`) or a protocol whose front door serves tunnelled streams.
  const tunnel = body.tunnel;
  if (context && typeof tunnel === 'string' && tunnel !== 'raw') {
    const carried = context.protocols.get(tunnel);
    if (!carried?.servesStreams) {
      const can = [...context.protocols.values()].filter((m) => m.servesStreams).map((m) => m.name);
      out.push({ path: ['tunnel'], code: 'E_SSH_TUNNEL_KIND', severity: 'error', message: `a tunnel carries raw bytes or a protocol served in tunnels (${['raw', ...can].join(', ')}), not ${tunnel}` });
    }
  }
  return out;
}
