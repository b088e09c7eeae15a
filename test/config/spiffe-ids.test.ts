// SPIFFE IDs in the config: a principal's credentials.x509.spiffe_ids (its X.509-SVIDs on every TLS
// door) and a pull API client's spiffe_id. A malformed ID, and one ID claimed by two principals, are
// errors at the field with a stable code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkConfig, formatIssue } from '../../src/config/load.ts';
import type { ConfigIssue } from '../../src/config/types.ts';
import { ISSUE_CODES } from '../../src/config/yaml-issues.ts';
import { testProtocols } from './protocols.ts';

const GOOD = fileURLToPath(new URL('./fixtures/good.yaml', import.meta.url));
const goodText = readFileSync(GOOD, 'utf8');
const clock = { now: () => Date.parse('2026-11-25T10:00:00Z') };
const check = (text: string) => checkConfig(GOOD, testProtocols, { text, clock }).issues;
const errors = (issues: ConfigIssue[]) => issues.filter((i) => i.severity === 'error');
const show = (issues: ConfigIssue[]) => issues.map(formatIssue).join('\n');

/** good.yaml with x509 credentials for alice (principals[0]) and agent-curtail (principals[2]). */
function withIds(alice: string, agent: string, tail = ''): string {
  const text = goodText
    .replace('    purpose: Shift lead\n', `    purpose: Shift lead\n    credentials: { x509: { spiffe_ids: ${alice} } }\n`)
    .replace('    acting_for: work-order:WO-4411\n', `    acting_for: work-order:WO-4411\n    credentials: { x509: { spiffe_ids: ${agent} } }\n`);
  assert.notEqual(text, goodText);
  return text + tail;
}

test('principals with SPIFFE IDs, and a pull client by spiffe_id, are accepted', () => {
  const issues = check(withIds('["spiffe://plant.example/human/alice"]', '["spiffe://plant.example/agent/7", "spiffe://other.example/agent/7"]', `
sync:
  port: 8443
  tls: { cert: /etc/penstock/sync.crt, key: /etc/penstock/sync.key, client_ca: /etc/penstock/pam-ca.crt }
  clients:
    - { name: central-pam, spiffe_id: "spiffe://pam.example/puller", roles: [read, ack] }
`));
  assert.deepEqual(errors(issues), [], show(issues));
});

test('a malformed SPIFFE ID is an error at its list item', () => {
  const issues = check(withIds('["spiffe://Plant.example/human/alice"]', '["spiffe://plant.example/agent/7", "spiffe://plant.example/agent/7?x=1", "https://plant.example/a"]'));
  const at = (field: string) => errors(issues).filter((i) => i.field === field);
  assert.equal(at('principals[0].credentials.x509.spiffe_ids[0]')[0]?.code, ISSUE_CODES.spiffeIdMalformed, show(issues));
  assert.equal(at('principals[2].credentials.x509.spiffe_ids[0]').length, 0, show(issues));
  assert.equal(at('principals[2].credentials.x509.spiffe_ids[1]')[0]?.code, ISSUE_CODES.spiffeIdMalformed, show(issues));
  assert.equal(at('principals[2].credentials.x509.spiffe_ids[2]')[0]?.code, ISSUE_CODES.spiffeIdMalformed, show(issues));
  assert.equal(errors(issues).length, 3, show(issues));
});

test('two principals claiming one SPIFFE ID is an error at the second claim', () => {
  const issues = check(withIds('["spiffe://plant.example/agent/7"]', '["spiffe://plant.example/agent/8", "spiffe://plant.example/agent/7"]'));
  const e = errors(issues);
  assert.equal(e.length, 1, show(issues));
  assert.equal(e[0]!.field, 'principals[2].credentials.x509.spiffe_ids[1]');
  assert.equal(e[0]!.code, ISSUE_CODES.spiffeIdClaimedTwice);
  assert.match(e[0]!.message, /alice/);
});

test('a pull client names exactly one of fingerprint, spiffe_id and subject; its spiffe_id is validated and unique', () => {
  const FP = 'AB:'.repeat(31) + 'CD';
  const issues = check(`${goodText}
sync:
  port: 8443
  tls: { cert: /etc/penstock/sync.crt, key: /etc/penstock/sync.key, client_ca: /etc/penstock/pam-ca.crt }
  clients:
    - { name: a, spiffe_id: "spiffe://pam.example/puller", fingerprint: "${FP}", roles: [read] }
    - { name: b, spiffe_id: "spiffe://pam.example/puller", subject: "CN=b", roles: [read] }
    - { name: c, spiffe_id: "spiffe://pam.example/puller/", roles: [read] }
    - { name: d, spiffe_id: "spiffe://pam.example/auditor", roles: [read] }
    - { name: e, spiffe_id: "spiffe://pam.example/auditor", roles: [read] }
`);
  const at = (field: string) => errors(issues).filter((i) => i.field === field);
  assert.match(at('sync.clients[0]')[0]?.message ?? '', /exactly one of fingerprint, spiffe_id or subject/, show(issues));
  assert.match(at('sync.clients[1]')[0]?.message ?? '', /exactly one of fingerprint, spiffe_id or subject/, show(issues));
  assert.equal(at('sync.clients[2].spiffe_id')[0]?.code, ISSUE_CODES.spiffeIdMalformed, show(issues));
  assert.match(at('sync.clients[4]')[0]?.message ?? '', /same spiffe_id as clients\[3\]/, show(issues));
});
