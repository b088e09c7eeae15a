// alerts.<kind>.action in the config: one optional object per alert kind, the action one of the
// containment actions (default log); an unknown kind or action is an error at its field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkConfig, formatIssue } from '../../src/config/load.ts';
import type { ConfigIssue } from '../../src/config/types.ts';
import { testProtocols } from './protocols.ts';

const GOOD = fileURLToPath(new URL('./fixtures/good.yaml', import.meta.url));

function withAlerts(alerts: string): ConfigIssue[] {
  return checkConfig(GOOD, testProtocols, { text: `${readFileSync(GOOD, 'utf8')}\nalerts:\n${alerts}` }).issues.filter((i) => i.severity === 'error');
}

test('alerts: each kind may name an action; a kind without one is only logged', () => {
  const text = `${readFileSync(GOOD, 'utf8')}\nalerts:\n  probing: { action: suspend }\n  cross_zone: { action: kill }\n  programming: {}`;
  const r = checkConfig(GOOD, testProtocols, { text });
  assert.deepEqual(r.issues.filter((i) => i.severity === 'error'), [], r.issues.map(formatIssue).join('\n'));
  const alerts = r.config!.raw.alerts;
  assert.equal(alerts?.probing?.action, 'suspend');
  assert.equal(alerts?.cross_zone?.action, 'kill');
  assert.equal(alerts?.programming?.action, 'log');
  assert.equal(alerts?.new_target?.action ?? 'log', 'log');
});

test('alerts: an unknown kind or action is an error at its field', () => {
  const kind = withAlerts('  probbing: { action: suspend }');
  assert.equal(kind.length, 1, kind.map(formatIssue).join('\n'));
  assert.match(kind[0]!.field, /^alerts/);
  const action = withAlerts('  probing: { action: shutdown }');
  assert.equal(action.length, 1, action.map(formatIssue).join('\n'));
  assert.equal(action[0]!.field, 'alerts.probing.action');
});
