import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommandLine } from '../../../src/adapters/ssh/argv.ts';

const cases: [string, string[], boolean][] = [
  ['ls -l /tmp', ['ls', '-l', '/tmp'], false],
  ['  ls\t -l  ', ['ls', '-l'], false],
  ['', [], false],
  ["echo 'a b' \"c d\"", ['echo', 'a b', 'c d'], false],
  ["echo ''", ['echo', ''], false],
  ['echo ""x', ['echo', 'x'], false],
  ["echo 'it''s'", ['echo', 'its'], false],
  ["echo '$HOME;|'", ['echo', '$HOME;|'], false],
  ['echo "a\\"b" "c\\\\d" "e\\$f" "g\\`h" "i\\xj"', ['echo', 'a"b', 'c\\d', 'e$f', 'g`h', 'i\\xj'], false],
  ['echo a\\ b \\;', ['echo', 'a b', ';'], false],
  ['echo a\\\nb', ['echo', 'ab'], false],
  ['echo "a\\\nb"', ['echo', 'ab'], false],
  ['a;b', ['a', ';', 'b'], true],
  ['a | b', ['a', '|', 'b'], true],
  ['a && b', ['a', '&', '&', 'b'], true],
  ['a > f', ['a', '>', 'f'], true],
  ['a < f', ['a', '<', 'f'], true],
  ['(a)', ['(', 'a', ')'], true],
  ['a\nb', ['a', '\n', 'b'], true],
  ['echo $HOME', ['echo', '$HOME'], true],
  ['echo `id`', ['echo', '`id`'], true],
  ['echo "$HOME"', ['echo', '$HOME'], true],
  ['echo "`id`"', ['echo', '`id`'], true],
  ['ls *.log', ['ls', '*.log'], true],
  ['ls a?', ['ls', 'a?'], true],
  ['ls [ab]', ['ls', '[ab]'], true],
  ['echo {a,b}', ['echo', '{a,b}'], true],
  ['cat ~root/x', ['cat', '~root/x'], true],
  ['ls # comment', ['ls', '#', 'comment'], true],
  ['echo a#b a~b', ['echo', 'a#b', 'a~b'], false],
  ["ls '*.log' \"~\" \\#", ['ls', '*.log', '~', '#'], false],
];

test('POSIX quoting and metacharacter flags', () => {
  for (const [line, argv, meta] of cases) {
    assert.deepEqual(parseCommandLine(line), { argv, metacharacters: meta }, JSON.stringify(line));
  }
});

test('unparseable lines are errors, not guesses', () => {
  for (const line of ["echo 'a", 'echo "a', 'echo a\\', 'echo "a\\"', 'a\0b', "'\0'"]) {
    const r = parseCommandLine(line);
    assert.ok('error' in r, JSON.stringify(line));
  }
});

test('a first word the shell reads as syntax (a reserved word, an assignment) counts as a metacharacter; quoted, it is the program', async () => {
  for (const line of ['A=1 ls', 'PATH=/tmp x --version', 'LD_PRELOAD=/tmp/e.so ls', 'time ls', '! ls', 'if true', '{ ls', 'A="x y" ls', '  B=2 ls']) {
    const p = parseCommandLine(line);
    assert.ok(!('error' in p) && p.metacharacters, line);
  }
  for (const line of ["'A=1' ls", '"time" ls', '\\!x', 'ls A=1', 'ls time', '=x ls', '1A=2 ls', 'a-b=1 ls']) {
    const p = parseCommandLine(line);
    assert.ok(!('error' in p) && !p.metacharacters, line);
  }
  // What the shell does with the first set: not run a program called "A=1".
  const { execFileSync } = await import('node:child_process');
  assert.equal(execFileSync('/bin/sh', ['-c', 'A=1 echo ran'], { encoding: 'utf8' }), 'ran\n');
});
