// POSIX shell word splitting for SSH exec requests. sshd hands an exec command line to the user's
// shell (`$SHELL -c LINE`), so policy must see the argv the shell would build — never match a regex
// over the raw string. When the shell would do more than split words (run a second command,
// redirect, substitute, expand a glob or a tilde), the line is flagged: `metacharacters` lines are
// refused unless a rule names the exact line (`command_line`).
//
// Flagged when unquoted: ; | & < > ( ) newline (separators, kept as one-character tokens so a deny
// pattern still sees the words around them), $ and ` (expansion), and — beyond the classic list,
// because the shell would change the argv — glob characters * ? [ and {, and ~ or # at the start
// of a word (tilde expansion, comment). Inside double quotes, $ and ` are flagged (they still expand).

export type ParsedCommandLine = { argv: string[]; metacharacters: boolean } | { error: string };

const SEPARATORS = new Set([';', '|', '&', '<', '>', '(', ')', '\n']);
const EXPANDERS = new Set(['$', '`', '*', '?', '[', '{']);
const WORD_START_EXPANDERS = new Set(['~', '#']);
/** Characters a backslash escapes inside double quotes (POSIX 2.2.3); before any other, it stays. */
const DQUOTE_ESCAPABLE = new Set(['$', '`', '"', '\\', '\n']);

export function parseCommandLine(line: string): ParsedCommandLine {
  // No shell argument can hold NUL; a line with one is not what any shell would run.
  const nul = line.indexOf('\0');
  if (nul >= 0) return { error: `NUL character at offset ${nul}` };
  const argv: string[] = [];
  let metacharacters = false;
  let word = '';
  let inWord = false; // distinguishes an empty quoted word ('') from no word at all
  let i = 0;
  let firstWordAt = -1; // where the first word starts in the line, as typed
  const endWord = (): void => {
    if (inWord) {
      // The shell reads an unquoted reserved word (`if`, `time`, `!`) or assignment (`A=1 cmd`) in first
      // place as syntax, not as the program: policy would see another argv than the one that runs.
      if (argv.length === 0 && firstWordAt >= 0 && isShellSyntaxFirstWord(line.slice(firstWordAt, i))) metacharacters = true;
      argv.push(word);
    }
    word = '';
    inWord = false;
  };

  while (i < line.length) {
    const c = line[i]!;
    if (argv.length === 0 && firstWordAt < 0 && c !== ' ' && c !== '\t') firstWordAt = i;
    if (c === ' ' || c === '\t') {
      endWord();
      i++;
    } else if (c === "'") {
      const close = line.indexOf("'", i + 1);
      if (close < 0) return { error: `unterminated single quote at offset ${i}` };
      word += line.slice(i + 1, close);
      inWord = true;
      i = close + 1;
    } else if (c === '"') {
      inWord = true;
      i++;
      let closed = false;
      while (i < line.length) {
        const d = line[i]!;
        if (d === '"') {
          closed = true;
          i++;
          break;
        }
        if (d === '\\' && i + 1 < line.length && DQUOTE_ESCAPABLE.has(line[i + 1]!)) {
          const e = line[i + 1]!;
          if (e !== '\n') word += e; // backslash-newline is a line continuation: both vanish
          i += 2;
          continue;
        }
        if (d === '$' || d === '`') metacharacters = true;
        word += d;
        i++;
      }
      if (!closed) return { error: 'unterminated double quote' };
    } else if (c === '\\') {
      if (i + 1 >= line.length) return { error: 'trailing backslash' };
      const e = line[i + 1]!;
      if (e !== '\n') {
        word += e;
        inWord = true;
      }
      i += 2;
    } else if (SEPARATORS.has(c)) {
      metacharacters = true;
      endWord();
      argv.push(c);
      i++;
    } else {
      if (EXPANDERS.has(c) || (!inWord && WORD_START_EXPANDERS.has(c))) metacharacters = true;
      word += c;
      inWord = true;
      i++;
    }
  }
  endWord();
  return { argv, metacharacters };
}

/** A first word, as typed, that the shell takes for syntax: an unquoted reserved word, or `NAME=` (an assignment). */
function isShellSyntaxFirstWord(raw: string): boolean {
  return RESERVED_FIRST_WORDS.has(raw) || /^[A-Za-z_][A-Za-z0-9_]*=/.test(raw);
}

/**
 * POSIX single-quote a word unless it needs none: the shell turns `argv.map(shellQuote).join(' ')`
 * back into exactly `argv` (parseCommandLine does too, with no metacharacters), whatever the words
 * hold — `$(id)`, `;`, quotes, newlines, globs. Only NUL cannot be said (no argument can hold it).
 */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : singleQuote(word);
}

/** `'word'`, each `'` inside written `'\''`: the shell reads every character as itself. */
function singleQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * Words the shell reads as syntax, not as a command, when they come first and unquoted (POSIX reserved
 * words, and those of bash and ksh); a first word holding `=` would be a variable assignment.
 */
const RESERVED_FIRST_WORDS = new Set(['!', '{', '}', 'case', 'do', 'done', 'elif', 'else', 'esac', 'fi', 'for', 'function', 'if', 'in', 'select', 'then', 'time', 'until', 'while', '[[', ']]', 'coproc']);

/**
 * The command line that makes the target's shell (`$SHELL -c LINE`) run exactly `argv`: every word
 * quoted where the shell would read it as more than its characters, and the first word also where the
 * shell would take it for syntax (`if`, `time`) or an assignment (`A=1`). parseCommandLine gives `argv`
 * back, without metacharacters.
 */
export function commandLineOf(argv: readonly string[]): string {
  return argv.map((w, i) => (i === 0 && (RESERVED_FIRST_WORDS.has(w) || w.includes('=')) ? singleQuote(w) : shellQuote(w))).join(' ');
}
