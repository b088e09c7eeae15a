// The read path of the core (issue 17): an allowed read is decided synchronously (authorizeNow answers
// with a verdict, not a promise) and goes into the session's aggregate; anything that waits — a write's
// durable record, a refusal's record — stays a promise. Reads fail closed on a journal that cannot be
// written unless journal.reads_when_full says otherwise: checked against a real LMDB journal filled up.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isPenstockError } from '../../src/common/errors.ts';
import { requireAuthorization } from '../../src/core/authorization.ts';
import type { Action } from '../../src/policy/types.ts';
import { tempDir } from '../support.ts';
import { openTestSession, startTestCore, type TestCore } from '../core-harness.ts';

const action = (verb: 'read' | 'write', address: number, values?: number[]): Action => ({ target: 'plc-1', verb, object: { kind: 'modbus', unit: 1, functionCode: verb === 'read' ? 3 : 6, table: 'holding_register', address, quantity: 1, ...(values ? { values } : {}) } });

const yaml = (dir: string, journal = '') => `
appliance: { id: gw-read-path, site: test, zone: lab, state_dir: ${dir}/state }
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

/** Appends padded events until the journal refuses one: it is then full (LMDB map full), for real. */
async function fillUp(t: TestCore): Promise<void> {
  const pad = 'x'.repeat(2000);
  for (let i = 0; i < 100_000; i++) {
    const results = await Promise.allSettled(Array.from({ length: 16 }, (_, k) => t.journal.append({ event: 'action.allowed', detail: { i, k, pad } })));
    const refused = results.find((r) => r.status === 'rejected');
    if (refused) {
      assert.ok(isPenstockError((refused as PromiseRejectedResult).reason, 'PS_JOURNAL_UNAVAILABLE'), String((refused as PromiseRejectedResult).reason));
      return;
    }
  }
  throw new Error('the journal never filled up');
}

describe('allowed reads are decided without a promise', () => {
  let tmp: { dir: string; cleanup: () => void };
  let t: TestCore;
  before(async () => {
    tmp = tempDir('penstock-read-path-');
    t = await startTestCore(tmp.dir, yaml(tmp.dir));
  });
  after(async () => {
    await t.stop();
    tmp.cleanup();
  });

  it('an allowed read is a verdict at once, with its proof, and is counted in the session\'s read aggregate', async () => {
    const s = openTestSession(t.core, 'vendor-a');
    const now = t.core.authorizeNow(s, action('read', 2));
    assert.ok(!(now instanceof Promise), 'an allowed read waits for nothing');
    assert.equal(now.effect, 'allow');
    assert.equal(requireAuthorization(now.authorization, s.id, { target: 'plc-1', verb: 'read' }), now.authorization);
    // authorize() is the same decision, as a promise.
    const later = await t.core.authorize(s, action('read', 2));
    assert.equal(later.effect, 'allow');
    assert.equal(later.rule, now.rule);
    assert.equal(s.counters.allowed, 2);
    await t.core.drain();
    await t.core.recorded();
    const aggregates = t.events().filter((e) => e.event === 'reads.aggregate' && e.session === s.id);
    assert.equal(aggregates.length, 1);
    assert.deepEqual((aggregates[0]!.detail as { reads: { object: { address: number }; count: number }[] }).reads.map((r) => [r.object.address, r.count]), [[2, 2]]);
  });

  it('a write (journaled durably first) and a denied read (its refusal journaled) are promises', async () => {
    const s = openTestSession(t.core, 'vendor-a');
    const write = t.core.authorizeNow(s, action('write', 3, [7]));
    assert.ok(write instanceof Promise);
    assert.equal((await write).effect, 'allow');
    const denied = t.core.authorizeNow(s, action('read', 40));
    assert.ok(denied instanceof Promise);
    const v = await denied;
    assert.equal(v.effect, 'deny');
    assert.equal(v.authorization, undefined);
    await t.core.recorded();
    const refusal = t.events().find((e) => e.event === 'action.denied' && e.session === s.id);
    assert.equal((refusal?.action as { modbus?: { address?: number } } | undefined)?.modbus?.address, 40, 'the refused read is journaled');
  });
});

describe('reads on a journal that cannot be written', () => {
  for (const readsWhenFull of [false, true]) {
    it(readsWhenFull ? 'reads_when_full: reads go on, writes are refused' : 'by default reads are refused too (fail closed), like writes', async () => {
      const tmp = tempDir('penstock-read-path-full-');
      const t = await startTestCore(tmp.dir, yaml(tmp.dir, readsWhenFull ? 'journal: { reads_when_full: true }' : ''), { mapSizeMiB: 1 });
      try {
        const s = openTestSession(t.core, 'vendor-a');
        const before = t.core.authorizeNow(s, action('read', 1));
        assert.ok(!(before instanceof Promise) && before.effect === 'allow', 'a read is allowed while the journal is writable');
        assert.equal(t.journal.writable, true);
        await fillUp(t);
        assert.equal(t.journal.writable, false);
        assert.equal(t.journal.health().writable, false);
        const read = await t.core.authorizeNow(s, action('read', 1));
        if (readsWhenFull) {
          assert.equal(read.effect, 'allow');
          requireAuthorization(read.authorization, s.id, { verb: 'read' });
        } else {
          assert.equal(read.effect, 'deny');
          assert.equal(read.reason, 'journal_unavailable');
          assert.equal(read.authorization, undefined);
        }
        const write = await t.core.authorizeNow(s, action('write', 3, [7]));
        assert.equal(write.effect, 'deny');
        assert.equal(write.reason, 'journal_unavailable');
        assert.equal(write.authorization, undefined);
      } finally {
        await t.stop().catch(() => {});
        tmp.cleanup();
      }
    });
  }
});
