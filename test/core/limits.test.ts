// The session rate limit in the core: a token bucket at sessions.actions_per_second, lowered by a used
// grant's limits.actions_per_second, and one token per wire request however many items it carries.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import type { WireRequest } from '../../src/core/core.ts';
import type { Action } from '../../src/policy/types.ts';
import type { Session } from '../../src/sessions/registry.ts';
import { tempDir } from '../support.ts';
import { openTestSession, startTestCore, type TestCore } from '../core-harness.ts';
import type { DaemonCore } from '../../src/core/daemon-core.ts';

let tmp: { dir: string; cleanup: () => void };
let t: TestCore;
let core: DaemonCore;
const clock = new ManualClock(Date.parse('2026-11-25T09:00:00Z'));

const read = (address: number): Action => ({ target: 'plc-1', verb: 'read', object: { kind: 'modbus', unit: 1, functionCode: 3, table: 'holding_register', address, quantity: 1 } });

const open = (principal: string): Session => openTestSession(core, principal);

async function allowedOf(session: Session, n: number, request?: WireRequest): Promise<number> {
  let allowed = 0;
  for (let i = 0; i < n; i++) if ((await core.authorize(session, read(i % 10), request ? { request } : {})).effect === 'allow') allowed++;
  return allowed;
}

before(async () => {
  tmp = tempDir('penstock-limits-');
  t = await startTestCore(tmp.dir, `
appliance: { id: gw-limits, site: test, zone: lab, state_dir: ${tmp.dir}/state }
sessions: { actions_per_second: 5 }
principals:
  - { id: vendor-a, kind: vendor, owner: A Ltd, purpose: test }
  - { id: vendor-b, kind: vendor, owner: B Ltd, purpose: test }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: 1502 }
grants:
  - id: g-a
    principal: vendor-a
    targets: [plc-1]
    task: { ticket: T-1 }
    rules: [{ modbus: { function_codes: [3], tables: [holding_register], addresses: ["0-9"] } }]
  - id: g-b
    principal: vendor-b
    targets: [plc-1]
    task: { ticket: T-2 }
    limits: { actions_per_second: 2 }
    rules: [{ modbus: { function_codes: [3], tables: [holding_register], addresses: ["0-9"] } }]
`, { clock });
  core = t.core;
});

after(async () => {
  await t.stop();
  tmp.cleanup();
});

describe('session rate limit', () => {
  it('allows one second of actions at sessions.actions_per_second, refuses the rest as session_limit, and refills', async () => {
    const s = open('vendor-a');
    assert.equal(await allowedOf(s, 8), 5);
    const refused = await core.authorize(s, read(0));
    assert.equal(refused.effect, 'deny');
    assert.equal(refused.reason, 'session_limit');
    clock.advance(400); // 2 tokens back
    assert.equal(await allowedOf(s, 5), 2);
    s.close();
  });

  it('a used grant with limits.actions_per_second lowers the rate for the session', async () => {
    const s = open('vendor-b');
    assert.equal(await allowedOf(s, 5), 2);
    clock.advance(1000);
    assert.equal(await allowedOf(s, 5), 2);
    s.close();
  });

  it('the items of one wire request take one token: the request is admitted or refused whole', async () => {
    const s = open('vendor-a');
    for (let r = 0; r < 5; r++) assert.equal(await allowedOf(s, 100, {}), 100, `request ${r} of 100 items admitted whole`);
    const sixth: WireRequest = {};
    assert.equal(await allowedOf(s, 100, sixth), 0, 'the sixth request in the second refused whole');
    assert.notEqual(sixth.rate, 'admitted');
    assert.equal((sixth.rate as { reason: string }).reason, 'session_limit');
    s.close();
  });
});
