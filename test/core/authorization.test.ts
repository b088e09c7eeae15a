// The proof forwarding functions require: only an allow carries one, the core minted it, and it is
// good only for its own session, target and verb. A forged or borrowed proof is a bug caught at run
// time (PS_INTERNAL), before anything is forwarded; the front doors' own tests check that nothing then
// reaches the plant.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { isPenstockError } from '../../src/common/errors.ts';
import { requireAuthorization, type Authorization } from '../../src/core/authorization.ts';
import type { DaemonCore } from '../../src/core/daemon-core.ts';
import type { Action } from '../../src/policy/types.ts';
import type { Session } from '../../src/sessions/registry.ts';
import { tempDir } from '../support.ts';
import { openTestSession, startTestCore, type TestCore } from '../core-harness.ts';

let tmp: { dir: string; cleanup: () => void };
let t: TestCore;
let core: DaemonCore;
const clock = new ManualClock(Date.parse('2026-11-25T09:00:00Z'));
const action = (verb: 'read' | 'write', address: number, values?: number[]): Action => ({ target: 'plc-1', verb, object: { kind: 'modbus', unit: 1, functionCode: verb === 'read' ? 3 : 6, table: 'holding_register', address, quantity: 1, ...(values ? { values } : {}) } });
const internal = (e: unknown) => isPenstockError(e, 'PS_INTERNAL');

const open = (principal: string): Session => openTestSession(core, principal);

before(async () => {
  tmp = tempDir('penstock-authorization-');
  t = await startTestCore(tmp.dir, `
appliance: { id: gw-authz, site: test, zone: lab, state_dir: ${tmp.dir}/state }
principals:
  - { id: vendor-a, kind: vendor, owner: A Ltd, purpose: test }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: 1502 }
grants:
  - id: g-a
    principal: vendor-a
    targets: [plc-1]
    task: { ticket: T-1 }
    rules: [{ modbus: { access: readwrite, tables: [holding_register], addresses: ["0-9"] } }]
`, { clock });
  core = t.core;
});

after(async () => {
  await t.stop();
  tmp.cleanup();
});

describe('Authorization', () => {
  it('an allow carries a proof for its session, target, verb and action; a deny carries none', async () => {
    const s = open('vendor-a');
    const allowed = await core.authorize(s, action('write', 3, [7]));
    assert.equal(allowed.effect, 'allow');
    const auth = allowed.authorization!;
    assert.equal(requireAuthorization(auth, s.id, { target: 'plc-1', verb: 'write' }), auth);
    assert.deepEqual(auth.action, action('write', 3, [7]));
    assert.equal(Object.isFrozen(auth), true);
    const denied = await core.authorize(s, action('write', 30, [7]));
    assert.equal(denied.effect, 'deny');
    assert.equal(denied.authorization, undefined);
    assert.throws(() => requireAuthorization(denied.authorization, s.id), internal);
  });

  it('a look-alike the core did not mint, or a proof used for another session, target or verb, is refused', async () => {
    const s = open('vendor-a');
    const other = open('vendor-a');
    const auth = (await core.authorize(s, action('read', 1))).authorization!;
    const forged = { ...auth } as Authorization;
    assert.throws(() => requireAuthorization(forged, s.id), internal);
    assert.throws(() => requireAuthorization(auth, other.id), internal);
    assert.throws(() => requireAuthorization(auth, s.id, { target: 'plc-2' }), internal);
    assert.throws(() => requireAuthorization(auth, s.id, { verb: 'write' }), internal);
  });

  it('an allow the journal could not record becomes a deny without a proof (fail closed)', async () => {
    const s = open('vendor-a');
    // A throwing append stands in for a full journal here, to look at the verdict alone; the real
    // thing (an LMDB map that fills up) is exercised end to end in test/e2e/fail-closed.test.ts.
    const append = t.journal.append.bind(t.journal);
    t.journal.append = async () => { throw Object.assign(new Error('disk full'), { code: 'MDB_MAP_FULL' }); };
    try {
      const v = await core.authorize(s, action('write', 4, [1]));
      assert.equal(v.effect, 'deny');
      assert.equal(v.reason, 'journal_unavailable');
      assert.equal(v.authorization, undefined);
    } finally {
      t.journal.append = append;
    }
  });
});
