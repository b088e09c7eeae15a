import { test } from 'node:test';
import assert from 'node:assert/strict';
import { admitsAnyOption, argvMismatch, matchArgvPattern } from '../../../src/adapters/ssh/argv-pattern.ts';

const allows = (pattern: string[], argv: string[]) => matchArgvPattern(pattern, argv, 'contain');
const denyHits = (pattern: string[], argv: string[]) => matchArgvPattern(pattern, argv, 'overlap');

test('* is one operand: never an option, never --, never - alone', () => {
  const p = ['systemctl', 'status', '*'];
  assert.ok(allows(p, ['systemctl', 'status', 'bridge']));
  assert.ok(allows(p, ['systemctl', 'status', 'a-b']), 'a dash inside a word is fine');
  assert.ok(allows(p, ['systemctl', 'status', '']), 'an empty operand is an operand');
  for (const opt of ['--host=rtu@127.0.0.1:22201', '-H', '-Hrtu@10.0.0.1', '--', '-', '--help']) {
    assert.equal(allows(p, ['systemctl', 'status', opt]), false, opt);
  }
  assert.match(argvMismatch(p, ['systemctl', 'status', '--host=x'], 'contain')!, /is an option/);
});

test('... is any number of operands, and refuses an option anywhere in the tail', () => {
  const p = ['journalctl', '...'];
  assert.ok(allows(p, ['journalctl']));
  assert.ok(allows(p, ['journalctl', 'a', 'b', 'c']));
  assert.equal(allows(p, ['journalctl', 'a', '-u', 'b']), false);
  assert.equal(allows(p, ['journalctl', 'a', 'b', '--output=x']), false, 'the last word too');
  assert.equal(allows(['echo', '...'], ['echo', '-e', 'x']), false);
});

test('options named explicitly: literal, separate value, --name=* value', () => {
  assert.ok(allows(['systemctl', '--no-pager', 'status', '*'], ['systemctl', '--no-pager', 'status', 'bridge']));
  assert.equal(allows(['systemctl', '--no-pager', 'status', '*'], ['systemctl', '--no-pag', 'status', 'bridge']), false, 'no getopt abbreviations');
  const n = ['journalctl', '-u', '*', '-n', '*'];
  assert.ok(allows(n, ['journalctl', '-u', 'bridge', '-n', '50']));
  assert.equal(allows(n, ['journalctl', '-u', 'bridge', '-n', '--file=/etc/shadow']), false, "an option's value slot still refuses an option");
  const lines = ['journalctl', '--lines=*'];
  assert.ok(allows(lines, ['journalctl', '--lines=50']));
  assert.ok(allows(lines, ['journalctl', '--lines=']), 'an empty value');
  assert.ok(allows(lines, ['journalctl', '--lines=-5']), 'the value is in the same word: it cannot be another option');
  assert.equal(allows(lines, ['journalctl', '--lines']), false);
  assert.equal(allows(lines, ['journalctl', '--linesx=5']), false);
  assert.equal(allows(lines, ['journalctl', '--lines5']), false);
  assert.equal(allows(['journalctl', '--lines=*x'], ['journalctl', '--lines=*x']), true, 'a * not at the end is literal');
  assert.equal(allows(['journalctl', '--lines=*x'], ['journalctl', '--lines=5x']), false);
  assert.equal(allows(['ls', '*.log'], ['ls', 'a.log']), false, 'a * inside an operand is literal');
});

test('-* and -... are the explicit opt-ins that admit options', () => {
  assert.ok(allows(['ls', '-*', '*'], ['ls', '-la', 'x']));
  assert.equal(allows(['ls', '-*', '*'], ['ls', 'x', 'y']), false, '-* wants an option');
  assert.ok(allows(['journalctl', '-...'], ['journalctl', '-u', 'x', '--since=today']));
  assert.ok(allows(['journalctl', '-...'], ['journalctl']));
  assert.ok(admitsAnyOption(['ls', '-*']));
  assert.ok(admitsAnyOption(['ls', '-...']));
  assert.equal(admitsAnyOption(['ls', '*', '...', '--lines=*']), false);
});

test('after a literal -- in the pattern the words are operands, even with a leading dash', () => {
  const p = ['rm', '--', '*'];
  assert.ok(allows(p, ['rm', '--', '-rf']));
  assert.ok(allows(['cat', '--', '...'], ['cat', '--', '-a', '--b']));
  assert.equal(allows(p, ['rm', '-rf']), false, 'the -- itself must be there');
  assert.equal(allows(['rm', '*', '*'], ['rm', '--', '-rf']), false, 'a client-sent -- is refused by *');
});

test('- alone is allowed only where a rule writes it', () => {
  assert.ok(allows(['cat', '-'], ['cat', '-']));
  assert.equal(allows(['cat', '*'], ['cat', '-']), false);
});

test('deny rules (overlap) match options too: adding an option cannot sidestep them', () => {
  assert.ok(denyHits(['rm', '...'], ['rm', '-rf', '/']));
  assert.ok(denyHits(['rm', '*'], ['rm', '-rf']));
  assert.ok(denyHits(['rm', '-*', '*'], ['rm', 'x', 'y']), '-* in a deny rule is any word');
  assert.equal(denyHits(['rm', '*'], ['rm', 'a', 'b']), false, 'the word count still holds');
});

test('word counts: fixed patterns need exactly their length, tails at least the fixed part', () => {
  assert.equal(allows(['ls', '*'], ['ls']), false);
  assert.equal(allows(['ls', '*'], ['ls', 'a', 'b']), false);
  assert.equal(allows(['ls', 'a', '...'], ['ls']), false);
  assert.ok(allows(['ls', 'a', '...'], ['ls', 'a']));
});
