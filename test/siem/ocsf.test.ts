// The OCSF mapping: every journal event name has a row (none silently dropped or left to the fallback),
// each record is well formed (type_uid, metadata.uid, the Penstock code kept), the docs table is the
// table the code uses, and the door decides the class of an action.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EVENT_CODES } from '../../src/journal/codes.ts';
import type { StoredEvent } from '../../src/journal/event.ts';
import { protocols } from '../../src/adapters/registry.ts';
import { SHARED_RULES, OCSF_VERSION, classify, mappingTableMarkdown, ruleFor, toOcsf } from '../../src/siem/ocsf.ts';

const KNOWN_CLASSES = new Set([0, 2004, 3002, 3003, 3004, 4007, 6002, 6003]);

function event(name: string, extra: Partial<StoredEvent> = {}): StoredEvent {
  return { seq: 7, time: '2026-12-05T10:00:00.123Z', mono: '1', code: EVENT_CODES[name] ?? 'PS9999I', event: name as StoredEvent['event'], appliance: 'gw-1', ...extra };
}

test('every event name in codes.ts has its own mapping row, and no row names an event that does not exist', () => {
  const names = Object.keys(EVENT_CODES);
  assert.ok(names.length > 40);
  for (const n of names) assert.ok(ruleFor(n, EVENT_CODES[n]!), `${n} has no OCSF mapping rule`);
  const codes = new Set(Object.values(EVENT_CODES));
  for (const c of Object.keys(SHARED_RULES)) assert.ok(codes.has(c), `shared rule ${c} names no journal event code`);
  for (const m of protocols.values()) for (const n of Object.keys(m.ocsf?.events ?? {})) assert.ok(Object.hasOwn(m.events ?? {}, n), `${m.name}'s OCSF rule ${n} names none of its events`);
});

test('each event becomes a well-formed record of a known class, code and sequence kept', () => {
  for (const [name, code] of Object.entries(EVENT_CODES)) {
    const r = toOcsf(event(name, { principal: 'p', session: 's1' }));
    assert.ok(KNOWN_CLASSES.has(r.class_uid), `${name}: class ${r.class_uid}`);
    if (name !== 'checkpoint.signed') assert.notEqual(r.class_uid, 0, `${name} falls back to Base Event`);
    assert.equal(r.type_uid, r.class_uid * 100 + r.activity_id, name);
    assert.equal(r.metadata.uid, 'gw-1:7');
    assert.equal(r.metadata.event_code, code);
    assert.equal(r.metadata.version, OCSF_VERSION);
    assert.equal(r.time, Date.parse('2026-12-05T10:00:00.123Z'));
    assert.equal((r.unmapped as { penstock: { event: string } }).penstock.event, name);
    assert.ok([1, 2, 3, 4].includes(r.severity_id), `${name}: severity ${r.severity_id}`);
  }
});

test('checkpoint.signed is the one Base Event; a name registered later still goes out, as a Base Event', () => {
  assert.equal(toOcsf(event('checkpoint.signed')).class_uid, 0);
  const r = toOcsf(event('dnp3.frame_refused', { code: 'PS3099W' }));
  assert.equal(r.class_uid, 0);
  assert.equal(r.activity_id, 99);
  assert.equal(r.type_uid, 99);
  assert.equal(r.metadata.event_code, 'PS3099W');
});

test('the door decides an action\'s class: SSH Activity, API Activity, API Activity with ai_operation for an agent', () => {
  const ssh = { target: 'hmi', verb: 'exec', ssh: { channel: 'exec', command: 'ls' } };
  const modbus = { target: 'plc', verb: 'read', modbus: { table: 'coil', address: 1 } };
  const deny = { effect: 'deny', reason: 'rule_denies' };
  assert.deepEqual(pick(toOcsf(event('action.denied', { action: ssh, decision: deny }))), [4007, 5, 2, undefined]);
  assert.deepEqual(pick(toOcsf(event('action.allowed', { action: ssh, decision: { effect: 'allow' } }))), [4007, 1, 1, undefined]);
  assert.deepEqual(pick(toOcsf(event('action.outcome', { action: ssh, outcome: { exit_status: 1 } }))), [4007, 2, 2, undefined]);
  assert.deepEqual(pick(toOcsf(event('action.allowed', { action: modbus, decision: { effect: 'allow' } }))), [6003, 2, 1, undefined]);
  assert.deepEqual(pick(toOcsf(event('action.allowed', { action: { ...modbus, verb: 'write' }, decision: { effect: 'approve' } }))), [6003, 3, 99, undefined]);
  // The same SSH exec asked for by an agent through the MCP door (its tool call's correlation id).
  assert.deepEqual(pick(toOcsf(event('action.allowed', { action: ssh, decision: { effect: 'allow' }, detail: { correlation: 'c1' } }))), [6003, 99, 1, ['ai_operation']]);
  assert.equal(classify(event('session.opened', { detail: { protocol: 'mcp' } })).agent, true);
});

test('IAM records carry the user, session, endpoints and privileges', () => {
  const opened = toOcsf(event('session.opened', { principal: 'vendor-acme', session: 's9', target: 'plc-1', detail: { protocol: 'modbus', remote: '[::1]:4000', attributes: { task: 'WO-1' } } }));
  assert.equal(opened.class_uid, 3003);
  assert.deepEqual(opened.user, { uid: 'vendor-acme', name: 'vendor-acme', type_id: 1, type: 'User' });
  assert.deepEqual(opened.session, { uid: 's9', is_remote: true });
  assert.deepEqual(opened.src_endpoint, { ip: '::1', port: 4000 });
  assert.deepEqual(opened.privileges, ['task:WO-1', 'door:modbus']);
  const failed = toOcsf(event('auth.failed', { detail: { protocol: 'ssh', remote: '10.0.0.9:22', reason: 'unknown_key' } }));
  assert.deepEqual([failed.class_uid, failed.activity_id, failed.status_id, failed.status_detail, failed.auth_protocol], [3002, 1, 2, 'unknown_key', 'ssh']);
  const alert = toOcsf(event('alert.probing', { code: 'PS5009W', principal: 'x' }));
  assert.deepEqual([alert.class_uid, alert.severity_id, (alert.finding_info as { types: string[] }).types], [2004, 3, ['probing']]);
});

test('docs/siem.md holds the mapping table the code uses', () => {
  const doc = readFileSync(new URL('../../docs/siem.md', import.meta.url), 'utf8');
  assert.ok(doc.includes(mappingTableMarkdown(EVENT_CODES)), 'docs/siem.md is out of date: paste mappingTableMarkdown(EVENT_CODES) into it');
});

function pick(r: Record<string, unknown>): unknown[] {
  return [r.class_uid, r.activity_id, r.status_id, (r.metadata as { profiles?: string[] }).profiles];
}
