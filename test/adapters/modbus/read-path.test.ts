// The read fast path of a Modbus stream (issue 17): a lone read allowed at once is forwarded with a
// callback rather than a chain of promises, and its answer may come back before the forward returns (a
// link that is down answers at once). Either way every request is answered, in the order it came, and
// a long burst does not nest one call deeper per request. Real core, journal and pymodbus PLC.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { freePort, openModbusStream, Plc, startGateway, tempDir, type Gateway } from './fixtures/harness.ts';
import { until } from '../../support.ts';
import { MbapDecoder, encodeMbap } from '../../../src/adapters/modbus/codec.ts';

let tmp: ReturnType<typeof tempDir>;
let plc: Plc;
let gw: Gateway;

before(async () => {
  tmp = tempDir('penstock-mb-read-path-');
  const plcPort = await freePort();
  const nobodyPort = await freePort(); // nothing listens here: the link is refused
  plc = await Plc.start('tcp', plcPort);
  gw = await startGateway(tmp.dir, `
appliance: { id: gw-read-path, site: Test bench, zone: lab, state_dir: ${tmp.dir}/state }
sessions: { actions_per_second: 1000000 }
listeners: []
principals:
  - { id: tech, kind: vendor, owner: Valve Service, purpose: Valve tuning }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: ${plcPort} }
  - { id: plc-down, protocol: modbus, zone: lab, host: 127.0.0.1, port: ${nobodyPort} }
grants:
  - id: g-read
    principal: tech
    targets: [plc-1, plc-down]
    task: { ticket: CHG-17 }
    rules:
      - modbus: { preset: readonly, tables: [holding_register], addresses: ["0-9"] }
`);
});

after(async () => {
  await gw?.stop();
  await plc?.stop();
  tmp?.cleanup();
});

/** Writes every request in ONE chunk and collects `count` answers: transaction id → PDU, in arrival order. */
function burst(side: Duplex, requests: { tid: number; pdu: number[] }[]): Promise<{ tid: number; pdu: number[] }[]> {
  return new Promise((resolve) => {
    const dec = new MbapDecoder();
    const answers: { tid: number; pdu: number[] }[] = [];
    const onData = (d: Buffer) => {
      for (const r of dec.push(d)) if ('frame' in r) answers.push({ tid: r.frame.transactionId, pdu: [...r.frame.pdu] });
      if (answers.length >= requests.length) {
        side.off('data', onData);
        resolve(answers);
      }
    };
    side.on('data', onData);
    side.write(Buffer.concat(requests.map((q) => encodeMbap(q.tid, 1, Buffer.from(q.pdu)))));
  });
}

function openStream(target: string, remote: string) {
  return openModbusStream(gw, { principal: 'tech', target, remote });
}

test('a burst of reads toward a PLC that refuses the link: each answered at once with 0x0A, in order, refusals in their place, and the stream stays up', async () => {
  const { client, session, handle } = openStream('plc-down', '127.0.0.1:50031');
  const n = 3000;
  // Mostly reads the grant allows (answered by the link that is down, before the forward returns) and,
  // every 500th, one it does not (a refusal, journaled before it is answered: the promise path).
  const requests = Array.from({ length: n }, (_, i) => ({ tid: i + 1, pdu: i % 500 === 250 ? [3, 0, 40, 0, 1] : [3, 0, i % 10, 0, 1] }));
  const answers = await burst(client, requests);
  assert.equal(answers.length, n);
  assert.deepEqual(answers.map((a) => a.tid), requests.map((q) => q.tid), 'answered in the order asked');
  for (const [i, a] of answers.entries()) {
    assert.deepEqual(a.pdu, i % 500 === 250 ? [0x83, 0x02] : [0x83, 0x0a], `request ${i + 1}`);
  }
  // Still serving after the burst.
  assert.deepEqual((await burst(client, [{ tid: 9999, pdu: [3, 0, 1, 0, 1] }]))[0], { tid: 9999, pdu: [0x83, 0x0a] });
  client.end();
  assert.equal(await handle.done, 'peer_closed');
  session.close();
  await gw.core.recorded();
  const denied = gw.events().filter((e) => e.event === 'action.denied' && e.session === session.id);
  assert.equal(denied.length, n / 500, 'every refused read journaled');
});

test('reads a client pipelines on one stream reach a real PLC one at a time and come back in order with its values', async () => {
  const { client, session, handle } = openStream('plc-1', '127.0.0.1:50032');
  const plcSawBefore = plc.requests.length;
  const n = 200;
  const requests = Array.from({ length: n }, (_, i) => ({ tid: i + 1, pdu: [3, 0, i % 8, 0, 2] }));
  const answers = await burst(client, requests);
  assert.deepEqual(answers.map((a) => a.tid), requests.map((q) => q.tid));
  for (const [i, a] of answers.entries()) {
    const at = i % 8;
    assert.deepEqual(a.pdu, [3, 4, 0, 100 + at, 0, 101 + at], `request ${i + 1}`);
  }
  // The PLC logs each request on its stdout, read here after it answered: a last read the PLC logs after
  // every one before it marks the moment the log is complete.
  assert.deepEqual((await burst(client, [{ tid: 9999, pdu: [3, 0, 9, 0, 1] }]))[0]!.tid, 9999);
  await until(() => plc.requests.slice(plcSawBefore).some((r) => r.address === 9 && r.count === 1), 'the PLC to log the last read');
  assert.equal(plc.requests.length - plcSawBefore, n + 1, 'each read reached the PLC once');
  client.end();
  assert.equal(await handle.done, 'peer_closed');
  session.close();
});
