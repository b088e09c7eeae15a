// `penstockctl policy check PRINCIPAL TARGET ssh …`: the action object an SSH request would become, so
// a dry run asks policy exactly what the front door would. The command line is parsed here with the
// same word splitting policy uses (argv.ts).
import { DryRunUsageError, type DryRunSyntax } from '../types.ts';
import type { Verb } from '../../policy/types.ts';
import { commandLineOf, parseCommandLine, type ParsedCommandLine } from './argv.ts';
import { RAW_TUNNEL, tunnelKindSchema, type SshObject } from './rules.ts';

export { shellQuote } from './argv.ts';

export interface SshCheckOptions {
  bytes?: string | undefined;
}

/**
 * `ssh exec -- CMD ARGS…` / `ssh shell` / `ssh tunnel [raw|PROTOCOL]` / `ssh upload|download PATH`.
 * penstockctl's option parser takes the `--` itself; the words after it arrive here as they are. One
 * word is taken as the command line exactly as a client would send it; several words are joined with
 * POSIX quoting, so `-- ls -l "my file"` asks about the argv [ls, -l, my file].
 */
export function sshAction(args: string[], parse: (line: string) => ParsedCommandLine = parseCommandLine, opts: SshCheckOptions = {}): { verb: Verb; object: SshObject } {
  const [channel, ...rest] = args;
  if (opts.bytes !== undefined && channel !== 'upload' && channel !== 'download') throw new DryRunUsageError('--bytes is for ssh upload and download');
  if (channel === 'shell') {
    if (rest.length) throw new DryRunUsageError(`ssh shell takes no arguments (got ${rest.join(' ')})`);
    return { verb: 'shell', object: { kind: 'ssh', channel: 'shell' } };
  }
  if (channel === 'tunnel') {
    const kind = rest[0] ?? RAW_TUNNEL;
    if (!tunnelKindSchema.safeParse(kind).success || rest.length > 1) throw new DryRunUsageError(`ssh tunnel takes ${RAW_TUNNEL} or the name of a protocol a tunnel may carry`);
    return { verb: 'tunnel', object: { kind: 'ssh', channel: 'tunnel', tunnel: kind } };
  }
  if (channel === 'upload' || channel === 'download') {
    const [path, ...extra] = rest;
    if (!path) throw new DryRunUsageError(`ssh ${channel}: PATH is missing (an absolute path on the target, e.g. /opt/fw/fw.bin)`);
    if (extra.length) throw new DryRunUsageError(`ssh ${channel}: unexpected arguments: ${extra.join(' ')}`);
    let bytes: number | undefined;
    if (opts.bytes !== undefined) {
      if (!/^\s*\d+\s*$/.test(opts.bytes) || !Number.isSafeInteger(Number(opts.bytes))) throw new DryRunUsageError(`--bytes must be a whole number (got ${opts.bytes})`);
      bytes = Number(opts.bytes);
    }
    return { verb: channel, object: { kind: 'ssh', channel: 'sftp', path, direction: channel, ...(bytes !== undefined ? { bytes } : {}) } };
  }
  if (channel !== 'exec') throw new DryRunUsageError(`ssh: expected exec, shell, tunnel, upload or download, got ${channel ?? 'nothing'}`);
  if (rest.length === 0) throw new DryRunUsageError('ssh exec: give the command after --, e.g. policy check P T ssh exec -- systemctl status plc');
  // Several words are quoted as the agent tool quotes an argv (argv.ts), so a dry run asks what it would.
  const commandLine = rest.length === 1 ? rest[0]! : commandLineOf(rest);
  const parsed = parse(commandLine);
  return {
    verb: 'exec',
    object: {
      kind: 'ssh',
      channel: 'exec',
      commandLine,
      // An unparseable line goes without argv, as a front door would send it (policy denies it as malformed).
      ...('error' in parsed ? {} : { argv: parsed.argv, metacharacters: parsed.metacharacters }),
    },
  };
}

export const sshDryRun: DryRunSyntax = {
  usage: [
    'ssh exec -- COMMAND ARGS...',
    `ssh shell | ssh tunnel [${RAW_TUNNEL}|PROTOCOL]`,
    'ssh upload|download PATH [--bytes N]',
  ],
  options: [{ flags: '--bytes <n>', description: 'size of the file uploaded or downloaded' }],
  help: 'SSH exec: one word after -- is the command line as a client sends it; several words are joined with POSIX quoting.',
  parse: (args, options) => sshAction(args, parseCommandLine, { bytes: options.bytes }),
};
