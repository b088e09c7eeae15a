// The evidence push against the real nats-server with JetStream: what the stream holds afterwards is
// the judge (every seq once, checkpoints after their events, headers and ids as src/fleet/wire.ts says),
// and the push cursor in the journal's LMDB moves only behind JetStream's acknowledgements.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { startNats, type NatsCluster } from '../peers/nats-server.ts';
import { tempDir, until } from '../support.ts';
import { startPusher, PUSH_CURSOR, PUSH_CHECKPOINT_CURSOR } from '../../src/push/pusher.ts';
import { HEADER_KIND, HEADER_SEQ, applianceSubject, checkpointMsgId, eventMsgId } from '../../src/fleet/wire.ts';
import { APPLIANCE, appendN, countsBySeq, createStream, openPushJournal, pushConfig, readStream, withNats } from './helpers.ts';

async function withServer(fn: (nats: NatsCluster) => Promise<void>): Promise<void> {
  const nats = await startNats();
  try {
    await createStream({ servers: nats.urls });
    await fn(nats);
  } finally {
    await nats.stop();
  }
}

test('every event arrives once, in its own message, and every checkpoint after the events it covers', async () => {
  await withServer(async (nats) => {
    const { dir, cleanup } = tempDir('penstock-push-');
    const journal = await openPushJournal(dir);
    try {
      await appendN(journal, 1234);
      const pusher = startPusher({ journal, appliance: APPLIANCE, config: pushConfig(nats.urls, { checkpoint_seconds: 1 }) });
      // 12 checkpoints come with the events (one per 100); the last 34 events get theirs a second later.
      await until(() => pusher.status().checkpoint_pushed === 1234, 'the timed checkpoint at 1234 to be pushed', 30_000);
      const status = pusher.status();
      assert.equal(status.cursor, 1233);
      assert.equal(status.lag_events, 0);
      assert.equal(status.last_error, null);
      assert.equal(status.connected, true);
      assert.ok(status.last_ack_time);
      await pusher.close();

      const held = await readStream({ servers: nats.urls });
      const events = held.filter((m) => m.kind === 'event');
      const checkpoints = held.filter((m) => m.kind === 'checkpoint');
      assert.equal(events.length, 1234);
      assert.deepEqual([...countsBySeq(held, 'event').entries()].filter(([, n]) => n !== 1), []);
      const stored = journal.readEvents(0, 2000);
      const subject = applianceSubject(APPLIANCE);
      for (const m of events) {
        assert.equal(m.subject, subject);
        assert.equal(m.appliance, APPLIANCE);
        assert.equal(m.msgId, eventMsgId(APPLIANCE, m.seq));
        assert.equal(m.data, stored[m.seq]!.bytes, `event ${m.seq} is the journal's canonical JSON`);
      }
      assert.deepEqual(checkpoints.map((c) => c.seq), [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1234]);
      const streamSeqOf = new Map(events.map((e) => [e.seq, e.streamSeq]));
      for (const c of checkpoints) {
        assert.equal(c.msgId, checkpointMsgId(APPLIANCE, c.seq));
        assert.equal(c.data, journal.checkpointFor(c.seq)!.note);
        const lastEvent = Math.max(...Array.from({ length: c.seq }, (_, s) => streamSeqOf.get(s)!));
        assert.ok(c.streamSeq > lastEvent, `checkpoint ${c.seq} is stored after all its events`);
      }
      assert.equal(journal.cursor(PUSH_CURSOR), 1233);
      assert.equal(journal.cursor(PUSH_CHECKPOINT_CURSOR), 1233);
    } finally {
      await journal.close();
      cleanup();
    }
  });
});

test('the cursor stays behind what JetStream holds when the server dies mid-push; after its restart nothing is lost or doubled', async () => {
  await withServer(async (nats) => {
    const { dir, cleanup } = tempDir('penstock-push-');
    const journal = await openPushJournal(dir);
    try {
      await appendN(journal, 20_000);
      const pusher = startPusher({ journal, appliance: APPLIANCE, config: pushConfig(nats.urls, { batch_events: 200 }) });
      await until(() => journal.cursor(PUSH_CURSOR) >= 2000, 'some batches acknowledged', 30_000);
      await nats.nodes[0]!.kill();
      const atKill = journal.cursor(PUSH_CURSOR);
      assert.ok(atKill < 19_999, 'killed mid-push');
      await until(() => pusher.status().last_error?.code === 'PS_PUSH_UNAVAILABLE', 'the pusher to notice', 30_000);
      const cursorDown = journal.cursor(PUSH_CURSOR);
      await nats.nodes[0]!.start();
      // Everything at or below the cursor was acknowledged, so the restarted store holds it.
      const survived = countsBySeq(await readStream({ servers: nats.urls }), 'event');
      for (let s = 0; s <= cursorDown; s++) assert.equal(survived.get(s), 1, `seq ${s} <= cursor ${cursorDown} is held`);
      await until(() => journal.cursor(PUSH_CURSOR) === 19_999, 'the rest pushed after the restart', 120_000);
      assert.equal(pusher.status().last_error, null);
      await pusher.close();
      const counts = countsBySeq(await readStream({ servers: nats.urls }), 'event');
      assert.equal(counts.size, 20_000);
      assert.deepEqual([...counts.entries()].filter(([, n]) => n !== 1), []);
    } finally {
      await journal.close();
      cleanup();
    }
  });
});

test('a resend of what JetStream already holds is dropped as a duplicate and still moves the cursor', async () => {
  await withServer(async (nats) => {
    const { dir, cleanup } = tempDir('penstock-push-');
    const first = await openPushJournal(join(dir, 'a'));
    await appendN(first, 500);
    first.checkpoint();
    await first.close();
    // The same journal twice, as a restored backup would be: its push cursor is -1 again.
    cpSync(join(dir, 'a'), join(dir, 'b'), { recursive: true });
    try {
      for (const copy of ['a', 'b']) {
        const journal = await openPushJournal(join(dir, copy));
        const pusher = startPusher({ journal, appliance: APPLIANCE, config: pushConfig(nats.urls) });
        await until(() => pusher.status().checkpoint_pushed === 500, `copy ${copy} pushed`, 30_000);
        await pusher.close();
        assert.equal(journal.cursor(PUSH_CURSOR), 499);
        await journal.close();
      }
      const held = await readStream({ servers: nats.urls });
      assert.equal(held.length, 500 + 5, 'the second copy added nothing');
    } finally {
      cleanup();
    }
  });
});

test('a restart publishes nothing it already pushed: it resumes from the cursor and the checkpoint cursor', async () => {
  await withServer(async (nats) => {
    const { dir, cleanup } = tempDir('penstock-push-');
    try {
      let journal = await openPushJournal(dir);
      await appendN(journal, 300);
      let pusher = startPusher({ journal, appliance: APPLIANCE, config: pushConfig(nats.urls) });
      await until(() => pusher.status().checkpoint_pushed === 300, 'first run pushed', 30_000);
      await pusher.close();
      await journal.close();
      journal = await openPushJournal(dir);
      assert.equal(journal.cursor(PUSH_CURSOR), 299);
      assert.equal(journal.cursor(PUSH_CHECKPOINT_CURSOR), 299);
      await appendN(journal, 150);
      // A plain subscriber sees every publish, duplicates JetStream would drop included.
      const seen = await withNats({ servers: nats.urls }, async (nc) => {
        const sub = nc.subscribe(applianceSubject(APPLIANCE));
        const got: string[] = [];
        void (async () => {
          for await (const m of sub) got.push(`${m.headers?.get(HEADER_KIND)}:${m.headers?.get(HEADER_SEQ)}`);
        })();
        await nc.flush();
        pusher = startPusher({ journal, appliance: APPLIANCE, config: pushConfig(nats.urls) });
        await until(() => pusher.status().checkpoint_pushed === 400 && pusher.status().cursor === 449, 'second run pushed', 30_000);
        await pusher.close();
        await nc.flush();
        return got;
      });
      await journal.close();
      assert.deepEqual(seen.filter((k) => k.startsWith('checkpoint')), ['checkpoint:400']);
      const events = seen.filter((k) => k.startsWith('event')).map((k) => Number(k.split(':')[1]));
      assert.deepEqual(events, Array.from({ length: 150 }, (_, i) => 300 + i));
      const held = await readStream({ servers: nats.urls });
      assert.equal(countsBySeq(held, 'event').size, 450);
      assert.deepEqual([...countsBySeq(held, 'checkpoint').keys()], [100, 200, 300, 400]);
    } finally {
      cleanup();
    }
  });
});

test('events pruned before they were pushed stop the push with PS_PUSH_PRUNED; nothing is skipped or invented', async () => {
  await withServer(async (nats) => {
    const { dir, cleanup } = tempDir('penstock-push-');
    const journal = await openPushJournal(dir);
    try {
      await appendN(journal, 300);
      // Retention counting only the pull cursor: central PAM pulled 0..199, and they go.
      await journal.acknowledge(199, 'central-pam');
      journal.prune({ maxBytes: 1, acknowledgedBy: ['pull'] });
      assert.equal(journal.firstRetained(), 200);
      const pusher = startPusher({ journal, appliance: APPLIANCE, config: pushConfig(nats.urls) });
      const stopped = await until(() => (pusher.status().state === 'stopped' ? pusher.status() : undefined), 'the push to stop');
      assert.equal(stopped.last_error!.code, 'PS_PUSH_PRUNED');
      assert.equal(stopped.cursor, -1);
      await appendN(journal, 10);
      assert.equal(pusher.status().state, 'stopped', 'new events do not restart it');
      await pusher.close();
      assert.equal((await readStream({ servers: nats.urls })).length, 0, 'nothing published past the gap');
    } finally {
      await journal.close();
      cleanup();
    }
  });
});

test('a subject no stream captures, or one captured by another stream than push.stream, is PS_PUSH_REJECTED and nothing counts as pushed', async () => {
  await withServer(async (nats) => {
    await createStream({ servers: nats.urls }, 'OTHER', ['elsewhere.>']);
    const { dir, cleanup } = tempDir('penstock-push-');
    const journal = await openPushJournal(dir);
    try {
      await appendN(journal, 10);
      for (const config of [pushConfig(nats.urls, { subject_prefix: 'nowhere' }), pushConfig(nats.urls, { stream: 'OTHER' })]) {
        const pusher = startPusher({ journal, appliance: APPLIANCE, config });
        const failed = await until(() => pusher.status().last_error ?? undefined, 'an error', 30_000);
        await pusher.close();
        assert.equal(failed.code, 'PS_PUSH_REJECTED', failed.message);
        assert.equal(journal.cursor(PUSH_CURSOR), -1);
      }
    } finally {
      await journal.close();
      cleanup();
    }
  });
});
