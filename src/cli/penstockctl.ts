// penstockctl: the operator's CLI for a running Penstock, over its Unix admin socket.
// Output is for people by default and the raw JSON result with --json. Exit codes (also in --help):
//   0 done / policy allows           1 policy denies / config has errors / reload refused
//   2 policy needs a person's approval
//   3 bad command line               4 daemon unreachable or socket permission denied
//   5 the daemon refused the request (its error code is printed)
import { Command, CommanderError, Option } from 'commander';
import { resolve } from 'node:path';
import { isPenstockError } from '../common/errors.ts';
import type { PendingApproval } from '../approvals/approvals.ts';
import type { ConfigIssue } from '../config/types.ts';
import type { SessionView } from '../sessions/types.ts';
import type { Action, ActionObject, Decision, Verb } from '../policy/types.ts';

/** An action without its target (the admin command takes the target beside it). */
type DryRunAction = { verb: Verb; object: ActionObject };
import { DEFAULT_ADMIN_SOCKET, adminRequest } from '../admin/client.ts';
import { protocols } from '../adapters/registry.ts';
import { UsageError, type Io } from './io.ts';
export type { Io } from './io.ts';
import { quickGrant, quickRuleExamples, readEnvelopeFile, readGrantFile, type QuickGrantOptions } from './grant-input.ts';
import { addJournalCommands } from './journal.ts';
import { addVaultCommands } from './vault.ts';
import { addReplayCommand } from './replay.ts';
import { addSuggestCommand } from './suggest.ts';
import { addWatchCommand } from './watch.ts';
import { renderApprovals, renderDecision, renderGrants, renderIssues, renderSessions, renderStatus, type GrantRow } from './render.ts';

export const EXIT = { ok: 0, no: 1, approve: 2, usage: 3, unreachable: 4, refused: 5 } as const;

const EXIT_HELP = `
Exit status:
  0  done; for "policy check": allowed
  1  "policy check": denied; "config check"/"config reload": configuration has errors
  2  "policy check": allowed only with a person's approval
  3  bad command line
  4  penstock not reachable, or permission denied on the admin socket
  5  penstock refused the request (the error code is printed)

Environment:
  PENSTOCK_ADMIN_SOCKET  admin socket path (default ${DEFAULT_ADMIN_SOCKET})`;

const processIo: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

interface GlobalOptions {
  socket: string;
  json?: boolean;
  timeout: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Run penstockctl with these arguments (without node and script); resolves to the exit code. */
export async function main(args: string[], io: Io = processIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = new Command('penstockctl');
  program
    .description('Manage a running Penstock over its admin socket')
    .addOption(new Option('--socket <path>', 'admin socket').default(env.PENSTOCK_ADMIN_SOCKET || DEFAULT_ADMIN_SOCKET))
    .option('--json', 'print the raw JSON result')
    .option('--timeout <ms>', 'give up after this many milliseconds', '30000')
    .addHelpText('after', EXIT_HELP)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError('(run with --help for usage)');

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const call = async (command: string, params: unknown = {}): Promise<unknown> => {
    const g = globals();
    return adminRequest(g.socket, command, params, { timeoutMs: positiveMs(g.timeout) });
  };
  /** Print the result: raw JSON with --json, else the human rendering. */
  const show = (result: unknown, human: () => string): void => {
    io.out(globals().json ? JSON.stringify(result, null, 2) : human());
  };
  const now = (): number => Date.now();

  program.command('status')
    .description('appliance, version, uptime, front doors and counts')
    .action(async () => {
      const r = (await call('status')) as Record<string, unknown>;
      show(r, () => renderStatus(r));
    });

  const sessions = program.command('sessions').description('live sessions');
  sessions.command('list')
    .description('list live sessions')
    .action(async () => {
      const r = (await call('sessions.list')) as SessionView[];
      show(r, () => renderSessions(r, now()));
    });
  sessions.command('kill')
    .description('end a session through its front door')
    .argument('<id>', 'session id (see sessions list)')
    .option('--reason <text>', 'why (recorded in the journal)')
    .action(async (id: string, o: { reason?: string }) => {
      const r = (await call('sessions.kill', { id, ...(o.reason ? { reason: o.reason } : {}) })) as SessionView;
      show(r, () => `killed session ${r.id} (${r.principal}${r.target ? ` → ${r.target}` : ''}, ${r.counters.allowed} allowed, ${r.counters.denied} denied)`);
    });

  sessions.command('resume')
    .description('lift a suspension containment put on a session (after an alert): its actions are decided as before')
    .argument('<id>', 'session id (see sessions list)')
    .action(async (id: string) => {
      const r = (await call('sessions.resume', { id })) as SessionView;
      show(r, () => `resumed session ${r.id} (${r.principal}${r.target ? ` → ${r.target}` : ''})`);
    });

  addReplayCommand(sessions, { io, call, json: () => Boolean(globals().json), setExit: (code) => (exitCode = code) });

  const grants = program.command('grants').description('task-bound, time-boxed privileges');
  grants.command('list')
    .description('list grants from the config file and issued at run time')
    .action(async () => {
      const r = (await call('grants.list')) as GrantRow[];
      show(r, () => renderGrants(r, now()));
    });
  grants.command('issue')
    .description('issue a grant: from a YAML/JSON file (same shape as a config grant; - for stdin) or from the quick flags')
    .option('--file <file>', 'grant file (YAML or JSON), or - for stdin')
    .option('--id <id>', 'grant id')
    .option('--principal <id>', 'principal the grant is for')
    .option('--target <id>', 'target (repeat for several)', collect, [])
    .option('--ticket <ref>', 'work order or ticket reference')
    .option('--purpose <text>', 'what the work is')
    .option('--from <iso>', 'start, ISO 8601 with zone (default now)')
    .option('--until <iso>', 'end, ISO 8601 with zone')
    .option('--rule <rule>', `PROTOCOL:KEY=VALUE[,…], e.g. ${quickRuleExamples().slice(0, 1).map((e) => `'${e}'`).join('')} (repeat for several)`, collect, [])
    .addHelpText('after', `\nQuick rules:\n${quickRuleExamples().map((e) => `  --rule '${e}'`).join('\n')}`)
    .action(async (o: QuickGrantOptions & { file?: string }) => {
      const quick = o.id || o.principal || o.ticket || o.until || o.from || o.purpose || o.target?.length || o.rule?.length;
      if (o.file !== undefined && quick) throw new UsageError('use either --file or the quick flags, not both');
      const grant = o.file !== undefined ? readGrantFile(o.file) : quickGrant(o, now());
      const r = (await call('grants.issue', { grant })) as Record<string, unknown>;
      show(r, () => `issued grant ${String(r?.id ?? (grant as { id?: unknown }).id)}`);
    });
  grants.command('import')
    .description('import a grant envelope signed by central PAM (compact JWS), verified offline against the pinned keys; - for stdin')
    .argument('<file>', 'envelope file, or - for stdin')
    .action(async (file: string) => {
      const envelope = readEnvelopeFile(file);
      const r = (await call('grants.import', { envelope })) as { id: string; jti: string; iss: string; max_uses: number; expires: string };
      show(r, () => `issued grant ${r.id} (envelope ${r.jti} from ${r.iss}, ${r.max_uses} session(s), envelope valid until ${r.expires})`);
    });
  grants.command('revoke')
    .description('revoke a grant now; sessions that depend on it end')
    .argument('<id>', 'grant id')
    .requiredOption('--reason <text>', 'why (recorded in the journal)')
    .action(async (id: string, o: { reason: string }) => {
      const r = await call('grants.revoke', { id, reason: o.reason });
      show(r, () => `revoked grant ${id}`);
    });
  addSuggestCommand(grants, { io, call, json: () => Boolean(globals().json), now });

  grants.command('release')
    .description('lift the approval requirement containment put on a grant (after an alert): its allow rules allow again')
    .argument('<id>', 'grant id')
    .action(async (id: string) => {
      const r = (await call('grants.release', { id })) as { grant: string; alert: { kind: string; seq: number } };
      show(r, () => `released grant ${r.grant} (held since alert.${r.alert.kind}, journal seq ${r.alert.seq})`);
    });

  const approvals = program.command('approvals').description('requests waiting for a person');
  approvals.command('list')
    .description('list pending approval requests')
    .action(async () => {
      const r = (await call('approvals.list')) as PendingApproval[];
      show(r, () => renderApprovals(r, now()));
    });
  for (const [verb, command, done] of [['approve', 'approvals.approve', 'approved'], ['deny', 'approvals.deny', 'denied']] as const) {
    approvals.command(verb)
      .description(`${verb} a pending request; the front door that asked is told at once`)
      .argument('<id>', 'approval id (see approvals list)')
      .option('--note <text>', 'a note for the journal')
      .action(async (id: string, o: { note?: string }) => {
        const r = await call(command, { id, ...(o.note ? { note: o.note } : {}) });
        show(r, () => `${done} ${id}`);
      });
  }

  // One sub-command; each protocol's module brings its syntax, options and help (its `dryRun`).
  const dryRuns = [...protocols.values()].filter((m) => m.dryRun);
  const policy = program.command('policy').description('ask policy without doing anything');
  const check = policy.command('check')
    .description('dry run: would PRINCIPAL be allowed this on TARGET now, and by which grant and rule?')
    .usage(dryRuns.flatMap((m) => m.dryRun!.usage.map((u) => `PRINCIPAL TARGET ${u}`)).join('\n       '))
    .argument('<principal>')
    .argument('<target>')
    .argument('<protocol>', dryRuns.map((m) => m.name).join(', '))
    .argument('[args...]');
  const seen = new Set<string>();
  for (const m of dryRuns) {
    for (const o of m.dryRun!.options) {
      if (seen.has(o.flags)) continue;
      seen.add(o.flags);
      check.option(o.flags, `${m.name}: ${o.description}`);
    }
  }
  const help = dryRuns.flatMap((m) => (m.dryRun!.help ? [m.dryRun!.help] : [])).join('\n');
  if (help) check.addHelpText('after', `\n${help}`);
  check.action(async (principal: string, target: string, protocol: string, rest: string[], o: Record<string, string | undefined>) => {
    const m = protocols.get(protocol);
    if (!m?.dryRun) throw new UsageError(`protocol must be one of ${dryRuns.map((d) => d.name).join(', ')} (got ${protocol})`);
    const action: DryRunAction = m.dryRun.parse(rest, o);
    const r = (await call('policy.check', { principal, target, action })) as { principal: string; action: Action; at: string; decision: Decision };
    show(r, () => renderDecision(r));
    exitCode = r.decision.effect === 'allow' ? EXIT.ok : r.decision.effect === 'approve' ? EXIT.approve : EXIT.no;
  });

  const config = program.command('config').description('configuration');
  config.command('check')
    .description('validate a config file here, without a daemon; prints each problem with file, line and field')
    .argument('<file>')
    .option('--daemon', "check against the running daemon's profiles instead: the file is read here, with your rights, and its text sent")
    .action(async (file: string, o: { daemon?: boolean }) => {
      const [{ checkConfig, formatIssue, readConfigText }, { fileIssue }] = await Promise.all([import('../config/load.ts'), import('../config/yaml-issues.ts')]);
      const path = resolve(file);
      let issues: ConfigIssue[];
      if (o.daemon) {
        const read = readConfigText(path);
        issues = 'text' in read
          ? ((await call('config.check', { text: read.text, name: path })) as { issues: ConfigIssue[] }).issues
          : [fileIssue(path, read.message, 'error', read.code)];
      } else {
        const { protocols } = await import('../adapters/registry.ts');
        issues = checkConfig(path, protocols).issues;
      }
      const { text, errors } = renderIssues(issues, formatIssue);
      show({ ok: errors === 0, issues }, () => text);
      if (errors > 0) exitCode = EXIT.no;
    });
  config.command('reload')
    .description('reload the daemon\'s config file: applied whole, or refused with the reasons')
    .action(async () => {
      const r = (await call('config.reload')) as { ok: boolean; issues: ConfigIssue[] };
      const { formatIssue } = await import('../config/load.ts');
      show(r, () => {
        const lines = r.issues.map(formatIssue);
        lines.push(r.ok ? 'configuration reloaded' : 'reload refused; the running configuration is unchanged');
        return lines.join('\n');
      });
      if (!r.ok) exitCode = EXIT.no;
    });

  addJournalCommands(program, { io, call, show, setExit: (code) => (exitCode = code) });
  addWatchCommand(program, {
    io,
    socket: () => globals().socket,
    json: () => Boolean(globals().json),
    timeoutMs: () => positiveMs(globals().timeout),
    setExit: (code) => (exitCode = code),
  });
  addVaultCommands(program, { io, show });

  try {
    await program.parseAsync(args, { from: 'user' });
    return exitCode;
  } catch (err) {
    return reportError(err, io, Boolean(program.opts<GlobalOptions>().json));
  }
}

function positiveMs(text: string): number {
  const ms = Number(text);
  if (!Number.isInteger(ms) || ms <= 0) throw new UsageError(`--timeout must be a positive number of milliseconds (got ${text})`);
  return ms;
}

function reportError(err: unknown, io: Io, json: boolean): number {
  if (err instanceof CommanderError) {
    // Commander already printed the message (or the help).
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return EXIT.ok;
    return EXIT.usage;
  }
  if (err instanceof UsageError) {
    io.err(`penstockctl: ${err.message}`);
    return EXIT.usage;
  }
  if (isPenstockError(err)) {
    io.err(json ? JSON.stringify({ error: { code: err.code, message: err.message } }) : `penstockctl: ${err.message} [${err.code}]`);
    // Errors the client raised before the daemon could answer carry the socket path.
    return err.details?.socket !== undefined ? EXIT.unreachable : EXIT.refused;
  }
  io.err(`penstockctl: ${(err as Error)?.message ?? String(err)} [PS_INTERNAL]`);
  return EXIT.refused;
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
