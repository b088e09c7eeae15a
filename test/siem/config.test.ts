// The `siem:` entries: defaults in one place, facility by name or number, mistakes refused with the field named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siemExportSchema, siemSchema } from '../../src/siem/exporter.ts';

const entry = { id: 'soc', host: 'siem.example.org', tls: { ca: '/etc/penstock/siem-ca.pem' } };

test('defaults: port 6514, facility audit (13), batch 500, settle 2 s, enterprise 32473', () => {
  const e = siemExportSchema.parse(entry);
  assert.deepEqual([e.port, e.facility, e.batch, e.settle_ms, e.enterprise_number, e.events], [6514, 13, 500, 2000, 32473, undefined]);
  assert.equal(siemExportSchema.parse({ ...entry, facility: 'local4' }).facility, 20);
  assert.equal(siemExportSchema.parse({ ...entry, facility: 3 }).facility, 3);
});

test('refused: a client certificate without its key, an unknown key, a bad facility, two exports with one id', () => {
  const issues = (v: unknown) => siemSchema.safeParse(v).error?.issues.map((i) => i.path.join('.')) ?? [];
  assert.deepEqual(issues([{ ...entry, tls: { ...entry.tls, cert: '/c.pem' } }]), ['0.tls.key']);
  assert.deepEqual(issues([{ ...entry, colour: 'red' }]), ['0']);
  assert.deepEqual(issues([{ ...entry, facility: 'local9' }]), ['0.facility']);
  assert.deepEqual(issues([{ ...entry, facility: 24 }]), ['0.facility']);
  assert.deepEqual(issues([entry, { ...entry, host: 'other' }]), ['1.id']);
  assert.deepEqual(issues([{ ...entry, id: 'Bad Id' }]), ['0.id']);
  assert.deepEqual(siemSchema.parse(undefined), []);
});
