// sync.clients in the config: required with sync (a certificate under client_ca is no authorisation by
// itself), each client by fingerprint or subject with roles, a witness key exactly with the cosign role.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkConfig, formatIssue } from '../../src/config/load.ts';
import type { ConfigIssue } from '../../src/config/types.ts';
import { ISSUE_CODES } from '../../src/config/yaml-issues.ts';
import { testSigner } from '../sync/memory-reader.ts';
import { testProtocols } from './protocols.ts';

const GOOD = fileURLToPath(new URL('./fixtures/good.yaml', import.meta.url));
const clock = { now: () => Date.parse('2026-11-25T10:00:00Z') };
const FP = 'AB:'.repeat(31) + 'CD';
const WITNESS = testSigner('witness.pam.example').vkey;

function withSync(clients: string): ConfigIssue[] {
  const text = `${readFileSync(GOOD, 'utf8')}
sync:
  port: 8443
  tls: { cert: /etc/penstock/sync.crt, key: /etc/penstock/sync.key, client_ca: /etc/penstock/pam-ca.crt }
${clients}`;
  return checkConfig(GOOD, testProtocols, { text, clock }).issues;
}

const at = (issues: ConfigIssue[], field: string, severity: ConfigIssue['severity'] = 'error') => issues.filter((i) => i.field === field && i.severity === severity);
const show = (issues: ConfigIssue[]) => issues.map(formatIssue).join('\n');

test('sync without clients is refused, naming the field', () => {
  const issues = withSync('');
  const e = at(issues, 'sync.clients');
  assert.equal(e.length, 1, show(issues));
  assert.equal(e[0]!.code, ISSUE_CODES.missingField);
});

test('clients by fingerprint and by subject, with roles and a witness key, are accepted', () => {
  const issues = withSync(`  clients:
    - { name: central-pam, fingerprint: "sha256:${FP}", roles: [read, ack] }
    - { name: auditor, subject: "CN=auditor, O=Plant 1", roles: [read] }
    - { name: witness-1, fingerprint: "${FP.replaceAll(':', '').toLowerCase().replace(/^ab/, 'ac')}", roles: [cosign], witness_key: "${WITNESS}" }`);
  assert.deepEqual(issues.filter((i) => i.severity === 'error'), [], show(issues));
  assert.deepEqual(issues.filter((i) => i.severity === 'warning'), [], show(issues));
});

test('malformed clients are errors at the field', () => {
  const issues = withSync(`  clients:
    - { name: a, roles: [read] }
    - { name: b, fingerprint: "${FP}", subject: "CN=b", roles: [read] }
    - { name: c, fingerprint: "AB:CD", roles: [read] }
    - { name: d, subject: "central-pam", roles: [read] }
    - { name: e, fingerprint: "${FP}", roles: [cosign] }
    - { name: f, subject: "CN=f", roles: [read], witness_key: "${WITNESS}" }
    - { name: g, subject: "CN=g", roles: [cosign], witness_key: "w+00000000+AAAA" }
    - { name: h, subject: "CN=h", roles: [write] }
    - { name: a, subject: "CN=i", roles: [] }`);
  assert.equal(at(issues, 'sync.clients[0]').length, 1, show(issues));
  assert.equal(at(issues, 'sync.clients[1]').length, 1, show(issues));
  assert.equal(at(issues, 'sync.clients[2].fingerprint').length, 1, show(issues));
  assert.equal(at(issues, 'sync.clients[3].subject').length, 1, show(issues));
  assert.equal(at(issues, 'sync.clients[4].witness_key').length, 1, show(issues));
  assert.equal(at(issues, 'sync.clients[5].witness_key').length, 1, show(issues));
  assert.equal(at(issues, 'sync.clients[6].witness_key').length, 1, show(issues));
  assert.ok(issues.some((i) => i.field.startsWith('sync.clients[7].roles')), show(issues));
  assert.ok(issues.some((i) => i.field.startsWith('sync.clients[8]')), show(issues));
});

test('two entries for one certificate or one name are errors', () => {
  const issues = withSync(`  clients:
    - { name: one, fingerprint: "${FP}", roles: [read] }
    - { name: two, fingerprint: "sha256:${FP.replaceAll(':', '').toLowerCase()}", roles: [ack] }
    - { name: one, subject: "CN=x", roles: [read] }`);
  assert.match(at(issues, 'sync.clients[1]')[0]?.message ?? '', /same fingerprint as clients\[0\]/, show(issues));
  assert.match(at(issues, 'sync.clients[2]')[0]?.message ?? '', /same name as clients\[0\]/, show(issues));
});

test('a client named by subject with the ack role is a warning (use its fingerprint)', () => {
  const issues = withSync(`  clients:
    - { name: central-pam, subject: "CN=central-pam", roles: [read, ack] }`);
  assert.deepEqual(issues.filter((i) => i.severity === 'error'), [], show(issues));
  const w = at(issues, 'sync.clients[0].subject', 'warning');
  assert.equal(w.length, 1, show(issues));
  assert.doesNotMatch(w[0]!.message, /central-pam/, 'the warning quotes no value of the file');
});
