// The live event stream's parts: which events a filter passes, a watcher's bounded queue in front of a
// real Unix socket whose reader stops reading, the hub following the journal only while watched, and
// the watch screen's layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { EventHub, Watcher, eventMatches, kindOf, severityOf, type StreamLine } from '../../src/admin/event-stream.ts';
import type { StoredEvent } from '../../src/journal/event.ts';
import type { SessionView } from '../../src/sessions/types.ts';
import { lineText, renderScreen } from '../../src/cli/watch-screen.ts';
import { tempDir, until } from '../support.ts';

function stored(seq: number, event: string, code: string, more: Partial<StoredEvent> = {}): StoredEvent {
  return { seq, time: '2026-12-05T10:00:00.000Z', mono: '1', code, event: event as StoredEvent['event'], appliance: 'gw', ...more };
}

test('kinds and severities: a denial is a warning decision, an alert says its own severity, housekeeping is admin', () => {
  const denied = stored(1, 'action.denied', 'PS3002W');
  assert.equal(kindOf(denied), 'decision');
  assert.equal(severityOf(denied), 'warning');
  assert.equal(severityOf(stored(2, 'action.allowed', 'PS3001I')), 'info');
  assert.equal(severityOf(stored(3, 'alert.probing', 'PS5009W', { detail: { severity: 'critical' } })), 'critical');
  assert.equal(severityOf(stored(4, 'alert.journal_unavailable', 'PS5001E')), 'critical');
  assert.equal(kindOf(stored(5, 'containment.applied', 'PS5013I')), 'alert');
  assert.equal(kindOf(stored(6, 'session.opened', 'PS2001I')), 'session');
  assert.equal(kindOf(stored(7, 'admin.request', 'PS6001I')), 'admin');
  assert.equal(kindOf(stored(8, 'ssh.channel', 'PS7001I')), 'other');
});

test('filters: principal or anyone in its chain, target, at-least severity, kinds (admin not by default)', () => {
  const e = stored(1, 'action.denied', 'PS3002W', { principal: 'agent-1', chain: ['agent-1', 'vendor-1'], target: 'plc-1' });
  const m = (f: Parameters<typeof eventMatches>[0], ev = e) => eventMatches(f, ev, kindOf(ev), severityOf(ev));
  assert.equal(m({}), true);
  assert.equal(m({ principal: 'agent-1' }), true);
  assert.equal(m({ principal: 'vendor-1' }), true, 'for whom it acts');
  assert.equal(m({ principal: 'vendor-2' }), false);
  assert.equal(m({ target: 'plc-1' }), true);
  assert.equal(m({ target: 'plc-2' }), false);
  assert.equal(m({ severity: 'warning' }), true);
  assert.equal(m({ severity: 'critical' }), false);
  assert.equal(m({ severity: 'warning' }, stored(2, 'action.allowed', 'PS3001I', { principal: 'agent-1' })), false);
  assert.equal(m({ kinds: ['alert'] }), false);
  assert.equal(m({}, stored(3, 'admin.request', 'PS6001I')), false);
  assert.equal(m({ kinds: ['admin'] }, stored(3, 'admin.request', 'PS6001I')), true);
});

/** A real Unix socket pair: the server side is the watcher's sink, the client reads only when told. */
async function socketPair(dir: string): Promise<{ server: Socket; client: Socket; close: () => void }> {
  const path = join(dir, 's.sock');
  const listener = createServer();
  await new Promise<void>((r) => listener.listen(path, r));
  const accepted = new Promise<Socket>((r) => listener.once('connection', r));
  const client = connect(path);
  const server = await accepted;
  return { server, client, close: () => (client.destroy(), server.destroy(), listener.close()) };
}

test('a watcher whose reader stops: nothing blocks, the queue stays bounded, the gap is told exactly where it is', async () => {
  const tmp = tempDir('penstock-watcher-');
  const { server, client, close } = await socketPair(tmp.dir);
  try {
    client.pause();
    const limits = { socketBytes: 4096, queueLines: 8, queueBytes: 64 * 1024 };
    const w = new Watcher(server, {}, limits);
    const pad = 'x'.repeat(2000);
    const total = 2000; // ~4 MB: far more than the kernel and the queue hold
    const started = performance.now();
    for (let seq = 0; seq < total; seq++) {
      w.offerEvent(`${JSON.stringify({ type: 'event', kind: 'decision', severity: 'info', event: stored(seq, 'action.allowed', 'PS3001I', { detail: { pad } }) })}\n`, seq);
      // What the daemon holds for this watcher never passes the socket mark plus one line, and the queue's bound.
      assert.ok(server.writableLength <= limits.socketBytes + 2200, `socket buffer ${server.writableLength}`);
    }
    assert.ok(performance.now() - started < 5000, 'offering never waited for the reader');
    assert.equal(w.caughtUp, false);

    const lines: StreamLine[] = [];
    let buf = '';
    client.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, nl)) as StreamLine);
        buf = buf.slice(nl + 1);
      }
    });
    client.resume();
    const lost = await until(() => lines.find((l) => l.type === 'lost'), 'the lost notice once caught up');
    assert.equal(lost.type, 'lost');
    if (lost.type !== 'lost') return;
    const before = lines.slice(0, lines.indexOf(lost)).map((l) => (l.type === 'event' ? l.event.seq : -1));
    assert.deepEqual(before, Array.from({ length: before.length }, (_, i) => i), 'every event before the gap, in order');
    assert.equal(lost.first_seq, before.length);
    assert.equal(lost.last_seq, total - 1);
    assert.equal(lost.dropped, total - before.length);
    await until(() => w.caughtUp || undefined, 'caught up');

    // Its place from here on: the next event follows the notice.
    w.offerEvent(`${JSON.stringify({ type: 'event', kind: 'decision', severity: 'info', event: stored(total, 'action.allowed', 'PS3001I') })}\n`, total);
    const next = await until(() => lines.at(-1)?.type === 'event' ? lines.at(-1) : undefined, 'the next event');
    assert.equal(next.type === 'event' && next.event.seq, total);
    w.stop();
  } finally {
    close();
    tmp.cleanup();
  }
});

test('the hub follows the journal only while someone watches, and encodes each event once for all', async () => {
  const tmp = tempDir('penstock-hub-');
  const pairs = await Promise.all([socketPair(join(tmp.dir)), (async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(tmp.dir, 'b'));
    return socketPair(join(tmp.dir, 'b'));
  })()]);
  const listeners = new Set<(events: readonly StoredEvent[]) => void>();
  const journal = { onCommitted: (l: (events: readonly StoredEvent[]) => void) => (listeners.add(l), () => void listeners.delete(l)) };
  const session = { id: 's1', principal: 'vendor-1', chain: ['vendor-1'], target: 'plc-1' } as SessionView;
  const hub = new EventHub({ journal, sessions: () => [session], now: () => Date.parse('2026-12-05T10:00:00Z'), sessionsEveryMs: 60_000 });
  try {
    assert.equal(listeners.size, 0, 'nobody watches: the journal parses nothing for us');
    const stopA = hub.follow(pairs[0].server, {});
    const stopB = hub.follow(pairs[1].server, { principal: 'vendor-2' });
    assert.equal(listeners.size, 1);
    for (const l of listeners) l([stored(10, 'action.denied', 'PS3002W', { principal: 'vendor-1', chain: ['vendor-1'], target: 'plc-1' })]);
    const read = (s: Socket) => {
      const got: StreamLine[] = [];
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let nl; (nl = buf.indexOf('\n')) >= 0; buf = buf.slice(nl + 1)) got.push(JSON.parse(buf.slice(0, nl)) as StreamLine);
      });
      return got;
    };
    const a = read(pairs[0].client);
    const b = read(pairs[1].client);
    await until(() => a.length >= 2 || undefined, 'A: snapshot and event');
    await until(() => b.length >= 1 || undefined, 'B: snapshot');
    assert.deepEqual(a.map((l) => l.type), ['sessions', 'event']);
    assert.equal(a[0]!.type === 'sessions' && a[0]!.sessions[0]!.id, 's1');
    assert.deepEqual(b.map((l) => l.type), ['sessions'], 'B follows another principal: no event');
    assert.equal(b[0]!.type === 'sessions' && b[0]!.sessions.length, 0, 'and no session of vendor-1');
    stopA();
    assert.equal(listeners.size, 1);
    stopB();
    stopB();
    assert.equal(listeners.size, 0, 'the last watcher gone: the hub lets go of the journal');
    assert.equal(hub.watching, 0);
  } finally {
    for (const p of pairs) p.close();
    tmp.cleanup();
  }
});

test('the screen: exactly the terminal\'s rows, no line wider than its columns, sessions on top, newest events last', () => {
  const sessions = Array.from({ length: 30 }, (_, i) => ({
    id: `s${i}`, principal: 'vendor-1', kind: 'vendor', chain: ['vendor-1', 'work-order:WO-7'], target: 'plc-1', listener: 'mb', protocol: 'modbus',
    remote: '127.0.0.1:5000', started: '2026-12-05T09:00:00.000Z', grants: [], attributes: {}, counters: { allowed: i, denied: 0, bytesIn: 0, bytesOut: 0 },
  })) as SessionView[];
  const events = Array.from({ length: 100 }, (_, i) => lineText({ type: 'event', kind: 'decision', severity: 'warning', event: stored(i, 'action.denied', 'PS3002W', { principal: 'vendor-1', chain: ['vendor-1', 'work-order:WO-7'], target: 'plc-1', action: { verb: 'write', object: { kind: 'modbus', table: 'holding_register', address: 50 } }, decision: { effect: 'deny', reason: 'no_rule' } }) })!);
  assert.match(events[0]!, /#0 WARN DENIED \(no_rule\) vendor-1 \(for work-order:WO-7\) → plc-1: write table=holding_register address=50/);
  for (const [columns, rows] of [[120, 40], [40, 10], [200, 60]] as const) {
    const screen = renderScreen({ sessions, events, title: 'everything' }, columns, rows, Date.parse('2026-12-05T10:00:00Z'));
    assert.equal(screen.length, rows);
    for (const l of screen) assert.ok(l.length <= columns, `${l.length} > ${columns}: ${l}`);
    assert.match(screen.join('\n'), /… and \d+ more/);
    assert.match(screen.at(-1)!, /q or Ctrl-C: quit/);
    assert.ok(screen.at(-2)!.startsWith(events.at(-1)!.slice(0, Math.min(columns - 1, 20))), 'the newest event just above the help line');
  }
  assert.deepEqual(lineText({ type: 'lost', dropped: 5, first_seq: 10, last_seq: 14 })?.includes('5 event(s) not shown'), true);
});
