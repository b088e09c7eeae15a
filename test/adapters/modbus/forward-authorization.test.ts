// Forwarding needs proof: Upstream.forward sends a client's request to the PLC only with an Authorization
// the core minted for that session, target and function code. Anything else is a bug in Penstock, so it
// throws PS_INTERNAL before a byte leaves; the PLC (pymodbus, which reports every request it executes)
// is the witness that nothing reached it. Real core and journal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { isPenstockError } from '../../../src/common/errors.ts';
import type { Authorization } from '../../../src/core/authorization.ts';
import { encodeRequest, type ModbusRequest } from '../../../src/adapters/modbus/codec.ts';
import { TcpUpstream } from '../../../src/adapters/modbus/upstream.ts';
import type { ModbusAction } from '../../../src/adapters/modbus/actions.ts';
import type { Session } from '../../../src/sessions/registry.ts';
import { startTestCore, type TestCore } from '../../core-harness.ts';
import { freePort, Plc, tempDir, until } from './fixtures/harness.ts';

const log = pino({ level: 'silent' });
const internal = (e: unknown) => isPenstockError(e, 'PS_INTERNAL');

let tmp: ReturnType<typeof tempDir>;
let plc: Plc;
let plcPort: number;
let t: TestCore;
let session: Session;

before(async () => {
  tmp = tempDir('penstock-mb-forward-');
  plcPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  t = await startTestCore(tmp.dir, `
appliance: { id: gw-forward, site: Test bench, zone: lab, state_dir: ${tmp.dir}/state }
principals:
  - { id: tech, kind: vendor, owner: Valve Service, purpose: Valve tuning }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: ${plcPort} }
  - { id: plc-2, protocol: modbus, zone: lab, host: 127.0.0.1, port: ${plcPort} }
grants:
  - id: g-valves
    principal: tech
    targets: [plc-1, plc-2]
    task: { ticket: CHG-9 }
    rules:
      - modbus: { preset: readonly, tables: [holding_register], addresses: ["0-9"] }
      - modbus: { access: write, tables: [holding_register], addresses: ["5-9"] }
`);
  const principal = t.core.config().principals.get('tech')!;
  session = t.core.sessions.open({ principal, chain: ['tech'], target: 'plc-1', listener: 'mb-test', protocol: 'modbus', remote: '127.0.0.1:40000' }, () => {});
});

after(async () => {
  session?.close();
  await t?.stop();
  await plc?.stop();
  tmp?.cleanup();
});

const write6 = (address: number, value: number): { req: ModbusRequest; pdu: Buffer; action: ModbusAction } => {
  const req: ModbusRequest = { kind: 'write_single_register', fc: 6, address, value };
  return { req, pdu: encodeRequest(req), action: { target: 'plc-1', verb: 'write', object: { kind: 'modbus', unit: 1, functionCode: 6, table: 'holding_register', address, quantity: 1, values: [value] } } };
};

test('forwarding without an Authorization the core minted throws PS_INTERNAL and sends the PLC nothing', async () => {
  const w = write6(7, 4242);
  const verdict = await t.core.authorize(session, w.action);
  assert.equal(verdict.effect, 'allow');
  const auth = verdict.authorization!;
  const readVerdict = await t.core.authorize(session, { target: 'plc-1', verb: 'read', object: { kind: 'modbus', unit: 1, functionCode: 3, table: 'holding_register', address: 7, quantity: 1 } });
  assert.ok(readVerdict.authorization);

  const up = new TcpUpstream('plc-1', { host: '127.0.0.1', port: plcPort, timeout_ms: 2000 }, log);
  const other = new TcpUpstream('plc-2', { host: '127.0.0.1', port: plcPort, timeout_ms: 2000 }, log);
  try {
    assert.throws(() => up.forward([], session.id, 1, w.req, w.pdu), internal, 'no proof at all');
    assert.throws(() => up.forward([undefined as unknown as Authorization], session.id, 1, w.req, w.pdu), internal, 'a missing proof');
    assert.throws(() => up.forward([{ ...auth }], session.id, 1, w.req, w.pdu), internal, 'a copy the core never minted');
    assert.throws(() => up.forward([auth], 's-someone-else', 1, w.req, w.pdu), internal, 'another session');
    assert.throws(() => other.forward([auth], session.id, 1, w.req, w.pdu), internal, 'another target');
    assert.throws(() => up.forward([readVerdict.authorization!], session.id, 1, w.req, w.pdu), internal, 'proof for a read, used for a write');
    assert.throws(() => up.forward([auth, { ...auth }], session.id, 1, w.req, w.pdu), internal, 'one good proof does not cover a forged one');
    assert.equal(up.pending + other.pending, 0);

    // The same write with its proof goes through; the PLC saw it and nothing before it.
    const reply = await up.forward([auth], session.id, 1, w.req, w.pdu);
    assert.ok(reply.ok, 'the authorised write is answered');
    await until(() => plc.requests.length >= 1, 'the PLC executed the authorised write');
    assert.deepEqual(plc.requests, [{ fc: 6, unit: 1, address: 7, value: 4242 }]);
    const now = await up.gatewayRead(session.id, 1, { kind: 'read_registers', fc: 3, address: 7, quantity: 1 });
    assert.deepEqual(now.ok && 'values' in now.response ? now.response.values : undefined, [4242], 'the value is in the PLC');
  } finally {
    up.close();
    other.close();
  }
});

test('a refused action carries no Authorization to forward with', async () => {
  const verdict = await t.core.authorize(session, write6(1, 9).action);
  assert.equal(verdict.effect, 'deny');
  assert.equal(verdict.reason, 'object_not_granted');
  assert.equal(verdict.authorization, undefined);
});

test('the gateway reads for itself only with functions 1-4', () => {
  const up = new TcpUpstream('plc-1', { host: '127.0.0.1', port: plcPort, timeout_ms: 2000 }, log);
  try {
    const w = write6(8, 1);
    assert.throws(() => up.gatewayRead(session.id, 1, w.req as never), internal);
    assert.equal(up.pending, 0);
  } finally {
    up.close();
  }
});
