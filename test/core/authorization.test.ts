// The proof forwarding functions require: only an allow carries one, the core minted it, and it is
// good only for its own session, target and verb. A forged or borrowed proof is a bug caught at run
// time (PS_INTERNAL), before anything is forwarded; the front doors' own tests check that nothing then
// reaches the plant. The read path (issue 17): an allowed read is a verdict at once (authorizeNow), not a
// promise; reads fail closed on a journal that cannot be written (a real one, filled up) unless
// journal.reads_when_full says otherwise.
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

/** One vendor who may read and write registers 0-9 of plc-1; `journal` is the journal section, if any. */
const siteYaml = (dir: string, journal = '') => `
appliance: { id: gw-authz, site: test, zone: lab, state_dir: ${dir}/state }
${journal}
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
`;

before(async () => {
  tmp = tempDir('penstock-authorization-');
  t = await startTestCore(tmp.dir, siteYaml(tmp.dir), { clock });
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

/** Appends padded events until the journal refuses one: it is then full (LMDB map full), for real. */
async function fillUp(full: TestCore): Promise<void> {
  const pad = 'x'.repeat(2000);
  for (let i = 0; i < 100_000; i++) {
    const results = await Promise.allSettled(Array.from({ length: 16 }, (_, k) => full.journal.append({ event: 'action.allowed', detail: { i, k, pad } })));
    const refused = results.find((r) => r.status === 'rejected');
    if (refused) {
      assert.ok(isPenstockError((refused as PromiseRejectedResult).reason, 'PS_JOURNAL_UNAVAILABLE'), String((refused as PromiseRejectedResult).reason));
      return;
    }
  }
  throw new Error('the journal never filled up');
}

describe('allowed reads are decided without a promise', () => {
  it('an allowed read is a verdict at once, with its proof, and is counted in the session\'s read aggregate', async () => {
    const s = open('vendor-a');
    const now = core.authorizeNow(s, action('read', 2));
    assert.ok(!(now instanceof Promise), 'an allowed read waits for nothing');
    assert.equal(now.effect, 'allow');
    assert.equal(requireAuthorization(now.authorization, s.id, { target: 'plc-1', verb: 'read' }), now.authorization);
    // authorize() is the same decision, as a promise.
    const later = await core.authorize(s, action('read', 2));
    assert.equal(later.effect, 'allow');
    assert.equal(later.rule, now.rule);
    assert.equal(s.counters.allowed, 2);
    await core.drain();
    await core.recorded();
    const aggregates = t.events().filter((e) => e.event === 'reads.aggregate' && e.session === s.id);
    assert.equal(aggregates.length, 1);
    assert.deepEqual((aggregates[0]!.detail as { reads: { object: { address: number }; count: number }[] }).reads.map((r) => [r.object.address, r.count]), [[2, 2]]);
  });

  it('a write (journaled durably first) and a denied read (its refusal journaled) are promises', async () => {
    const s = open('vendor-a');
    const write = core.authorizeNow(s, action('write', 3, [7]));
    assert.ok(write instanceof Promise);
    assert.equal((await write).effect, 'allow');
    const denied = core.authorizeNow(s, action('read', 40));
    assert.ok(denied instanceof Promise);
    const v = await denied;
    assert.equal(v.effect, 'deny');
    assert.equal(v.authorization, undefined);
    await core.recorded();
    const refusal = t.events().find((e) => e.event === 'action.denied' && e.session === s.id);
    assert.equal((refusal?.action as { modbus?: { address?: number } } | undefined)?.modbus?.address, 40, 'the refused read is journaled');
  });
});

describe('reads on a journal that cannot be written', () => {
  for (const readsWhenFull of [false, true]) {
    it(readsWhenFull ? 'reads_when_full: reads go on, writes are refused' : 'by default reads are refused too (fail closed), like writes', async () => {
      const tmp = tempDir('penstock-read-path-full-');
      const full = await startTestCore(tmp.dir, siteYaml(tmp.dir, readsWhenFull ? 'journal: { reads_when_full: true }' : ''), { mapSizeMiB: 1 });
      try {
        const s = openTestSession(full.core, 'vendor-a');
        const before = full.core.authorizeNow(s, action('read', 1));
        assert.ok(!(before instanceof Promise) && before.effect === 'allow', 'a read is allowed while the journal is writable');
        assert.equal(full.journal.writable, true);
        await fillUp(full);
        assert.equal(full.journal.writable, false);
        assert.equal(full.journal.health().writable, false);
        const read = await full.core.authorizeNow(s, action('read', 1));
        if (readsWhenFull) {
          assert.equal(read.effect, 'allow');
          requireAuthorization(read.authorization, s.id, { verb: 'read' });
        } else {
          assert.equal(read.effect, 'deny');
          assert.equal(read.reason, 'journal_unavailable');
          assert.equal(read.authorization, undefined);
        }
        const write = await full.core.authorizeNow(s, action('write', 3, [7]));
        assert.equal(write.effect, 'deny');
        assert.equal(write.reason, 'journal_unavailable');
        assert.equal(write.authorization, undefined);
      } finally {
        await full.stop().catch(() => {});
        tmp.cleanup();
      }
    });
  }
});
