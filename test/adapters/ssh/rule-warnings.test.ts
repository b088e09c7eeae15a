// Config-check warnings for SSH exec rules: matched by code, on the rule's own field and line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkConfig } from '../../../src/config/load.ts';
import { SSH_RULE_WARNINGS, sshRuleWarnings } from '../../../src/adapters/ssh/rule-warnings.ts';
import { testProtocols } from '../../config/protocols.ts';

const GOOD = fileURLToPath(new URL('../../config/fixtures/good.yaml', import.meta.url));
const RULE = '      - ssh: { exec: [systemctl, status, "*"] }';
const clock = { now: () => Date.parse('2026-11-25T10:00:00Z') };

/** good.yaml with its one SSH rule replaced by `rules` (YAML flow maps, one per line). */
function withSshRules(rules: string[]) {
  const text = readFileSync(GOOD, 'utf8');
  assert.equal(text.split(RULE).length, 2);
  const out = text.replace(RULE, rules.map((r) => `      - ssh: ${r}`).join('\n'));
  return { text: out, result: checkConfig(GOOD, testProtocols, { text: out, clock }) };
}

const codes = (rule: Record<string, unknown>) => sshRuleWarnings(rule).map((w) => w.code).sort();

test('a wildcard that admits options is warned at config check, with its code, field and line', () => {
  const { text, result } = withSshRules(['{ exec: [systemctl, status, "*"] }', '{ exec: [ls, "-*", "*"] }', '{ exec: [journalctl, "-..."] }', '{ effect: deny, exec: [rm, "-..."] }']);
  assert.ok(result.config, 'warnings do not stop the config');
  const w = result.issues.filter((i) => i.severity === 'warning');
  assert.deepEqual(w.map((i) => [i.field, i.code]), [
    ['grants[2].rules[1].ssh.exec', 'W_SSH_EXEC_ANY_OPTION'],
    ['grants[2].rules[2].ssh.exec', 'W_SSH_EXEC_ANY_OPTION'],
    // journalctl with any option also reaches other machines (--host, -M)
    ['grants[2].rules[2].ssh.exec', 'W_SSH_EXEC_SHELL_ESCAPE'],
  ]);
  assert.equal(w[0]!.line, text.split('\n').findIndex((l) => l.includes('[ls, "-*"')) + 1);
});

test('operand-only patterns and named options are not warned', () => {
  assert.deepEqual(codes({ exec: ['systemctl', 'status', '*'] }), []);
  assert.deepEqual(codes({ exec: ['journalctl', '--no-pager', '-u', '*', '--lines=*'] }), []);
  assert.deepEqual(codes({ exec: ['find', '/var/log', '-name', '*'] }), [], 'find without open options cannot reach -exec');
  assert.deepEqual(codes({ exec: ['tar', '-czf', '*', '...'] }), []);
  assert.deepEqual(codes({ exec: ['git', 'log', '*'] }), []);
  assert.deepEqual(codes({ effect: 'deny', exec: ['vi', '-...'], pty: true }), [], 'a deny rule grants nothing');
});

test('programs that reach a shell are warned with a pty or with open options', () => {
  assert.deepEqual(codes({ exec: ['systemctl', 'status', '*'], pty: true }), ['W_SSH_EXEC_SHELL_ESCAPE'], 'the pager');
  assert.deepEqual(codes({ exec: ['systemctl', '--no-pager', 'status', '*'], pty: true }), [], '--no-pager: no pager');
  assert.deepEqual(codes({ exec: ['journalctl', '-u', 'bridge'], pty: true }), ['W_SSH_EXEC_SHELL_ESCAPE']);
  assert.deepEqual(codes({ exec: ['less', '/var/log/syslog'], pty: true }), ['W_SSH_EXEC_SHELL_ESCAPE']);
  assert.deepEqual(codes({ exec: ['less', '/var/log/syslog'] }), [], 'less without a terminal pages nothing');
  assert.deepEqual(codes({ exec: ['/usr/bin/man', '*'], pty: true }), ['W_SSH_EXEC_SHELL_ESCAPE']);
  assert.deepEqual(codes({ exec: ['git', '--no-pager', 'log'], pty: true }), []);
  assert.deepEqual(codes({ exec: ['git', 'log'], pty: true }), ['W_SSH_EXEC_SHELL_ESCAPE']);
  assert.deepEqual(codes({ command_line: 'more /etc/motd', pty: true }), ['W_SSH_EXEC_SHELL_ESCAPE'], 'command_line rules too');
  assert.deepEqual(codes({ exec: ['tar', '-...'] }), ['W_SSH_EXEC_ANY_OPTION', 'W_SSH_EXEC_SHELL_ESCAPE'], 'tar --to-command');
  assert.deepEqual(codes({ exec: ['tar', '*', '...'] }), ['W_SSH_EXEC_SHELL_ESCAPE'], 'tar xIf CMD: old-style options need no dash');
  assert.deepEqual(codes({ exec: ['find', '/var', '-*', '*'] }), ['W_SSH_EXEC_ANY_OPTION', 'W_SSH_EXEC_SHELL_ESCAPE'], 'find -exec');
  assert.deepEqual(codes({ exec: ['rsync', '-...'] }), ['W_SSH_EXEC_ANY_OPTION', 'W_SSH_EXEC_SHELL_ESCAPE']);
  assert.deepEqual(codes({ exec: ['ssh', '-*', '*'] }), ['W_SSH_EXEC_ANY_OPTION', 'W_SSH_EXEC_SHELL_ESCAPE']);
  assert.deepEqual(codes({ exec: ['scp', '-...'] }), ['W_SSH_EXEC_ANY_OPTION', 'W_SSH_EXEC_SHELL_ESCAPE']);
});

test('editors and command-reading programs are warned even without a pty: they read commands from stdin', () => {
  for (const exec of [['vi', '/etc/motd'], ['ed', '/etc/motd'], ['vim', '*'], ['sftp', 'backup'], ['sqlite3', '/var/db/x']]) {
    assert.deepEqual(codes({ exec }), ['W_SSH_EXEC_SHELL_ESCAPE'], exec.join(' '));
  }
  assert.deepEqual(codes({ exec: ['nano', '/etc/motd'] }), [], 'nano needs a terminal');
  assert.deepEqual(codes({ exec: ['nano', '/etc/motd'], pty: true }), ['W_SSH_EXEC_SHELL_ESCAPE']);
});

test('interpreters and wrappers with a free argument, or a wildcard program, allow everything', () => {
  assert.deepEqual(codes({ exec: ['bash', '-c', '*'] }), ['W_SSH_EXEC_INTERPRETER']);
  assert.deepEqual(codes({ exec: ['awk', '*', '*'] }), ['W_SSH_EXEC_INTERPRETER'], 'awk system()');
  assert.deepEqual(codes({ exec: ['sed', '*', '/etc/motd'] }), ['W_SSH_EXEC_INTERPRETER'], "GNU sed's e command");
  assert.deepEqual(codes({ exec: ['*', '...'] }), ['W_SSH_EXEC_ANY_PROGRAM']);
  assert.deepEqual(codes({ exec: ['bash', '/opt/check.sh'] }), [], 'a named script is the site\'s choice');
  assert.deepEqual(codes({ exec: ['env', '-...'] }), ['W_SSH_EXEC_ANY_OPTION', 'W_SSH_EXEC_INTERPRETER'], 'one shell warning, not two');
});

test('every warning code is documented in the configuration reference', () => {
  const reference = readFileSync(fileURLToPath(new URL('../../../docs/configuration.md', import.meta.url)), 'utf8');
  for (const code of Object.keys(SSH_RULE_WARNINGS)) assert.ok(reference.includes(`\`${code}\``), `${code} is not in docs/configuration.md`);
});
