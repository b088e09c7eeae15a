// journal.retention.acknowledged_by names the upstreams whose acknowledgement lets events go: each must
// exist in the config, or the journal would wait for it forever and fill.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkConfig, formatIssue } from '../../src/config/load.ts';
import { testProtocols } from './protocols.ts';

const GOOD = fileURLToPath(new URL('./fixtures/good.yaml', import.meta.url));
const clock = { now: () => Date.parse('2026-12-05T10:00:00Z') };

function check(extra: string) {
  const text = `${readFileSync(GOOD, 'utf8').replace(/^journal:.*\n(?:[ ]+.*\n)*/m, '')}\n${extra}`;
  return checkConfig(GOOD, testProtocols, { text, clock }).issues.filter((i) => i.severity === 'error');
}

test('push and a SIEM export may count for retention when configured', () => {
  const issues = check(`journal: { retention: { max_mib: 64, acknowledged_by: [push, "siem:soc"] } }
push: { servers: ["tls://nats.central.example:4222"], tls: { ca: /etc/penstock/nats-ca.pem } }
siem: [{ id: soc, host: siem.example, tls: { ca: /etc/penstock/siem-ca.pem } }]`);
  assert.deepEqual(issues.map(formatIssue), []);
});

test('an upstream that is not configured, or not one, is an error at its place in the list', () => {
  const issues = check(`journal: { retention: { max_mib: 64, acknowledged_by: [pull, push, "siem:soc", "siem:other", witness] } }
siem: [{ id: soc, host: siem.example, tls: { ca: /etc/penstock/siem-ca.pem } }]`);
  const fields = issues.map((i) => i.field);
  assert.ok(fields.includes('journal.retention.acknowledged_by[0]'), `no sync: section: ${issues.map(formatIssue).join('\n')}`);
  assert.ok(fields.includes('journal.retention.acknowledged_by[1]'), 'no push: section');
  assert.ok(!fields.includes('journal.retention.acknowledged_by[2]'), 'siem:soc is configured');
  assert.ok(fields.includes('journal.retention.acknowledged_by[3]'), 'siem:other is not');
  assert.ok(fields.includes('journal.retention.acknowledged_by[4]'), 'witness is no upstream');
});
