import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { PenstockError, isPenstockError } from '../../src/common/errors.ts';
import { grantSchema, type GrantConfig } from '../../src/config/schema.ts';
import { GrantStore } from '../../src/grants/store.ts';
import type { GrantChange, Operator } from '../../src/grants/types.ts';

const T0 = Date.parse('2026-06-15T10:00:00Z'); // a Monday
const alice: Operator = { uid: 1001, user: 'alice', verified: true };
const bob: Operator = { uid: 1002, user: 'bob', verified: true };

/** What the daemon passes: schema validation plus a reference check against known targets. */
function validateGrant(g: unknown): GrantConfig {
  const r = grantSchema.safeParse(g);
  if (!r.success) throw new PenstockError('PS_GRANT_INVALID', r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  for (const t of r.data.targets) if (!['plc-1', 'gw-1'].includes(t)) throw new PenstockError('PS_GRANT_INVALID', `unknown target ${t}`);
  return r.data;
}

function raw(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, principal: 'vendor-a', targets: ['plc-1'], task: { ticket: 'WO-7' }, rules: [{ modbus: { preset: 'readonly' } }], ...extra };
}

function setup(config: Record<string, unknown>[] = []) {
  const clock = new ManualClock(T0);
  const store = new GrantStore({ clock, validateGrant });
  store.replaceConfigGrants(config.map((c) => validateGrant(c)));
  const changes: GrantChange[] = [];
  store.onChange((c) => changes.push(c));
  return { clock, store, changes };
}

const summary = (cs: GrantChange[]) => cs.map((c) => `${c.kind}:${c.grant.id}`);

test('issue records who issued it, emits issued, and refuses duplicates and bad grants without change', () => {
  const { store, changes } = setup([raw('CFG')]);
  const g = store.issue(raw('RT', { principal: 'agent-1' }), alice);
  assert.equal(g.source, 'runtime');
  assert.deepEqual(g.issued, { by: alice, at: '2026-06-15T10:00:00.000Z' });
  assert.deepEqual(summary(changes), ['issued:RT']);
  assert.deepEqual(store.forPrincipal('agent-1').map((x) => x.id), ['RT']);
  assert.deepEqual(store.list().map((x) => [x.id, x.source]), [['CFG', 'config'], ['RT', 'runtime']]);

  for (const bad of [raw('RT'), raw('CFG'), raw('X', { targets: ['nope'] }), raw('Y', { unknown_key: 1 }), raw('Z', { window: { from: '2026-06-01T00:00:00Z', to: '2026-06-02T00:00:00Z' } })]) {
    assert.throws(() => store.issue(bad, alice), (e) => isPenstockError(e, 'PS_GRANT_INVALID'));
  }
  assert.equal(store.list().length, 2);
  assert.equal(changes.length, 1);
});

test('held grants are frozen', () => {
  const { store } = setup([raw('CFG')]);
  const g = store.list()[0]!;
  assert.throws(() => (g.rules as unknown[]).push({}), TypeError);
  assert.throws(() => ((g as { principal: string }).principal = 'x'), TypeError);
});

test('revoke records who and why, emits revoked, and is refused for unknown or already revoked grants', () => {
  const { clock, store, changes } = setup([raw('CFG')]);
  clock.advance(60_000);
  const r = store.revoke('CFG', bob, 'task finished');
  assert.deepEqual(r.revoked, { by: bob, at: '2026-06-15T10:01:00.000Z', reason: 'task finished' });
  assert.equal(store.isActive(r), false);
  assert.deepEqual(summary(changes), ['revoked:CFG']);
  assert.throws(() => store.revoke('nope', bob, 'x'), (e) => isPenstockError(e, 'PS_GRANT_UNKNOWN'));
  assert.throws(() => store.revoke('CFG', alice, 'again'), (e) => isPenstockError(e, 'PS_GRANT_INVALID'));
  store.issue(raw('RT'), alice);
  assert.throws(() => store.revoke('RT', alice, '  '), (e) => isPenstockError(e, 'PS_GRANT_INVALID'));
  assert.equal(store.get('RT')!.revoked, undefined);
  assert.deepEqual(summary(changes), ['revoked:CFG', 'issued:RT']);
  assert.equal(store.tick().length, 0, 'a revoked grant does not also expire');
});

test('a grant expires at its window end: tick emits expired once, and nextTick names the instant', () => {
  const { clock, store, changes } = setup();
  store.issue(raw('RT', { window: { from: '2026-06-15T09:00:00Z', to: '2026-06-15T12:00:00Z' } }), alice);
  assert.equal(store.nextTick(), Date.parse('2026-06-15T12:00:00Z'));
  clock.set(Date.parse('2026-06-15T11:59:59.999Z'));
  assert.deepEqual(store.tick(), []);
  clock.set(Date.parse('2026-06-15T12:00:00Z'));
  assert.deepEqual(summary(store.tick()), ['expired:RT']);
  assert.deepEqual(summary(store.tick()), []);
  assert.deepEqual(summary(changes), ['issued:RT', 'expired:RT']);
  assert.equal(store.nextTick(), undefined);
});

test('a grant issued before its window opens does not expire before it was ever active', () => {
  const { clock, store, changes } = setup();
  store.issue(raw('RT', { window: { from: '2026-06-15T11:00:00Z', to: '2026-06-15T12:00:00Z' } }), alice);
  clock.set(Date.parse('2026-06-15T11:00:00Z'));
  store.tick();
  clock.set(Date.parse('2026-06-15T12:00:00Z'));
  store.tick();
  assert.deepEqual(summary(changes), ['issued:RT', 'expired:RT']);
});

test('a maintenance window closing emits expired each time it closes', () => {
  const { clock, store, changes } = setup([raw('CFG', { schedule: [{ days: ['mon'], from: '08:00', to: '12:00', tz: 'Europe/Berlin' }] })]);
  // Monday 12:00 Berlin (CEST) is 10:00Z: the window closes exactly now.
  assert.equal(store.isActive(store.get('CFG')!, T0 - 1), true);
  clock.set(T0 - 1);
  store.tick();
  clock.set(T0);
  assert.deepEqual(summary(store.tick()), ['expired:CFG']);
  for (let i = 0; i < 7 * 24; i++) {
    clock.advance(3_600_000);
    store.tick();
  }
  assert.deepEqual(summary(changes), ['expired:CFG', 'expired:CFG']);
});

test('reload replaces config grants; runtime grants and revocations survive', () => {
  const { store, changes } = setup([raw('A'), raw('B'), raw('C')]);
  store.issue(raw('RT'), alice);
  store.revoke('A', bob, 'vendor left');
  const diff = store.replaceConfigGrants([raw('A'), raw('B', { task: { ticket: 'WO-8' } }), raw('D')].map((g) => validateGrant(g)));
  assert.deepEqual(diff, { added: ['D'], removed: ['C'], changed: ['B'] });
  assert.deepEqual(store.list().map((g) => g.id), ['A', 'B', 'D', 'RT']);
  assert.equal(store.get('A')!.revoked?.reason, 'vendor left', 'a revoked config grant stays revoked');
  assert.equal(store.get('B')!.task.ticket, 'WO-8');
  assert.equal(store.get('RT')!.source, 'runtime');
  // A clash refuses the whole reload and changes nothing.
  assert.throws(() => store.replaceConfigGrants([raw('X'), raw('RT')].map((g) => validateGrant(g))), (e) => isPenstockError(e, 'PS_GRANT_INVALID'));
  assert.throws(() => store.replaceConfigGrants([raw('X'), raw('X')].map((g) => validateGrant(g))), (e) => isPenstockError(e, 'PS_GRANT_INVALID'));
  assert.deepEqual(store.list().map((g) => g.id), ['A', 'B', 'D', 'RT']);
  assert.deepEqual(summary(changes), ['issued:RT', 'revoked:A'], 'a reload emits nothing');
  // The id of a revoked grant cannot be reused at run time either.
  assert.throws(() => store.issue(raw('A'), alice), (e) => isPenstockError(e, 'PS_GRANT_INVALID'));
});

test('runtime grants and revocations persist through toJSON/fromJSON', () => {
  const first = setup([raw('CFG')]);
  first.store.issue(raw('RT1'), alice);
  first.store.issue(raw('RT2', { targets: ['gw-1'] }), alice);
  first.store.revoke('CFG', bob, 'done');
  first.store.revoke('RT1', bob, 'done too');
  const saved = JSON.parse(JSON.stringify(first.store));

  const second = setup([raw('CFG')]);
  const r = second.store.fromJSON(saved);
  assert.deepEqual(r, { restored: ['RT1', 'RT2'], skipped: [] });
  assert.deepEqual(second.store.list(), first.store.list());
  assert.deepEqual(second.changes, [], 'restoring emits nothing');

  // A runtime grant the new config no longer supports is skipped and reported.
  const strict = new GrantStore({ clock: new ManualClock(T0), validateGrant: (g) => { const v = validateGrant(g); if (v.targets.includes('gw-1')) throw new PenstockError('PS_GRANT_INVALID', 'unknown target gw-1'); return v; } });
  const r2 = strict.fromJSON(saved);
  assert.deepEqual(r2.restored, ['RT1']);
  assert.deepEqual(r2.skipped, [{ id: 'RT2', message: 'unknown target gw-1' }]);

  // Malformed state is refused whole.
  const before = second.store.list();
  for (const bad of [null, { version: 2, runtime: [], revocations: [] }, { ...saved, runtime: [{ id: 'x' }] }, { ...saved, revocations: [{ id: 'CFG' }] }]) {
    assert.throws(() => second.store.fromJSON(bad), (e) => isPenstockError(e, 'PS_GRANT_INVALID'));
  }
  assert.deepEqual(second.store.list(), before);
});

test('a throwing listener does not stop the others, and its error reaches the caller', () => {
  const { store } = setup();
  const seen: string[] = [];
  store.onChange(() => {
    throw new Error('listener broke');
  });
  const off = store.onChange((c) => seen.push(c.grant.id));
  assert.throws(() => store.issue(raw('RT'), alice), /listener broke/);
  assert.deepEqual(seen, ['RT']);
  assert.ok(store.get('RT'), 'the grant was issued all the same');
  off();
});
