// The shared upstream link on its own, against small scripted TCP peers standing in for PLCs that
// misbehave in the ways real ones do: refuse connections, never answer, answer late, answer out of order.
// (The happy path against real PLC software is covered by the e2e tests.)
// The peers are real sockets; only time is faked: the link runs on a ManualClock, so a time-out or a
// back-off happens when a test moves the clock, never because the machine was slow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { pino } from 'pino';
import { ManualClock } from '../../../src/common/clock.ts';
import { TcpUpstream, type GatewayRead, type UpstreamReply } from '../../../src/adapters/modbus/upstream.ts';
import { MbapDecoder, encodeMbap, encodeRequest } from '../../../src/adapters/modbus/codec.ts';
import { freePort } from './fixtures/harness.ts';

const log = pino({ level: 'silent' });
const T0 = Date.parse('2026-12-05T08:00:00Z');
/** With time faked, a lost answer never times out: a bug would hang the test, so each gets a bound. */
const HANG_GUARD = { timeout: 30_000 };
const read = (address: number): { req: GatewayRead; pdu: Buffer } => {
  const req: GatewayRead = { kind: 'read_registers', fc: 3, address, quantity: 1 };
  return { req, pdu: encodeRequest(req) };
};

/** The reply if the promise has settled, else 'pending' (a settled promise resolves within this turn). */
function peek(p: Promise<UpstreamReply>): Promise<UpstreamReply | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);
}

interface PlcRequest {
  tid: number;
  unit: number;
  pdu: Buffer;
  /** 1-based count of requests this PLC has seen. */
  n: number;
  /** Send an answer for this request, now or later (never called = never answered). */
  reply: (pdu: Buffer) => void;
}

/** A scripted PLC: `onRequest` decides, per request, what to send back and when. */
async function scriptedPlc(onRequest: (r: PlcRequest) => void) {
  const seen: Array<{ tid: number; address: number }> = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
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
        const { transactionId: tid, unitId: unit, pdu } = r.frame;
        seen.push({ tid, address: pdu.readUInt16BE(1) });
        onRequest({ tid, unit, pdu, n: seen.length, reply: (answer) => { if (s.writable) s.write(encodeMbap(tid, unit, answer)); } });
        for (const w of waiters.filter((w) => seen.length >= w.n)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    /** Resolves once the PLC has received `n` requests in all. */
    received: (n: number) => new Promise<void>((resolve) => { if (seen.length >= n) resolve(); else waiters.push({ n, resolve }); }),
    accepted: () => accepted,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}
const registerAnswer = (value: number) => Buffer.from([3, 2, value >> 8, value & 0xff]);
/** A PLC that answers every read at once with the register's own address as its value. */
const echoAddress = ({ pdu, reply }: PlcRequest) => reply(registerAnswer(pdu.readUInt16BE(1)));

test('a refused connection answers 0x0A at once, backs off, and reconnects once the PLC is back', HANG_GUARD, async () => {
  const port = await freePort();
  const clock = new ManualClock(T0);
  const up = new TcpUpstream('plc', { host: '127.0.0.1', port, timeout_ms: 500 }, log, clock);
  const { req } = read(0);
  const first = await up.gatewayRead('s1', 1, req);
  assert.equal(first.ok, false);
  assert.equal(!first.ok && first.exception, 0x0a);
  assert.equal(!first.ok && first.code, 'UPSTREAM_UNAVAILABLE');
  // During back-off: refused without a connection attempt.
  const during = await up.gatewayRead('s1', 1, req);
  assert.equal(!during.ok && during.exception, 0x0a);
  assert.equal(up.state, 'backoff');
  // The PLC comes up on that port; until the back-off (250 ms after the first failure) is over, requests
  // are still refused at once and no connection is attempted.
  let accepted = 0;
  const plcServer = net.createServer((s) => {
    accepted++;
    const dec = new MbapDecoder();
    s.on('data', (d) => { for (const r of dec.push(d)) if ('frame' in r) s.write(encodeMbap(r.frame.transactionId, r.frame.unitId, registerAnswer(42))); });
  });
  await new Promise<void>((r) => plcServer.listen(port, '127.0.0.1', r));
  clock.advance(249);
  const stillBackingOff = await up.gatewayRead('s1', 1, req);
  assert.equal(!stillBackingOff.ok && stillBackingOff.code, 'UPSTREAM_UNAVAILABLE');
  assert.equal(up.state, 'backoff');
  assert.equal(accepted, 0, 'no connection attempt during back-off');
  // After the back-off the next request connects.
  clock.advance(1);
  assert.equal(up.state, 'down');
  const reply = await up.gatewayRead('s1', 1, req);
  assert.ok(reply.ok, 'reconnected after back-off');
  assert.deepEqual(reply.ok && [...reply.pdu], [3, 2, 0, 42]);
  assert.equal(accepted, 1);
  up.close();
  await new Promise<void>((r) => plcServer.close(() => r()));
});

test('a PLC that never answers gives 0x0B after timeout_ms; its late answer is not taken for the next request', HANG_GUARD, async () => {
  // The first request's answer (111) is held back and sent just before the second request's own answer,
  // so it arrives while the second request is in flight.
  let lateAnswer: (() => void) | undefined;
  const plc = await scriptedPlc((r) => {
    if (r.n === 1) { lateAnswer = () => r.reply(registerAnswer(111)); return; }
    lateAnswer?.();
    echoAddress(r);
  });
  const clock = new ManualClock(T0);
  const up = new TcpUpstream('plc', { host: '127.0.0.1', port: plc.port, timeout_ms: 100 }, log, clock);
  const a = read(1);
  const pending = up.gatewayRead('s1', 1, a.req);
  await plc.received(1);
  clock.advance(99);
  assert.equal(await peek(pending), 'pending', 'no answer yet, and not timed out before timeout_ms');
  clock.advance(1);
  const late = await pending;
  assert.equal(late.ok, false);
  assert.equal(!late.ok && late.exception, 0x0b);
  assert.equal(!late.ok && late.code, 'UPSTREAM_TIMEOUT');
  // The next request is sent while the first one's answer (111) is still on its way.
  const b = read(7);
  const next = await up.gatewayRead('s1', 1, b.req);
  assert.ok(next.ok);
  assert.deepEqual(next.ok && [...next.pdu], [3, 2, 0, 7], 'its own answer, not the stale 111');
  assert.notEqual(plc.seen[0]!.tid, plc.seen[1]!.tid, 'transaction ids are the gateway\'s own, never reused while in flight');
  up.close();
  await plc.close();
});

test('time-outs are counted per request on the link\'s one timer: a request sent after an answered one still gets 0x0B at exactly its own timeout_ms, and the time in flight of the next starts when it is sent', HANG_GUARD, async () => {
  // Request 1 is answered; request 2, sent 50 ms later, never is; request 3 queues behind it.
  const plc = await scriptedPlc((r) => {
    if (r.n === 1) echoAddress(r);
  });
  const clock = new ManualClock(T0);
  const up = new TcpUpstream('plc', { host: '127.0.0.1', port: plc.port, timeout_ms: 100 }, log, clock);
  const first = await up.gatewayRead('s1', 1, read(1).req);
  assert.ok(first.ok);
  clock.advance(50);
  const second = up.gatewayRead('s1', 1, read(2).req);
  await plc.received(2);
  clock.advance(30);
  const third = up.gatewayRead('s2', 1, read(3).req); // queued at t=80: in the queue until t=150, then in flight
  clock.advance(69); // t=149: 99 ms after the second was sent
  assert.equal(await peek(second), 'pending', 'not timed out before its own timeout_ms, though the first request\'s would have passed');
  clock.advance(1); // t=150
  const r2 = await second;
  assert.equal(!r2.ok && r2.code, 'UPSTREAM_TIMEOUT');
  await plc.received(3); // sent once the link was free, at t=150: it may take until t=250
  clock.advance(99);
  assert.equal(await peek(third), 'pending', 'its time in flight restarts when it is sent');
  clock.advance(1);
  const r3 = await third;
  assert.equal(!r3.ok && r3.code, 'UPSTREAM_TIMEOUT');
  assert.equal(!r3.ok && r3.exception, 0x0b);
  up.close();
  await plc.close();
});

test('a request that waits in the queue for twice timeout_ms gets 0x0B and is never sent', HANG_GUARD, async () => {
  // One in flight, a PLC that answers nothing but address 9: A holds the link until t=100, then B until
  // t=200; C, queued at t=0 behind both, reaches its queue limit (t=200) before the link is free for it.
  const plc = await scriptedPlc((r) => {
    if (r.pdu.readUInt16BE(1) === 9) echoAddress(r);
  });
  const clock = new ManualClock(T0);
  const up = new TcpUpstream('plc', { host: '127.0.0.1', port: plc.port, timeout_ms: 100 }, log, clock);
  const a = up.gatewayRead('s1', 1, read(1).req);
  const b = up.gatewayRead('s2', 1, read(2).req);
  const c = up.gatewayRead('s3', 1, read(3).req);
  await plc.received(1);
  clock.advance(100);
  assert.equal(!((await a).ok) && (await a as { code: string }).code, 'UPSTREAM_TIMEOUT');
  await plc.received(2);
  clock.advance(99);
  assert.equal(await peek(c), 'pending', 'not before twice timeout_ms');
  clock.advance(1);
  const rc = await c;
  assert.equal(!rc.ok && rc.code, 'UPSTREAM_TIMEOUT');
  assert.equal(!rc.ok && rc.exception, 0x0b);
  assert.equal((await b).ok, false);
  // The link is free again; the next request is the third the PLC ever sees: C never went out.
  const d = await up.gatewayRead('s1', 1, read(9).req);
  assert.ok(d.ok);
  assert.deepEqual(plc.seen.map((x) => x.address), [1, 2, 9]);
  up.close();
  await plc.close();
});

test('one shared connection; a fair queue serves sessions in turn, not in arrival order', HANG_GUARD, async () => {
  const plc = await scriptedPlc(echoAddress);
  const up = new TcpUpstream('plc', { host: '127.0.0.1', port: plc.port, timeout_ms: 2000 }, log, new ManualClock(T0));
  // Warm the link so every request below is queued behind one in flight.
  const w = read(999);
  await up.gatewayRead('warm', 1, w.req);
  const order: string[] = [];
  const jobs: Promise<unknown>[] = [];
  // Session A floods 8 requests before B and C send one each: B and C must not wait behind all of A's.
  for (let i = 0; i < 8; i++) { const r = read(100 + i); jobs.push(up.gatewayRead('A', 1, r.req).then(() => order.push(`A${i}`))); }
  const rb = read(200);
  jobs.push(up.gatewayRead('B', 1, rb.req).then(() => order.push('B')));
  const rc = read(300);
  jobs.push(up.gatewayRead('C', 1, rc.req).then(() => order.push('C')));
  await Promise.all(jobs);
  assert.ok(order.indexOf('B') <= 2 && order.indexOf('C') <= 3, `B and C served within the first round: ${order.join(' ')}`);
  assert.equal(plc.accepted(), 1, 'all sessions share one upstream connection');
  up.close();
  await plc.close();
});

test('a session that queues more than its bound gets busy (0x06); others are unaffected', HANG_GUARD, async () => {
  const plc = await scriptedPlc(echoAddress);
  const up = new TcpUpstream('plc', { host: '127.0.0.1', port: plc.port, timeout_ms: 5000 }, log, new ManualClock(T0));
  const w = read(0);
  await up.gatewayRead('warm', 1, w.req);
  const flood = Array.from({ length: 40 }, (_, i) => { const r = read(i); return up.gatewayRead('greedy', 1, r.req); });
  const other = read(500);
  const polite = up.gatewayRead('polite', 1, other.req);
  const results = await Promise.all(flood);
  const busy = results.filter((r) => !r.ok && r.exception === 0x06).length;
  assert.ok(busy >= 40 - 17, `over-bound requests refused busy (${busy})`);
  const p = await polite;
  assert.ok(p.ok);
  up.close();
  await plc.close();
});

test('pipelining (max_in_flight > 1) matches out-of-order answers by transaction id', HANG_GUARD, async () => {
  // The PLC holds its answers until all four requests are in, then answers them in reverse order.
  const held: PlcRequest[] = [];
  const plc = await scriptedPlc((r) => {
    held.push(r);
    if (held.length === 4) for (const h of held.reverse()) echoAddress(h);
  });
  const up = new TcpUpstream('plc', { host: '127.0.0.1', port: plc.port, timeout_ms: 2000, max_in_flight: 4 }, log, new ManualClock(T0));
  const replies = await Promise.all([10, 11, 12, 13].map((a) => { const r = read(a); return up.gatewayRead(`s${a}`, 1, r.req); }));
  assert.deepEqual(replies.map((r) => r.ok && r.pdu.readUInt16BE(2)), [10, 11, 12, 13]);
  assert.deepEqual(plc.seen.map((s) => s.address), [10, 11, 12, 13], 'all four were in flight at once');
  up.close();
  await plc.close();
});
