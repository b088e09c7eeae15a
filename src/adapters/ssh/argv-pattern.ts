// The argv pattern language of SSH `exec` rules. A pattern is a list of words, matched position by
// position against the argv the shell would build (argv.ts):
//
//   literal       matches itself, options included: `--no-pager`, `-n`, `status`
//   *             one operand: any word that does not start with `-` (so never `-x`, `--x`, `--` or `-`)
//   --NAME=*      that option with any value in the same word (`--lines=50`); also `-N=*`
//   -*            any one option (a word starting with `-`): an explicit opt-in, warned at config check
//   ...           (last word only) any number of operands, none starting with `-`
//   -...          (last word only) any tail, options included: an explicit opt-in, warned at config check
//
// Why operands only: options change what an allowed program does and where it goes
// (`systemctl status --host=…` makes the target ssh to a host the vendor picks; `find -exec`,
// `tar --to-command`, `less` with `-o`…). An option is allowed when a rule names it.
//
// `--` in a pattern is a literal. Once it has matched, the words after it are operands to any program
// that parses its options with getopt, so the wildcards after it admit words starting with `-` too
// (`[rm, --, "*"]` removes a file called `-rf`). A `--` in the argv where the pattern has `*` is refused
// like any other word starting with `-`. `-` alone (stdin for many programs) is written literally.
//
// Deny rules match in `overlap` mode: every wildcard admits any word, options included, so a deny rule
// cannot be sidestepped by adding an option.
import type { MatchMode } from '../../policy/matcher.ts';

export const ANY_OPERAND = '*';
export const ANY_OPTION = '-*';
export const OPERAND_TAIL = '...';
export const ANY_TAIL = '-...';

/** Whether getopt would read the word as an option (or an option group, or `--`, or stdin `-`). */
export function startsLikeOption(word: string): boolean {
  return word.startsWith('-');
}

/** `--lines=*` → `--lines=`; undefined for any other word. */
function optionValuePrefix(word: string): string | undefined {
  if (!word.startsWith('-') || !word.endsWith('=*') || word.length < 4) return undefined;
  const prefix = word.slice(0, -1);
  return prefix.includes('*') ? undefined : prefix;
}

/** Whether a pattern's wildcards let a client add options the rule does not name. */
export function admitsAnyOption(pattern: readonly string[]): boolean {
  return pattern.some((w) => w === ANY_OPTION || w === ANY_TAIL);
}

/** Whether the pattern leaves any word to the client (a wildcard of any kind). */
export function hasWildcard(pattern: readonly string[]): boolean {
  return pattern.some((w) => w === ANY_OPERAND || w === ANY_OPTION || w === OPERAND_TAIL || w === ANY_TAIL || optionValuePrefix(w) !== undefined);
}

/** Why `argv` does not match `pattern` (undefined when it does). */
export function argvMismatch(pattern: readonly string[], argv: readonly string[], mode: MatchMode): string | undefined {
  const last = pattern[pattern.length - 1];
  const tail = last === OPERAND_TAIL || last === ANY_TAIL ? last : undefined;
  const fixed = tail ? pattern.slice(0, -1) : pattern;
  if (tail ? argv.length < fixed.length : argv.length !== fixed.length) {
    return `${argv.length} words where the pattern takes ${tail ? `at least ${fixed.length}` : fixed.length}`;
  }
  const broad = mode === 'overlap';
  let endOfOptions = false;
  const operandOk = (arg: string) => broad || endOfOptions || !startsLikeOption(arg);
  for (let i = 0; i < fixed.length; i++) {
    const w = fixed[i]!;
    const arg = argv[i]!;
    if (w === ANY_OPERAND) {
      if (!operandOk(arg)) return `word ${i} (${JSON.stringify(arg)}) is an option, and * admits operands only; a rule must name the option`;
    } else if (w === ANY_OPTION) {
      if (!broad && !startsLikeOption(arg)) return `word ${i} (${JSON.stringify(arg)}) is not an option`;
    } else {
      const prefix = optionValuePrefix(w);
      if (prefix !== undefined ? !arg.startsWith(prefix) : arg !== w) return `word ${i} (${JSON.stringify(arg)}) is not ${JSON.stringify(w)}`;
      if (w === '--') endOfOptions = true;
    }
  }
  if (tail === OPERAND_TAIL) {
    for (let i = fixed.length; i < argv.length; i++) {
      if (!operandOk(argv[i]!)) return `word ${i} (${JSON.stringify(argv[i])}) is an option, and ... admits operands only; a rule must name the option`;
    }
  }
  return undefined;
}

export function matchArgvPattern(pattern: readonly string[], argv: readonly string[], mode: MatchMode): boolean {
  return argvMismatch(pattern, argv, mode) === undefined;
}
