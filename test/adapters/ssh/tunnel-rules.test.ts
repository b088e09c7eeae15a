// An ssh `tunnel: P` rule may sit in a grant for a target whose protocol is P (that is how an `ssh -L`
// tunnel to it is allowed); any other ssh rule on such a target is still a config error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkConfig } from '../../../src/config/load.ts';
import { testProtocols } from '../../config/protocols.ts';

const GOOD = fileURLToPath(new URL('../../config/fixtures/good.yaml', import.meta.url));
const RULE = '      - modbus: { preset: readonly, points: ["common.*"] }\n';

function issuesWith(extraRule: string) {
  const text = readFileSync(GOOD, 'utf8');
  assert.equal(text.split(RULE).length, 2, 'the fixture has the Modbus grant this test extends');
  const { issues } = checkConfig(GOOD, testProtocols, { text: text.replace(RULE, `${RULE}${extraRule}`), clock: { now: () => Date.parse('2026-11-25T10:00:00Z') } });
  return issues.filter((i) => i.severity === 'error').map((i) => i.field);
}

test('a tunnel rule of the target\'s protocol is accepted on it', () => {
  assert.deepEqual(issuesWith('      - ssh: { tunnel: modbus }\n'), []);
});

test('other ssh rules on that target stay errors: a raw tunnel, a shell', () => {
  for (const rule of ['      - ssh: { tunnel: raw }\n', '      - ssh: { shell: true }\n']) {
    const errors = issuesWith(rule);
    assert.ok(errors.includes('grants[0].rules[1].ssh'), `${rule.trim()}: ${errors.join('; ')}`);
  }
});

test('a tunnel naming no protocol served in tunnels is an error with its code, on the rule\'s tunnel field', () => {
  const text = readFileSync(GOOD, 'utf8');
  for (const carried of ['opcua', 'nosuch']) {
    const { issues } = checkConfig(GOOD, testProtocols, { text: text.replace(RULE, `${RULE}      - ssh: { tunnel: ${carried} }\n`), clock: { now: () => Date.parse('2026-11-25T10:00:00Z') } });
    const coded = issues.filter((i) => i.code === 'E_SSH_TUNNEL_KIND');
    assert.deepEqual(coded.map((i) => [i.field, i.severity]), [['grants[0].rules[1].ssh.tunnel', 'error']], carried);
  }
  assert.deepEqual(issuesWith('      - ssh: { tunnel: modbus }\n'), [], 'a protocol served in tunnels is no such error');
});
