// The push: section of the gateway config: defaults filled in one place, every mistake an error at its
// field with a stable code where it has one (the house style of test/config).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkConfig, formatIssue } from '../../src/config/load.ts';
import { ISSUE_CODES } from '../../src/config/issue-codes.ts';
import type { ConfigIssue } from '../../src/config/types.ts';
import { testProtocols } from '../config/protocols.ts';

const GOOD = fileURLToPath(new URL('../config/fixtures/good.yaml', import.meta.url));

function check(push: string) {
  return checkConfig(GOOD, testProtocols, { text: `${readFileSync(GOOD, 'utf8')}\npush:\n${push}` });
}

function errors(push: string): ConfigIssue[] {
  return check(push).issues.filter((i) => i.severity === 'error');
}

function oneError(push: string, field: string): ConfigIssue {
  const all = errors(push);
  assert.equal(all.length, 1, all.map(formatIssue).join('\n'));
  assert.equal(all[0]!.field, field, formatIssue(all[0]!));
  return all[0]!;
}

test('push: the minimal section gets its defaults; windows, rate and credentials are taken as written', () => {
  const r = check('  servers: [tls://nats-a.central.example:4222, "nats://10.0.0.5"]');
  assert.deepEqual(r.issues.filter((i) => i.severity === 'error'), [], r.issues.map(formatIssue).join('\n'));
  const p = r.config!.raw.push!;
  assert.equal(p.subject_prefix, 'penstock.evidence');
  assert.equal(p.batch_events, 500);
  assert.equal(p.checkpoint_seconds, 5);
  assert.equal(p.stream, undefined);
  const full = check(`  servers: [tls://nats-a:4222]
  stream: PENSTOCK_EVIDENCE
  nkey_seed_file: /etc/penstock/push.nk
  tls: { ca: /etc/penstock/nats-ca.pem }
  max_bytes_per_second: 65536
  windows: ["mon-fri 22:00-06:00", "sat,sun 00:00-24:00"]
  windows_tz: Europe/Berlin
  batch_events: 200`);
  assert.deepEqual(full.issues.filter((i) => i.severity === 'error'), [], full.issues.map(formatIssue).join('\n'));
  assert.deepEqual(full.config!.raw.push!.windows, ['mon-fri 22:00-06:00', 'sat,sun 00:00-24:00']);
});

test('push: each mistake is an error at its field', () => {
  assert.equal(oneError('  servers: [nats://a]\n  sevrers: [nats://b]', 'push.sevrers').code, ISSUE_CODES.unknownField);
  assert.equal(oneError('  stream: S', 'push.servers').code, ISSUE_CODES.missingField);
  oneError('  servers: []', 'push.servers');
  oneError('  servers: [http://nats-a:4222]', 'push.servers[0]');
  // A password in the URL would end up in logs and argv-like places: credentials go in files.
  oneError('  servers: ["nats://gw:hunter2@nats-a:4222"]', 'push.servers[0]');
  oneError('  servers: [nats://a]\n  creds_file: /a.creds\n  nkey_seed_file: /a.nk', 'push.nkey_seed_file');
  assert.equal(oneError('  servers: [nats://a]\n  tls: { cert: /c.pem }', 'push.tls.key').code, ISSUE_CODES.missingField);
  oneError('  servers: [nats://a]\n  windows: ["22:00-26:00"]', 'push.windows[0]');
  assert.equal(oneError('  servers: [nats://a]\n  windows: ["mon 08:00-08:00"]', 'push.windows[0]').code, ISSUE_CODES.windowEmpty);
  oneError('  servers: [nats://a]\n  windows_tz: Mars/Olympus', 'push.windows_tz');
  oneError('  servers: [nats://a]\n  subject_prefix: "penstock.>"', 'push.subject_prefix');
  oneError('  servers: [nats://a]\n  max_bytes_per_second: 10', 'push.max_bytes_per_second');
  assert.equal(oneError('  servers: [nats://a]\n  batch_events: many', 'push.batch_events').code, ISSUE_CODES.wrongType);
});
