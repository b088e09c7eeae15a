// The commit runs beside the event loop (lmdb-js's write thread commits; the body of each batch runs here): while one batch waits for LMDB (here: for the write lock another
// process holds, as it would wait for a slow fsync), the process still serves sockets and appends, and
// everything appended meanwhile goes into ONE next commit. When the journal committed synchronously, the event loop
// stopped inside the commit: nothing else ran until it returned, and a write's forward, its reply and the
// next write's record queued behind every fsync (issue 17: 16 Modbus writers reached 0.03 of direct).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { appendMany, openJournal, tempDir } from "./helpers.ts";

const HOLDER = fileURLToPath(new URL('./fixtures/write-lock-holder.ts', import.meta.url));

test('while a commit waits, the event loop serves a socket round trip, and the appends made meanwhile share one next commit', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  // Every commit by the write thread: a lone writer's commits may otherwise be made on the event loop
  // (serialSyncCommits), and the lone warm-up append below would make the next one such a commit.
  const j = await openJournal(dir, { serialSyncCommits: 0 });
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

test('small writes made while batches commit (acknowledge, cursors, checkpoints, prune) and the batches both stay: the reopened journal has every event and every cursor', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  let j = await openJournal(dir, { checkpointEvery: 7 });
  const appended: Promise<unknown>[] = [];
  let ack = -1;
  let push = -1;
  for (let round = 0; round < 300; round++) {
    for (let i = 0; i < 1 + (round % 9); i++) appended.push(j.append({ event: 'action.allowed', session: `r${round}`, detail: { i } }, { lazy: i % 3 === 1 }));
    // Small writes land before a batch's body runs, while its commit is under way, and after it.
    if (round % 4 === 1) await new Promise((r) => setImmediate(r));
    if (round % 4 === 2) await appended[appended.length - 1];
    const size = j.size();
    if (size === 0) continue;
    if (round % 2 === 0 && size - 1 > ack) await j.acknowledge((ack = size - 1), 'central-pam');
    if (round % 3 === 0 && size - 1 > push) j.advanceCursor('push', (push = size - 1));
    if (round % 5 === 0) j.checkpoint();
    if (round % 50 === 49) j.prune({ maxBytes: 0 });
  }
  await Promise.all(appended);
  const total = appended.length;
  assert.equal(j.size(), total);
  await j.close();
  j = await openJournal(dir, { checkpointEvery: 7 });
  t.after(() => j.close());
  assert.equal(j.size(), total, 'every event is in the reopened journal');
  assert.equal(j.acknowledged(), ack);
  assert.equal(j.cursor('push'), push);
  assert.ok(j.firstRetained() > 0 && j.firstRetained() <= ack + 1, `pruned up to the acknowledged cursor (first ${j.firstRetained()}, ack ${ack})`);
  const verified = j.verifyAll();
  assert.equal(verified.ok, true, JSON.stringify(verified));
  const { size, bytes } = j.health();
  assert.equal(size, total);
  assert.ok(bytes > 0);
  // Every checkpoint signs the root of the tree at its size.
  for (const cp of j.checkpoints()) assert.equal(cp.rootHash, Buffer.from(j.rootAt(cp.size)).toString('base64'));
});

test('a small write made while a large batch is being made durable waits for it and keeps it: every event and every cursor after a reopen', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  let j = await openJournal(dir, { checkpointEvery: 1_000_000, serialSyncCommits: 0 });
  await appendMany(j, 10);
  // ~12 MB in one commit: its fsync takes long enough for timers to fire while it runs.
  let done = false;
  const large = Promise.all(Array.from({ length: 3000 }, (_, i) => j.append({ event: 'action.allowed', detail: { i, pad: 'p'.repeat(4096) } }))).finally(() => (done = true));
  const cursors: string[] = [];
  while (!done) {
    await new Promise((r) => setTimeout(r, 0));
    const name = `siem:during-${cursors.length}`;
    j.advanceCursor(name, 9);
    cursors.push(name);
  }
  await large;
  j.checkpoint();
  await j.close();
  j = await openJournal(dir, { checkpointEvery: 1_000_000 });
  t.after(() => j.close());
  assert.equal(j.size(), 3010);
  for (const name of cursors) assert.equal(j.cursor(name), 9, name);
  assert.equal(j.verifyAll().ok, true);
});
