// The SFTP proxy's download machinery on its own: read-ahead over a real file on disk (the reader is a
// positional read of that file, standing in for the target's SFTP READ), and the in-order SHA-256 of
// what a client was sent, compared with a one-shot SHA-256 of the file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { AheadBudget, ByteBudget, InOrderHash, ReadAhead, type RangeReader } from '../../../src/adapters/ssh/sftp-read-ahead.ts';
import { tempDir } from '../../support.ts';

const { dir, cleanup } = tempDir('penstock-readahead-');
after(cleanup);

const CHUNK = 1024;
const DEPTH = 4;

function fileOf(name: string, size: number): { path: string; bytes: Buffer } {
  const path = join(dir, name);
  const bytes = randomBytes(size);
  writeFileSync(path, bytes);
  return { path, bytes };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Positional reads of a real file, counted, each answered on a later turn (as a network round trip). */
function fileReader(path: string, failAt?: number): { read: RangeReader; calls: { offset: number; length: number }[]; inFlight: () => number; maxInFlight: () => number } {
  const calls: { offset: number; length: number }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const read: RangeReader = (offset, length) => {
    calls.push({ offset, length });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    return new Promise((resolve) =>
      setImmediate(() => {
        inFlight--;
        if (failAt !== undefined && offset + length > failAt) return resolve(Object.assign(new Error('read failed'), { code: 4 }));
        const fd = openSync(path, 'r');
        try {
          const buf = Buffer.alloc(length);
          const n = readSync(fd, buf, 0, length, offset);
          resolve(buf.subarray(0, n));
        } finally {
          closeSync(fd);
        }
      }),
    );
  };
  return { read, calls, inFlight: () => inFlight, maxInFlight: () => maxInFlight };
}

/** A client reading [0, size) in `step` pieces, `parallel` READs in flight (as OpenSSH's sftp does). */
async function download(ra: ReadAhead, size: number, step: number, parallel: number, hash: InOrderHash, order: (answers: number[]) => number[] = (a) => a): Promise<Buffer> {
  const out = Buffer.alloc(size);
  for (let base = 0; base < size; base += step * parallel) {
    const offsets: number[] = [];
    for (let o = base; o < Math.min(size, base + step * parallel); o += step) offsets.push(o);
    const answers = await Promise.all(offsets.map((o) => ra.read(o, step)));
    // Answers go to the client (and into the hash) in whatever order `order` gives.
    for (const i of order(offsets.map((_, i) => i))) {
      const data = answers[i]!;
      assert.ok(!(data instanceof Error), 'no error expected');
      data.copy(out, offsets[i]!);
      hash.add(offsets[i]!, data);
    }
  }
  return out;
}

test('in-order reads are served from read-ahead: the bytes are the file, the hash equals a one-shot SHA-256', async () => {
  const { path, bytes } = fileOf('in-order', 50 * CHUNK + 123);
  const r = fileReader(path);
  const budget = new AheadBudget(64);
  const ra = new ReadAhead(r.read, bytes.length, budget, { chunk: CHUNK, depth: DEPTH });
  const hash = new InOrderHash();
  const got = await download(ra, bytes.length, 256, 4, hash);
  assert.ok(got.equals(bytes));
  assert.equal(hash.hashedUpTo, bytes.length);
  assert.equal(hash.digest(), sha256(bytes));
  // Read ahead, in whole chunks aligned on the start: far fewer upstream reads than client reads.
  assert.ok(r.calls.every((c) => c.offset % CHUNK === 0), 'chunk-aligned upstream reads');
  assert.ok(r.calls.length <= Math.ceil(bytes.length / CHUNK) + 1, `${r.calls.length} upstream reads`);
  assert.ok(r.maxInFlight() > 1, 'round trips overlap');
  ra.drop();
  assert.equal(budget.held, 0, 'every chunk given back');
});

test('answers hashed out of order give the same SHA-256 as the file', async () => {
  const { path, bytes } = fileOf('shuffled', 37 * CHUNK + 7);
  const ra = new ReadAhead(fileReader(path).read, bytes.length, new AheadBudget(), { chunk: CHUNK, depth: DEPTH });
  const hash = new InOrderHash();
  await download(ra, bytes.length, 512, 8, hash, (a) => a.reverse());
  assert.equal(hash.digest(), sha256(bytes));
});

test('overlapping answers (a client asking again from inside one it had) count their new bytes once', () => {
  const bytes = randomBytes(3000);
  const hash = new InOrderHash();
  hash.add(1500, bytes.subarray(1500, 3000));
  hash.add(1000, bytes.subarray(1000, 2000)); // overlaps the held one
  hash.add(0, bytes.subarray(0, 1200)); // overlaps the next
  assert.equal(hash.hashedUpTo, 3000);
  assert.equal(hash.digest(), sha256(bytes));
});

test('read-ahead never reads past the decided size, even when the file has grown since', async () => {
  const { path, bytes } = fileOf('grown', 10 * CHUNK);
  const size = 6 * CHUNK + 10;
  const r = fileReader(path);
  const ra = new ReadAhead(r.read, size, new AheadBudget(), { chunk: CHUNK, depth: DEPTH });
  const hash = new InOrderHash();
  const got = await download(ra, size, 700, 2, hash);
  assert.ok(got.equals(bytes.subarray(0, size)));
  assert.ok(r.calls.every((c) => c.offset + c.length <= size), 'no upstream read beyond the size');
  assert.equal((await ra.read(size, 100) as Buffer).length, 0, 'end of file at the size');
  assert.equal(hash.digest(), sha256(bytes.subarray(0, size)));
});

test('a file that shrank after it was opened ends early: what was there, then end of file', async () => {
  const { path, bytes } = fileOf('shrunk', 8 * CHUNK);
  const ra = new ReadAhead(fileReader(path).read, bytes.length, new AheadBudget(), { chunk: CHUNK, depth: DEPTH });
  const first = await ra.read(0, 512);
  assert.ok(Buffer.isBuffer(first) && first.equals(bytes.subarray(0, 512)));
  ra.drop(); // drop what was read ahead from the longer file
  truncateSync(path, 3 * CHUNK + 5);
  let at = 512;
  const parts: Buffer[] = [first];
  for (;;) {
    const d = await ra.read(at, 1000);
    assert.ok(!(d instanceof Error));
    if (d.length === 0) break;
    parts.push(d);
    at += d.length;
  }
  assert.equal(at, 3 * CHUNK + 5);
  assert.ok(Buffer.concat(parts).equals(bytes.subarray(0, at)));
});

test('the budget bounds the chunks held over all files of a channel; past it reads go straight to the target', async () => {
  const a = fileOf('budget-a', 40 * CHUNK);
  const b = fileOf('budget-b', 40 * CHUNK);
  const budget = new AheadBudget(5);
  const ra = new ReadAhead(fileReader(a.path).read, a.bytes.length, budget, { chunk: CHUNK, depth: 8 });
  const rb = new ReadAhead(fileReader(b.path).read, b.bytes.length, budget, { chunk: CHUNK, depth: 8 });
  const [da, db] = await Promise.all([ra.read(0, 100), rb.read(0, 100)]);
  assert.ok(Buffer.isBuffer(da) && da.equals(a.bytes.subarray(0, 100)));
  assert.ok(Buffer.isBuffer(db) && db.equals(b.bytes.subarray(0, 100)));
  assert.ok(budget.held <= 5, `${budget.held} held`);
  assert.equal(ra.held + rb.held, budget.held);
  // With the budget spent, b still reads correctly (directly).
  const hash = new InOrderHash();
  hash.add(0, db);
  const rest = await download(rb, b.bytes.length, 1000, 4, new InOrderHash());
  assert.ok(rest.equals(b.bytes));
  ra.drop();
  rb.drop();
  assert.equal(budget.held, 0);
});

test('a client jumping about is served directly and gets the right bytes; nothing is held for it', async () => {
  const { path, bytes } = fileOf('random', 30 * CHUNK);
  const r = fileReader(path);
  const budget = new AheadBudget();
  const ra = new ReadAhead(r.read, bytes.length, budget, { chunk: CHUNK, depth: DEPTH });
  for (const off of [20 * CHUNK + 3, 5 * CHUNK, 27 * CHUNK + 11]) {
    const d = await ra.read(off, 300);
    assert.ok(Buffer.isBuffer(d) && d.equals(bytes.subarray(off, off + 300)));
  }
  assert.equal(budget.held, 0, 'no read-ahead for random reads');
  assert.equal(r.calls.length, 3);
});

test('a failure mid-way: the bytes before it are answered, then the error; the hash covers only the prefix sent', async () => {
  const { path, bytes } = fileOf('failing', 20 * CHUNK);
  const failAt = 7 * CHUNK;
  const ra = new ReadAhead(fileReader(path, failAt).read, bytes.length, new AheadBudget(), { chunk: CHUNK, depth: DEPTH });
  const hash = new InOrderHash();
  let at = 0;
  let error: Error | undefined;
  while (at < bytes.length) {
    const d = await ra.read(at, 600);
    if (d instanceof Error) {
      error = d;
      break;
    }
    assert.ok(d.equals(bytes.subarray(at, at + d.length)));
    hash.add(at, d);
    at += d.length;
  }
  assert.ok(error, 'the error reaches the client');
  assert.equal(at, failAt - (failAt % CHUNK), 'every byte before the failing chunk was sent');
  assert.equal(hash.hashedUpTo, at);
  assert.equal(hash.digest(), sha256(bytes.subarray(0, at)));
});

test('the hash gives up when answers come too scattered: past the pending chunk or byte bound', () => {
  const bytes = randomBytes(64 * 100);
  const byChunks = new InOrderHash({ maxPendingChunks: 10 });
  for (let i = 11; i >= 1; i--) byChunks.add(i * 100, bytes.subarray(i * 100, i * 100 + 100));
  assert.equal(byChunks.hashing, false);
  byChunks.add(0, bytes.subarray(0, 100));
  assert.equal(byChunks.hashedUpTo, 0, 'nothing more is hashed once it gave up');
  assert.equal(byChunks.digest(), undefined);

  const byBytes = new InOrderHash({ maxPendingBytes: 1000 });
  byBytes.add(0, bytes.subarray(0, 100));
  for (let i = 2; i <= 12; i++) byBytes.add(i * 100, bytes.subarray(i * 100, i * 100 + 100));
  assert.equal(byBytes.hashing, false);
  assert.equal(byBytes.pendingBytes, 0, 'what was held is let go');
  assert.equal(byBytes.hashedUpTo, 100, 'the prefix hashed before it gave up');

  const within = new InOrderHash({ maxPendingBytes: 1000 });
  for (let i = 9; i >= 0; i--) within.add(i * 100, bytes.subarray(i * 100, i * 100 + 100));
  assert.equal(within.hashedUpTo, 1000);
  assert.equal(within.pendingBytes, 0);
  assert.equal(within.digest(), sha256(bytes.subarray(0, 1000)));
});

test('a file appended to while read: the hash is of the bytes sent, up to the decided size', async () => {
  const { path, bytes } = fileOf('appended', 4 * CHUNK);
  const ra = new ReadAhead(fileReader(path).read, bytes.length, new AheadBudget(), { chunk: CHUNK, depth: DEPTH });
  const hash = new InOrderHash();
  const first = (await ra.read(0, CHUNK)) as Buffer;
  hash.add(0, first);
  appendFileSync(path, randomBytes(CHUNK));
  const rest = await download(ra, bytes.length, CHUNK, 2, new InOrderHash());
  for (let o = CHUNK; o < bytes.length; o += CHUNK) hash.add(o, rest.subarray(o, o + CHUNK));
  assert.equal(hash.digest(), sha256(bytes));
});

test('READ answers in flight are bounded in bytes, handed out in arrival order; one larger than the bound goes alone', async () => {
  const budget = new ByteBudget(1000);
  const started: string[] = [];
  const take = (name: string, bytes: number) => budget.take(bytes).then(() => started.push(name));
  const a = take('a', 600);
  const b = take('b', 600); // does not fit beside a
  const c = take('c', 100); // would fit, but b came first
  await a;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started, ['a']);
  assert.equal(budget.held, 600);
  budget.give(600);
  await Promise.all([b, c]);
  assert.deepEqual(started, ['a', 'b', 'c']);
  assert.equal(budget.held, 700);
  const big = take('big', 5000); // larger than the bound: waits until nothing is held
  await new Promise((r) => setImmediate(r));
  assert.equal(started.length, 3);
  budget.give(600);
  budget.give(100);
  await big;
  assert.equal(budget.held, 5000);
  budget.give(5000);
  assert.equal(budget.held, 0);
});
