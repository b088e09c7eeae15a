// How fast one pusher empties a backlog into a 1-node nats-server on loopback, and what it costs in
// memory: `node test/push/bench-push.ts [events] [batch_events]`. Prints events/s and the RSS delta.
import { startNats } from '../peers/nats-server.ts';
import { tempDir } from '../support.ts';
import { startPusher, PUSH_CURSOR } from '../../src/push/pusher.ts';
import { APPLIANCE, createStream, openPushJournal, pushConfig, streamCount } from './helpers.ts';

const events = Number(process.argv[2] ?? 100_000);
const batch = Number(process.argv[3] ?? 500);
const nats = await startNats({ maxFileStore: '4G' });
const { dir, cleanup } = tempDir('penstock-push-bench-');
const journal = await openPushJournal(dir);
try {
  await createStream({ servers: nats.urls });
  for (let done = 0; done < events; done += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, events - done) }, (_, i) => journal.append({ event: 'action.allowed', principal: 'vendor-acme', target: 'plc-1', session: `s-${(done + i) % 50}`, detail: { i: done + i, fc: 6, address: (done + i) % 100 } })));
  }
  const bytes = journal.readEvents(0, 1000).reduce((n, e) => n + e.bytes.length, 0) / Math.min(1000, events);
  global.gc?.();
  const rss0 = process.memoryUsage.rss();
  const heap0 = process.memoryUsage().heapUsed;
  let rssMax = rss0;
  const t0 = performance.now();
  const pusher = startPusher({ journal, appliance: APPLIANCE, config: pushConfig(nats.urls, { batch_events: batch, ack_timeout_seconds: 30 }) });
  while (journal.cursor(PUSH_CURSOR) < events - 1) {
    await new Promise((r) => setTimeout(r, 50));
    rssMax = Math.max(rssMax, process.memoryUsage.rss());
  }
  const seconds = (performance.now() - t0) / 1000;
  global.gc?.();
  const rssAfter = process.memoryUsage.rss();
  const heapAfter = process.memoryUsage().heapUsed;
  await pusher.close();
  const held = await streamCount({ servers: nats.urls });
  console.log(JSON.stringify({ events, batch_events: batch, event_bytes: Math.round(bytes), seconds: Number(seconds.toFixed(2)), events_per_second: Math.round(events / seconds), stream_messages: held, rss_before_mib: +(rss0 / 2 ** 20).toFixed(1), rss_delta_max_mib: +((rssMax - rss0) / 2 ** 20).toFixed(1), rss_delta_after_gc_mib: +((rssAfter - rss0) / 2 ** 20).toFixed(1), heap_delta_after_gc_mib: +((heapAfter - heap0) / 2 ** 20).toFixed(1) }));
} finally {
  await journal.close();
  await nats.stop();
  cleanup();
}
