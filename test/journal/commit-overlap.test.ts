// The commit runs beside the event loop: while one batch waits for LMDB (here: for the write lock another
// process holds, as it would wait for a slow fsync), the process still serves sockets and appends, and
// everything appended meanwhile goes into ONE next commit. Before the commit thread, the event loop
// stopped inside the commit: nothing else ran until it returned, and a write's forward, its reply and the
// next write's record queued behind every fsync (issue 17: 16 Modbus writers reached 0.03 of direct).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openJournal, tempDir } from './helpers.ts';

const HOLDER = fileURLToPath(new URL('./fixtures/write-lock-holder.ts', import.meta.url));

test('while a commit waits, the event loop serves a socket round trip, and the appends made meanwhile share one next commit', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(dir);
  t.after(() => j.close());
  // A real loopback peer: what a forward to a PLC needs from the event loop.
  const echo = createServer((s) => s.pipe(s)).listen(0, '127.0.0.1');
  await once(echo, 'listening');
  t.after(() => echo.close());

  const holder = spawn(process.execPath, [HOLDER, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => holder.kill('SIGKILL'));
  const lines = createInterface({ input: holder.stdout! })[Symbol.asyncIterator]();
  const ask = async (command: string): Promise<string> => {
    holder.stdin!.write(`${command}\n`);
    return String((await lines.next()).value);
  };
  const txnId = async () => Number((await ask('txn')).split(' ')[1]);

  await j.append({ event: 'action.allowed', session: 'warm-up' });
  const txnBefore = await txnId();
  assert.equal(await ask('lock'), 'locked');

  let firstSettled = false;
  const first = Array.from({ length: 16 }, (_, i) => j.append({ event: 'action.allowed', session: `first-${i}` }).finally(() => (firstSettled = true)));
  // The round trip needs the event loop while the first batch's commit waits for the lock.
  const socket = connect((echo.address() as AddressInfo).port, '127.0.0.1');
  socket.write('ping');
  const [reply] = (await once(socket, 'data')) as [Buffer];
  socket.destroy();
  assert.equal(reply.toString(), 'ping');
  assert.equal(firstSettled, false, 'the first batch was still waiting for its commit when the socket answered');
  const second = Array.from({ length: 16 }, (_, i) => j.append({ event: 'action.allowed', session: `second-${i}`, detail: { i } }, { lazy: i % 2 === 0 }));
  // Give the second batch every chance to be flushed on its own: it must wait for the first.
  await new Promise((r) => setImmediate(r));
  assert.equal(firstSettled, false);

  assert.equal(await ask('release'), 'released');
  const seqs = (await Promise.all([...first, ...second])).map((r) => r.seq);
  assert.deepEqual(seqs, Array.from({ length: 32 }, (_, i) => i + 1), 'seqs in call order, no gap');
  assert.equal(await txnId(), txnBefore + 2, 'two commits: the first batch, then everything appended while it waited');
  const stored = j.readEvents(1, 32).map((e) => JSON.parse(e.bytes) as { session: string });
  assert.deepEqual(stored.map((e) => e.session), [...Array.from({ length: 16 }, (_, i) => `first-${i}`), ...Array.from({ length: 16 }, (_, i) => `second-${i}`)]);
  holder.stdin!.end();
});
