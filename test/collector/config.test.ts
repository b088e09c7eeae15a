// The collector's own config: strict, every problem with FILE:LINE:COL and field, secrets never quoted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkCollectorConfig, loadCollectorConfig } from '../../src/collector/config.ts';
import { generateSigningKeyPem, NoteSigner } from '../../src/journal/checkpoint.ts';
import { isPenstockError } from '../../src/common/errors.ts';
import { ISSUE_CODES } from '../../src/config/issue-codes.ts';

const vkey = (name: string) => new NoteSigner(name, generateSigningKeyPem()).vkey;

const GOOD = `collector:
  id: central-1
nats:
  servers: [nats://127.0.0.1:4222]
  nkey_seed_file: /etc/penstock-collector/nkey.seed
postgres:
  url: postgres://collector@db.example:5432/evidence
  password_file: /etc/penstock-collector/pg.password
appliances:
  - id: gw-01
    vkey: ${vkey('gw-01')}
siem:
  - { id: soc, host: siem.example, tls: { ca: /etc/penstock-collector/siem-ca.pem } }
`;

test('a good config loads, with the stream defaults of the wire contract', () => {
  const c = loadCollectorConfig('/tmp/collector.yaml', GOOD);
  assert.equal(c.stream.name, 'PENSTOCK_EVIDENCE');
  assert.equal(c.stream.subject_prefix, 'penstock.evidence');
  assert.equal(c.stream.duplicate_window_seconds, 120);
  assert.equal(c.stream.replicas, 1);
  assert.equal(c.appliances[0]!.id, 'gw-01');
  assert.equal(c.siem.length, 1);
  assert.equal(c.siem[0]!.port, 6514, 'the SIEM entries are the gateway\'s siem: schema, defaults included');
});

test('a siem: entry of the collector is checked like the gateway\'s', () => {
  const r = checkCollectorConfig('/tmp/collector.yaml', GOOD.replace('host: siem.example, ', ''));
  assert.ok(r.issues.some((i) => i.field === 'siem[0].host'), r.issues.map((i) => i.message).join('; '));
});

test('unknown keys, a password in the URL and a key of another name: each named at its line, no password echoed', () => {
  const text = `collector:
  id: central-1
  colour: blue
nats:
  servers: [nats://127.0.0.1:4222]
postgres:
  url: postgres://collector:hunter2-secret@db.example/evidence
appliances:
  - id: gw-01
    vkey: ${vkey('gw-02')}
  - id: gw-01
    vkey: ${vkey('gw-01')}
stream:
  replicas: 2
`;
  const { config, issues } = checkCollectorConfig('/tmp/c.yaml', text);
  assert.equal(config, undefined);
  const at = (field: string) => issues.find((i) => i.field === field);
  assert.equal(at('collector.colour')?.line, 3);
  assert.equal(at('collector.colour')?.code, ISSUE_CODES.unknownField);
  assert.equal(at('postgres.url')?.line, 7);
  assert.match(at('postgres.url')!.message, /password_file/);
  assert.equal(at('stream.replicas')?.line, 14);
  assert.ok(!JSON.stringify(issues).includes('hunter2'), 'the password is never quoted');
  // Zod stops at the first failing schema: the cross-checks run on a config that parses.
  const second = checkCollectorConfig('/tmp/c.yaml', text.replace('  colour: blue\n', '').replace('collector:hunter2-secret@', 'collector@').replace('replicas: 2', 'replicas: 3'));
  assert.equal(second.config, undefined);
  const vk = second.issues.find((i) => i.field === 'appliances[0].vkey');
  assert.equal(vk?.line, 9);
  assert.match(vk!.message, /named gw-02, not the appliance id gw-01/);
  const dup = second.issues.find((i) => i.field === 'appliances[1].id');
  assert.equal(dup?.line, 10);
});

test('loadCollectorConfig throws PS_CONFIG_INVALID with the issues; an unreadable file PS_CONFIG_READ', () => {
  assert.throws(() => loadCollectorConfig('/tmp/c.yaml', 'collector: {id: x}\n'), (err) => isPenstockError(err, 'PS_CONFIG_INVALID') && Array.isArray(err.details?.issues));
  assert.throws(() => loadCollectorConfig('/nonexistent/penstock-collector.yaml'), (err) => isPenstockError(err, 'PS_CONFIG_READ'));
});
