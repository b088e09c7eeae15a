// `penstockctl grants suggest` for SSH: the smallest rules that would have allowed what a principal was
// seen doing. Execs are grouped by shape: the program, the number of words, and every option word
// exactly where it stood (options change what a program does, so they are never generalised). Within
// a group an operand that was always the same word stays literal; one that varied becomes `*` (one
// operand, never an option: argv-pattern.ts). A line with shell metacharacters is allowed only by its
// exact `command_line`. Shells, tunnels and file transfers are granted as seen (sftp: the exact paths).
import { coverageText } from '../../grants/observed.ts';
import type { ObservedAction, SuggestContext, SuggestedRule } from '../types.ts';
import { ANY_OPERAND, OPERAND_TAIL, ANY_TAIL, startsLikeOption } from './argv-pattern.ts';
import type { SshRuleConfig } from './rules.ts';

interface Group {
  rule: SshRuleConfig;
  what: string;
  seen: ObservedAction[];
}

/** Which words of an argv are operands: not the program, not an option (until a literal `--`). */
function operandPositions(argv: readonly string[]): boolean[] {
  let endOfOptions = false;
  return argv.map((w, i) => {
    if (i === 0) return false;
    if (endOfOptions) return true;
    if (w === '--') {
      endOfOptions = true;
      return false;
    }
    return !startsLikeOption(w);
  });
}

/** The shape of an exec: its options and the program in place, its operands as placeholders. */
function shapeOf(argv: readonly string[]): string {
  const operand = operandPositions(argv);
  return JSON.stringify(argv.map((w, i) => (operand[i] ? null : w)));
}

/** The pattern covering argvs of one shape: operands that varied become `*`. */
export function execPattern(argvs: readonly (readonly string[])[]): string[] {
  const first = argvs[0]!;
  const operand = operandPositions(first);
  return first.map((w, i) => {
    // A literal word that reads as a pattern word would mean more than it says: such a position is a wildcard too.
    if (!operand[i]) return w;
    const same = argvs.every((a) => a[i] === w);
    return same && w !== ANY_OPERAND && w !== OPERAND_TAIL && w !== ANY_TAIL ? w : ANY_OPERAND;
  });
}


function strings(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((w) => typeof w === 'string') ? (v as string[]) : undefined;
}

export function suggestSshRules(actions: readonly ObservedAction[], _ctx: SuggestContext): SuggestedRule<SshRuleConfig>[] {
  const groups = new Map<string, Group>();
  const add = (key: string, make: () => Omit<Group, 'seen'>, a: ObservedAction) => {
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { ...make(), seen: [] }));
    g.seen.push(a);
  };
  for (const a of actions) {
    if (a.effect !== 'allowed') continue;
    const o = a.object;
    const pty = o.pty === true;
    switch (o.channel) {
      case 'exec': {
        const argv = strings(o.argv);
        const line = typeof o.command === 'string' ? o.command : undefined;
        if (o.metacharacters === true || !argv || argv.length === 0) {
          if (line === undefined) break;
          add(`line ${pty} ${line}`, () => ({ rule: { effect: 'allow', command_line: line, ...(pty ? { pty: true } : {}) }, what: `exactly the command line ${JSON.stringify(line)}` }), a);
        } else {
          add(`exec ${pty} ${shapeOf(argv)}`, () => ({ rule: { effect: 'allow', exec: [], ...(pty ? { pty: true } : {}) }, what: '' }), a);
        }
        break;
      }
      case 'shell':
        add('shell', () => ({ rule: { effect: 'allow', shell: true }, what: 'an interactive shell' }), a);
        break;
      case 'tunnel':
        if (typeof o.tunnel === 'string') {
          const kind = o.tunnel;
          add(`tunnel ${kind}`, () => ({ rule: { effect: 'allow', tunnel: kind }, what: `${kind} tunnels` }), a);
        }
        break;
      case 'sftp':
        if (typeof o.path === 'string' && (o.direction === 'upload' || o.direction === 'download')) {
          const direction = o.direction;
          add(`sftp ${direction}`, () => ({ rule: { effect: 'allow', sftp: { paths: [], direction } }, what: `${direction}s` }), a);
        }
        break;
    }
  }
  return [...groups.values()].map((g) => {
    if (g.rule.exec) {
      const pattern = execPattern(g.seen.map((a) => strings(a.object.argv)!));
      g.rule.exec = pattern;
      g.what = `exec ${pattern.join(' ')}${pattern.includes(ANY_OPERAND) ? ' (an operand that varied is *)' : ''}`;
    }
    if (g.rule.sftp) {
      g.rule.sftp.paths = [...new Set(g.seen.map((a) => a.object.path as string))].sort();
      g.what += ` of ${g.rule.sftp.paths.join(', ')}`;
    }
    return { rule: g.rule, comment: `${g.what}${g.rule.pty ? ' with a terminal' : ''}: ${coverageText(g.seen)}` };
  });
}
