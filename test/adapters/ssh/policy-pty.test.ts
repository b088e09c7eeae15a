// An exec that asks for a terminal is allowed only by a rule that says `pty: true`: on a terminal a
// pager or an editor is a shell. Deny rules refuse it either way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, explainRule } from '../../../src/policy/decide.ts';
import { sshRuleSchema } from '../../../src/adapters/ssh/rules.ts';
import type { Action } from '../../../src/policy/types.ts';
import type { RuleConfig } from '../../../src/config/schema.ts';
import { ctx, grant } from '../../policy/fixtures.ts';

function exec(commandLine: string, pty?: true): Action {
  return { target: 'gw-1', verb: 'exec', object: { kind: 'ssh', channel: 'exec', commandLine, ...(pty ? { pty } : {}) } };
}

test('an exec with a terminal needs a rule with pty: true; without one asked, any matching rule allows', () => {
  const c = ctx([grant('G', [{ ssh: { exec: ['systemctl', 'status', '*'] } }, { ssh: { exec: ['less', '*'], pty: true } }, { ssh: { command_line: 'top -n 1', pty: true } }])]);
  assert.equal(decide(exec('systemctl status bridge'), c).effect, 'allow');
  assert.equal(decide(exec('systemctl status bridge', true), c).effect, 'deny');
  const only = decide(exec('systemctl status bridge', true), ctx([grant('G', [{ ssh: { exec: ['systemctl', 'status', '*'] } }])]));
  assert.equal(only.reason, 'function_not_granted');
  assert.match(only.explanation, /pty: true/);
  assert.equal(decide(exec('less /var/log/x', true), c).effect, 'allow');
  assert.equal(decide(exec('less /var/log/x'), c).effect, 'allow');
  assert.equal(decide(exec('top -n 1', true), c).effect, 'allow');
});

test('a deny rule refuses an exec with or without a terminal', () => {
  const c = ctx([grant('G', [{ ssh: { exec: ['vi', '...'], pty: true } }, { ssh: { effect: 'deny', exec: ['vi', '/etc/shadow'] } }])]);
  assert.equal(decide(exec('vi /etc/shadow', true), c).reason, 'rule_denies');
  assert.equal(decide(exec('vi /tmp/notes', true), c).effect, 'allow');
});

test('pty applies to exec and command_line rules only, and shows in the rule\'s description', () => {
  assert.equal(sshRuleSchema.safeParse({ exec: ['less', '*'], pty: true }).success, true);
  assert.equal(sshRuleSchema.safeParse({ shell: true, pty: true }).success, false);
  assert.equal(sshRuleSchema.safeParse({ exec: ['less', '*'], pty: false }).success, false);
  assert.match(explainRule({ ssh: sshRuleSchema.parse({ exec: ['less', '*'], pty: true }) } as RuleConfig), /with a terminal/);
});
