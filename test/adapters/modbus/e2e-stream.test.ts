// The stream entry point (serveModbusStream) the SSH front door will use for `ssh -L` tunnels, and the
// listener's defences against slow-loris and half-open connections. The SSH front door does not exist
// yet, so a node duplex pair stands in for the tunnel's channel: the same bytes an SSH channel would
// carry, with a session opened the way the SSH front door will open it. Real core, journal and pymodbus PLC.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { freePort, openModbusStream, Plc, startGateway, tempDir, until, type Gateway } from './fixtures/harness.ts';
import { MALFORMED_JOURNALED_PER_STREAM } from '../../../src/adapters/modbus/stream.ts';
import { MbapDecoder, encodeMbap } from '../../../src/adapters/modbus/codec.ts';

let tmp: ReturnType<typeof tempDir>;
let plc: Plc;
let gw: Gateway;

before(async () => {
  tmp = tempDir('penstock-mb-stream-');
  const plcPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  gw = await startGateway(tmp.dir, `
appliance: { id: gw-stream, site: Test bench, zone: lab, state_dir: ${tmp.dir}/state }
listeners:
  - id: mb-tcp
    protocol: modbus
    mode: tcp
    port: 0
    idle_seconds: 1
    frame_timeout_ms: 300
    bindings: [{ source: 127.0.0.1, principal: tech }]
    routes: [{ unit: 1, target: plc-1 }]
principals:
  - { id: tech, kind: vendor, owner: Valve Service, purpose: Valve tuning, acting_for: work-order:WO-9 }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: ${plcPort} }
grants:
  - id: g-valves
    principal: tech
    targets: [plc-1]
    task: { ticket: CHG-9 }
    rules:
      - modbus: { preset: readonly, tables: [holding_register], addresses: ["0-9"] }
      - modbus: { access: write, tables: [holding_register], addresses: ["5-9"] }
`);
});

after(async () => {
  await gw?.stop();
  await plc?.stop();
  tmp?.cleanup();
});

/** Send one MBAP request on a duplex and wait for its answer. */
function exchange(side: Duplex, tid: number, pdu: number[], unit = 1): Promise<number[]> {
  return new Promise((resolve) => {
    const dec = new MbapDecoder();
    const onData = (d: Buffer) => {
      for (const r of dec.push(d)) {
        if ('frame' in r && r.frame.transactionId === tid) {
          side.off('data', onData);
          resolve([...r.frame.pdu]);
        }
      }
    };
    side.on('data', onData);
    side.write(encodeMbap(tid, unit, Buffer.from(pdu)));
  });
}

test('serveModbusStream: a tunnel-like duplex gets the same enforcement as a listener connection', async () => {
  // As the SSH front door will: it authenticated the principal and owns the session.
  const { client, session, handle } = openModbusStream(gw, { principal: 'tech', chain: ['tech', 'work-order:WO-9'], listener: 'ssh-front', protocol: 'ssh', target: 'plc-1', remote: '127.0.0.1:50022' });

  assert.deepEqual(await exchange(client, 1, [3, 0, 2, 0, 2]), [3, 4, 0, 102, 0, 103]);
  assert.deepEqual(await exchange(client, 2, [6, 0, 6, 0, 42]), [6, 0, 6, 0, 42]);
  assert.deepEqual(await exchange(client, 3, [6, 0, 1, 0, 42]), [0x86, 0x02], 'illegal data address outside the write range');
  assert.deepEqual(await exchange(client, 4, [5, 0, 6, 0xff, 0]), [0x85, 0x01], 'illegal function: coils not granted');
  await plc.logged();
  assert.ok(plc.writes().some((q) => q.address === 6 && q.value === 42), 'the allowed write at the PLC');
  assert.ok(!plc.writes().some((q) => q.address === 1), 'the denied write never reached the PLC');

  const events = gw.events().filter((e) => e.session === session.id);
  const allowed = events.find((e) => e.event === 'action.allowed');
  assert.equal(allowed?.listener, 'ssh-front');
  assert.deepEqual(allowed?.chain, ['tech', 'work-order:WO-9']);
  assert.equal(events.filter((e) => e.event === 'action.denied').length, 2);

  // The stream ending does not end the caller's session (an SSH session may carry several channels).
  client.end();
  assert.equal(await handle.done, 'peer_closed');
  assert.ok(session.active);
  session.close();
});

test('serveModbusStream: killing the session destroys the stream at once', async () => {
  const { client, gatewaySide, session, handle } = openModbusStream(gw, { principal: 'tech', listener: 'ssh-front', protocol: 'ssh', target: 'plc-1', remote: '127.0.0.1:50023' });
  assert.deepEqual(await exchange(client, 1, [3, 0, 0, 0, 1]), [3, 2, 0, 100]);
  gw.core.sessions.kill(session.id, { reason: 'killed' });
  assert.ok(['peer_closed', 'stream_error'].includes(await handle.done));
  assert.ok(gatewaySide.destroyed);
});

test('malformed requests are journaled through the one refusal path, one by one up to the bound, then summarised', async () => {
  const { client, session, handle } = openModbusStream(gw, { principal: 'tech', target: 'plc-1', remote: '127.0.0.1:50024' });
  await plc.logged();
  const plcSawBefore = plc.requests.length;
  assert.deepEqual(await exchange(client, 1, [3, 0, 0, 0, 1], 9), [0x83, 0x0a], 'an unrouted unit: gateway path unavailable');
  const sent = MALFORMED_JOURNALED_PER_STREAM + 4;
  for (let tid = 2; tid <= sent; tid++) assert.deepEqual(await exchange(client, tid, [3, 0, 0]), [0x83, 0x03], 'a truncated read: illegal data value');
  client.end();
  assert.equal(await handle.done, 'peer_closed');
  session.close();
  await gw.core.recorded();

  const refusals = gw.events().filter((e) => e.event === 'action.malformed' && e.session === session.id);
  const reasons = refusals.map((e) => e.detail?.reason);
  assert.equal(refusals.length, MALFORMED_JOURNALED_PER_STREAM + 1, 'the bound, then one summary');
  assert.equal(reasons[0], 'MODBUS_UNROUTED_UNIT');
  assert.deepEqual(new Set(reasons.slice(1, -1)), new Set(['MODBUS_PDU_LENGTH']));
  for (const e of refusals) {
    assert.equal(e.listener, 'tunnel-front');
    assert.equal(e.principal, 'tech');
    assert.equal(e.detail?.remote, '127.0.0.1:50024');
    assert.equal(e.detail?.protocol, 'modbus');
  }
  assert.deepEqual(refusals.at(-1)!.detail, { remote: '127.0.0.1:50024', protocol: 'modbus', reason: 'MODBUS_MALFORMED_SUMMARY', suppressed: sent - MALFORMED_JOURNALED_PER_STREAM, total: sent });
  const counted = gw.events().find((e) => e.event === 'session.closed' && e.session === session.id)?.detail as { counters: { denied: number } } | undefined;
  assert.equal(counted?.counters.denied, sent, 'every refusal is counted, journaled one by one or not');
  await plc.logged();
  assert.equal(plc.requests.length, plcSawBefore, 'none of it reached the PLC');
});

async function connectAndWatch(send: Buffer | undefined): Promise<'closed'> {
  const s = net.connect({ host: '127.0.0.1', port: gw.port('mb-tcp') });
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  if (send) s.write(send);
  await new Promise((r) => s.once('close', r));
  return 'closed';
}

test('slow-loris: a partial frame left pending is closed after frame_timeout_ms', async () => {
  const frame = encodeMbap(1, 1, Buffer.from([3, 0, 0, 0, 1]));
  // Three bytes of a header, then nothing: the gateway hangs up (the test would time out otherwise).
  assert.equal(await connectAndWatch(frame.subarray(0, 3)), 'closed');
  // A header promising a PDU that never comes.
  assert.equal(await connectAndWatch(frame.subarray(0, 9)), 'closed');
});

test('half-open: a connection that never sends is closed after idle_seconds', async () => {
  assert.equal(await connectAndWatch(undefined), 'closed');
  await until(() => gw.events().some((e) => e.event === 'session.closed' && e.listener === 'mb-tcp'), 'session.closed');
});

test('slow-loris dribbling one byte at a time is closed even though bytes keep arriving', async () => {
  const frame = encodeMbap(1, 1, Buffer.from([3, 0, 0, 0, 1]));
  const s = net.connect({ host: '127.0.0.1', port: gw.port('mb-tcp') });
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  let i = 0;
  const dribble = setInterval(() => {
    if (i < frame.length - 1 && !s.destroyed) s.write(frame.subarray(i, ++i));
  }, 100); // 100 ms per byte: the last byte would come after ~1.1 s, the frame budget is 300 ms
  await new Promise((r) => s.once('close', r));
  clearInterval(dribble);
  assert.ok(i < frame.length - 1, 'closed before the frame could complete');
});
