// The codec against a peer no one here wrote: mbpoll (libmodbus) talks to a bare TCP server built from
// MbapDecoder + decodeRequest + encodeResponse. libmodbus checks every answer strictly (byte counts,
// echoes, transaction ids), so this proves our encoders' bytes and our decoders' reading of a real
// client's requests. Skipped when mbpoll is not installed (Debian package `mbpoll`).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  MbapDecoder,
  decodeRequest,
  encodeException,
  encodeMbap,
  encodeResponse,
  type ModbusRequest,
  type ModbusResponse,
} from '../../../src/adapters/modbus/codec.ts';

const MBPOLL = '/usr/bin/mbpoll';
const seen: Array<{ unit: number; request: ModbusRequest }> = [];

function answer(req: ModbusRequest): ModbusResponse {
  switch (req.kind) {
    case 'read_bits': return { kind: 'read_bits', fc: req.fc, values: Array.from({ length: req.quantity }, (_, i) => ((req.address + i) % 3 === 0 ? 1 : 0)) };
    case 'read_registers': return { kind: 'read_registers', fc: req.fc, values: Array.from({ length: req.quantity }, (_, i) => (req.fc === 4 ? 1000 : 0) + req.address + i) };
    case 'write_single_coil': return { kind: 'write_single', fc: 5, address: req.address, value: req.value ? 0xff00 : 0 };
    case 'write_single_register': return { kind: 'write_single', fc: 6, address: req.address, value: req.value };
    case 'write_multiple_coils':
    case 'write_multiple_registers': return { kind: 'write_multiple', fc: req.fc, address: req.address, quantity: req.values.length };
    default: return { kind: 'exception', fc: req.fc, exception: 1 };
  }
}

const server = net.createServer((socket) => {
  const decoder = new MbapDecoder();
  socket.on('data', (chunk) => {
    for (const r of decoder.push(chunk)) {
      if ('error' in r) {
        if (r.error.close) socket.destroy();
        continue;
      }
      const decoded = decodeRequest(r.frame.pdu);
      const pdu = decoded.ok ? encodeResponse(answer(decoded.value)) : encodeException(r.frame.pdu[0] ?? 0, decoded.error.exception);
      if (decoded.ok) seen.push({ unit: r.frame.unitId, request: decoded.value });
      socket.write(encodeMbap(r.frame.transactionId, r.frame.unitId, pdu));
    }
  });
  socket.on('error', () => {});
});
const listening = new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** One mbpoll run (0-based references, one poll); `writes` given → a write of those values. */
function mbpoll(options: string[], writes: number[] = []): Promise<{ code: number; out: string }> {
  return listening.then((port) => new Promise((resolve) => {
    execFile(MBPOLL, ['-m', 'tcp', '-p', String(port), '-1', '-0', '-o', '2', ...options, '127.0.0.1', ...writes.map(String)],
      { timeout: 10_000 }, (err, stdout) => resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, out: stdout }));
  }));
}

/** The `[ref]: value` lines mbpoll prints, as numbers. */
function values(out: string): number[] {
  return [...out.matchAll(/^\[\d+\]:\s+(-?\d+)/gm)].map((m) => Number(m[1]));
}

const skip = existsSync(MBPOLL) ? false : 'mbpoll is not installed';

test('mbpoll reads holding and input registers, coils and discrete inputs', { skip }, async () => {
  seen.length = 0;
  const hr = await mbpoll(['-a', '7', '-t', '4', '-r', '100', '-c', '125']);
  assert.equal(hr.code, 0, hr.out);
  assert.deepEqual(values(hr.out), Array.from({ length: 125 }, (_, i) => 100 + i));
  const ir = await mbpoll(['-t', '3', '-r', '5', '-c', '3']);
  assert.deepEqual(values(ir.out), [1005, 1006, 1007]);
  const co = await mbpoll(['-t', '0', '-r', '0', '-c', '7']);
  assert.deepEqual(values(co.out), [1, 0, 0, 1, 0, 0, 1]);
  const di = await mbpoll(['-t', '1', '-r', '2', '-c', '4']);
  assert.deepEqual(values(di.out), [0, 1, 0, 0]);
  assert.deepEqual(seen.map((s) => [s.unit, s.request]), [
    [7, { kind: 'read_registers', fc: 3, address: 100, quantity: 125 }],
    [1, { kind: 'read_registers', fc: 4, address: 5, quantity: 3 }],
    [1, { kind: 'read_bits', fc: 1, address: 0, quantity: 7 }],
    [1, { kind: 'read_bits', fc: 2, address: 2, quantity: 4 }],
  ]);
});

test('mbpoll writes registers and coils, and our echo satisfies it', { skip }, async () => {
  seen.length = 0;
  assert.equal((await mbpoll(['-t', '4', '-r', '10'], [1234])).code, 0);
  assert.equal((await mbpoll(['-t', '4', '-r', '20'], [7, 8, 65535])).code, 0);
  assert.equal((await mbpoll(['-t', '0', '-r', '3'], [1])).code, 0);
  assert.equal((await mbpoll(['-t', '0', '-r', '30'], [1, 0, 1, 1, 0, 0, 1, 1, 1])).code, 0);
  assert.deepEqual(seen.map((s) => s.request), [
    { kind: 'write_single_register', fc: 6, address: 10, value: 1234 },
    { kind: 'write_multiple_registers', fc: 16, address: 20, values: [7, 8, 65535] },
    { kind: 'write_single_coil', fc: 5, address: 3, value: 1 },
    { kind: 'write_multiple_coils', fc: 15, address: 30, values: [1, 0, 1, 1, 0, 0, 1, 1, 1] },
  ]);
});
