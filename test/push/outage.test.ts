// Link outages and crashes: a relay the test controls between the pusher and the real nats-server
// blackholes or refuses the link while thousands of events are appended; a child process running the
// journal and pusher is SIGKILLed at random moments. Afterwards the stream holds every seq exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNats } from '../peers/nats-server.ts';
import { tempDir, until } from '../support.ts';
import { startPusher, PUSH_CURSOR } from '../../src/push/pusher.ts';
import { generateSigningKeyPem } from '../../src/journal/checkpoint.ts';
import { appendN, countsBySeq, createStream, openPushJournal, pushConfig, readStream, APPLIANCE } from './helpers.ts';
import { startRelay, type RelayMode } from '../peers/link-relay.ts';

/** Every event 0..size-1 once, every checkpoint size at most once; returns the checkpoint sizes. */
async function assertExactlyOnce(servers: string[], size: number): Promise<number[]> {
  const held = await readStream({ servers });
  const events = countsBySeq(held, 'event');
  assert.equal(events.size, size, 'every seq is in the stream');
  assert.deepEqual([...events.entries()].filter(([s, n]) => n !== 1 || s < 0 || s >= size), [], 'each seq once');
  const checkpoints = countsBySeq(held, 'checkpoint');
  assert.deepEqual([...checkpoints.entries()].filter(([, n]) => n !== 1), [], 'each checkpoint once');
  return [...checkpoints.keys()];
}

for (const mode of ['blackhole', 'refuse'] as RelayMode[]) {
  test(`a link that ${mode === 'blackhole' ? 'swallows every byte' : 'refuses connections'} for a burst of thousands of events loses nothing and doubles nothing`, async () => {
    const nats = await startNats();
    const relay = await startRelay(nats.nodes[0]!.port);
    const { dir, cleanup } = tempDir('penstock-push-outage-');
    const journal = await openPushJournal(dir);
    const pusher = startPusher({ journal, appliance: APPLIANCE, config: pushConfig([relay.url], { ack_timeout_seconds: 1, checkpoint_seconds: 1 }) });
    try {
      await createStream({ servers: nats.urls });
      await appendN(journal, 1000, 'before');
      await until(() => journal.cursor(PUSH_CURSOR) === 999, 'the first thousand pushed', 30_000);
      relay.set(mode);
      await appendN(journal, 5000, 'during');
      await until(() => pusher.status().last_error !== null, 'the pusher to see the outage', 30_000);
      const during = pusher.status();
      assert.equal(during.last_error!.code, 'PS_PUSH_UNAVAILABLE');
      assert.ok(during.lag_events > 0);
      // The journal is the buffer: nothing past the outage counts as pushed.
      assert.ok(journal.cursor(PUSH_CURSOR) < 5999);
      relay.set('pass');
      await until(() => pusher.status().checkpoint_pushed === 6000, 'everything pushed after the link returned', 120_000);
      assert.equal(pusher.status().last_error, null);
      await assertExactlyOnce(nats.urls, 6000);
    } finally {
      await pusher.close();
      await journal.close();
      await relay.close();
      await nats.stop();
      cleanup();
    }
  });
}

test('SIGKILL of the gateway (journal and pusher) at random moments, restarted each time: every seq in the stream exactly once', async () => {
  const nats = await startNats();
  const { dir, cleanup } = tempDir('penstock-push-kill-');
  const keyFile = join(dir, 'key.pem');
  writeFileSync(keyFile, generateSigningKeyPem());
  const child = (append: number) => {
    const proc = spawn(process.execPath, [join(import.meta.dirname, 'push-child.ts'), JSON.stringify({ dir: join(dir, 'journal'), keyFile, servers: nats.urls, append })], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    return { proc, out: () => out, err: () => err, exited };
  };
  try {
    await createStream({ servers: nats.urls });
    const kills: number[] = [];
    for (let round = 0; round < 5; round++) {
      const c = child(1500);
      // Killed once it is under way: appending and pushing at once, at a random point.
      await until(() => /size \d+/.test(c.out()) || c.proc.exitCode !== null, 'the child to start appending', 60_000);
      assert.equal(c.proc.exitCode, null, c.err());
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 1500));
      c.proc.kill('SIGKILL');
      await c.exited;
      kills.push(Number(c.out().match(/size (\d+)\n(?!.*size)/s)?.[1] ?? 0));
    }
    const last = child(500);
    const done = await until(() => c2done(last.out()) ?? (last.proc.exitCode !== null ? -1 : undefined), 'the last run to push everything', 120_000);
    assert.notEqual(done, -1, last.err());
    last.proc.kill('SIGTERM');
    await last.exited;
    const checkpoints = await assertExactlyOnce(nats.urls, done);
    assert.ok(checkpoints.includes(done), 'the last checkpoint covers everything');
    assert.ok(kills.some((k) => k > 0), `the kills fell while appending (sizes seen ${kills.join(', ')})`);
  } finally {
    await nats.stop();
    cleanup();
  }
});

function c2done(out: string): number | undefined {
  const m = /done (\d+)/.exec(out);
  return m ? Number(m[1]) : undefined;
}
