// The shared upstream link on its own, against small scripted TCP peers standing in for PLCs that
// misbehave in the ways real ones do: refuse connections, never answer, answer late, answer out of order.
// (The happy path against real PLC software is covered by the e2e tests.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { pino } from 'pino';
import { TcpUpstream } from '../../../src/adapters/modbus/upstream.ts';
import { MbapDecoder, encodeMbap, encodeRequest, type ModbusRequest } from '../../../src/adapters/modbus/codec.ts';
import { freePort } from './fixtures/harness.ts';

const log = pino({ level: 'silent' });
const read = (address: number): { req: ModbusRequest; pdu: Buffer } => {
  const req: ModbusRequest = { kind: 'read_registers', fc: 3, address, quantity: 1 };
  return { req, pdu: encodeRequest(req) };
};

/** A scripted PLC: `answer` decides, per request, what to send back and when (undefined = never). */
async function scriptedPlc(answer: (tid: number, unit: number, pdu: Buffer, n: number) => { delayMs: number; pdu: Buffer } | undefined) {
  const seen: Array<{ tid: number; address: number }> = [];
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    const dec = new MbapDecoder();
    s.on('data', (d) => {
      for (const r of dec.push(d)) {
        if (!('frame' in r)) continue;
        const { transactionId: tid, unitId, pdu } = r.frame;
        seen.push({ tid, address: pdu.readUInt16BE(1) });
        const a = answer(tid, unitId, pdu, seen.length);
        if (a) setTimeout(() => s.writable && s.write(encodeMbap(tid, unitId, a.pdu)), a.delayMs);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    accepted: () => accepted,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}
const registerAnswer = (value: number) => Buffer.from([3, 2, value >> 8, value & 0xff]);

test('a refused connection answers 0x0A at once, backs off, and reconnects once the PLC is back', async () => {
  const port = await freePort();
  const up = new TcpUpstream('plc', { host: '127.0.0.1', port, timeout_ms: 500 }, log);
  const { req, pdu } = read(0);
  const first = await up.request('s1', 1, req, pdu);
  assert.equal(first.ok, false);
  assert.equal(!first.ok && first.exception, 0x0a);
  assert.equal(!first.ok && first.code, 'UPSTREAM_UNAVAILABLE');
  // During back-off: refused without a connection attempt.
  const during = await up.request('s1', 1, req, pdu);
  assert.equal(!during.ok && during.exception, 0x0a);
  assert.equal(up.state, 'backoff');
  // The PLC comes up on that port; after the back-off the next request connects.
  const plcServer = net.createServer((s) => {
    const dec = new MbapDecoder();
    s.on('data', (d) => { for (const r of dec.push(d)) if ('frame' in r) s.write(encodeMbap(r.frame.transactionId, r.frame.unitId, registerAnswer(42))); });
  });
  await new Promise<void>((r) => plcServer.listen(port, '127.0.0.1', r));
  let reply;
  for (let i = 0; i < 40; i++) {
    reply = await up.request('s1', 1, req, pdu);
    if (reply.ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(reply?.ok, 'reconnected after back-off');
  assert.deepEqual(reply.ok && [...reply.pdu], [3, 2, 0, 42]);
  up.close();
  await new Promise<void>((r) => plcServer.close(() => r()));
});

test('a PLC that never answers gives 0x0B after timeout_ms; its late answer is not taken for the next request', async () => {
  const plc = await scriptedPlc((_tid, _u, pdu, n) => (n === 1 ? { delayMs: 300, pdu: registerAnswer(111) } : { delayMs: 0, pdu: registerAnswer(pdu.readUInt16BE(1)) }));
  const up = new TcpUpstream('plc', { host: '127.0.0.1', port: plc.port, timeout_ms: 100 }, log);
  const a = read(1);
  const late = await up.request('s1', 1, a.req, a.pdu);
  assert.equal(late.ok, false);
  assert.equal(!late.ok && late.exception, 0x0b);
  assert.equal(!late.ok && late.code, 'UPSTREAM_TIMEOUT');
  // The next request is sent while the first one's answer (111) is still on its way.
  const b = read(7);
  const [next] = await Promise.all([up.request('s1', 1, b.req, b.pdu), new Promise((r) => setTimeout(r, 350))]);
  assert.ok(next.ok);
  assert.deepEqual(next.ok && [...next.pdu], [3, 2, 0, 7], 'its own answer, not the stale 111');
  assert.notEqual(plc.seen[0]!.tid, plc.seen[1]!.tid, 'transaction ids are the gateway\'s own, never reused while in flight');
  up.close();
  await plc.close();
});

test('one shared connection; a fair queue serves sessions in turn, not in arrival order', async () => {
  const plc = await scriptedPlc((_tid, _u, pdu) => ({ delayMs: 2, pdu: registerAnswer(pdu.readUInt16BE(1)) }));
  const up = new TcpUpstream('plc', { host: '127.0.0.1', port: plc.port, timeout_ms: 2000 }, log);
  // Warm the link so every request below is queued behind one in flight.
  const w = read(999);
  await up.request('warm', 1, w.req, w.pdu);
  const order: string[] = [];
  const jobs: Promise<unknown>[] = [];
  // Session A floods 8 requests before B and C send one each: B and C must not wait behind all of A's.
  for (let i = 0; i < 8; i++) { const r = read(100 + i); jobs.push(up.request('A', 1, r.req, r.pdu).then(() => order.push(`A${i}`))); }
  const rb = read(200);
  jobs.push(up.request('B', 1, rb.req, rb.pdu).then(() => order.push('B')));
  const rc = read(300);
  jobs.push(up.request('C', 1, rc.req, rc.pdu).then(() => order.push('C')));
  await Promise.all(jobs);
  assert.ok(order.indexOf('B') <= 2 && order.indexOf('C') <= 3, `B and C served within the first round: ${order.join(' ')}`);
  assert.equal(plc.accepted(), 1, 'all sessions share one upstream connection');
  up.close();
  await plc.close();
});

test('a session that queues more than its bound gets busy (0x06); others are unaffected', async () => {
  const plc = await scriptedPlc((_tid, _u, pdu) => ({ delayMs: 20, pdu: registerAnswer(pdu.readUInt16BE(1)) }));
  const up = new TcpUpstream('plc', { host: '127.0.0.1', port: plc.port, timeout_ms: 5000 }, log);
  const w = read(0);
  await up.request('warm', 1, w.req, w.pdu);
  const flood = Array.from({ length: 40 }, (_, i) => { const r = read(i); return up.request('greedy', 1, r.req, r.pdu); });
  const other = read(500);
  const polite = up.request('polite', 1, other.req, other.pdu);
  const results = await Promise.all(flood);
  const busy = results.filter((r) => !r.ok && r.exception === 0x06).length;
  assert.ok(busy >= 40 - 17, `over-bound requests refused busy (${busy})`);
  const p = await polite;
  assert.ok(p.ok);
  up.close();
  await plc.close();
});

test('pipelining (max_in_flight > 1) matches out-of-order answers by transaction id', async () => {
  // Answers come back in reverse order of arrival within each burst.
  const plc = await scriptedPlc((_tid, _u, pdu, n) => ({ delayMs: 40 - (n % 4) * 10, pdu: registerAnswer(pdu.readUInt16BE(1)) }));
  const up = new TcpUpstream('plc', { host: '127.0.0.1', port: plc.port, timeout_ms: 2000, max_in_flight: 4 }, log);
  const replies = await Promise.all([10, 11, 12, 13].map((a) => { const r = read(a); return up.request(`s${a}`, 1, r.req, r.pdu); }));
  assert.deepEqual(replies.map((r) => r.ok && r.pdu.readUInt16BE(2)), [10, 11, 12, 13]);
  up.close();
  await plc.close();
});
