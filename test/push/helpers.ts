// Shared set-up for the push tests: a real journal in a temp folder, a stream on the real nats-server,
// and what the stream holds, read back through an ordered consumer (the far side of the push).
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ManualClock } from '../../src/common/clock.ts';
import { LmdbJournal } from '../../src/journal/journal.ts';
import { pushSchema, type PushConfig } from '../../src/config/push.ts';
import { DEFAULT_STREAM, HEADER_APPLIANCE, HEADER_KIND, HEADER_SEQ } from '../../src/fleet/wire.ts';
import { journalOptions } from '../journal/helpers.ts';

export const APPLIANCE = 'penstock/gw-push-01';

export function openPushJournal(dir: string, clock = new ManualClock(Date.parse('2026-12-05T08:00:00Z'))): Promise<LmdbJournal> {
  // A checkpoint every 100 events: a batch of 500 covers several.
  return LmdbJournal.open(journalOptions(dir, { appliance: APPLIANCE, clock, checkpointEvery: 100, checkpointSeconds: 3600 }));
}

/** Appends `n` events in commits of 100: the journal (checkpointEvery 100) signs one checkpoint per 100 events. */
export async function appendN(j: LmdbJournal, n: number, tag = 'e'): Promise<void> {
  for (let done = 0; done < n; done += 100) {
    const count = Math.min(100, n - done);
    await Promise.all(Array.from({ length: count }, (_, i) => j.append({ event: 'admin.request', principal: 'plant-operator', detail: { tag, i: done + i } })));
  }
}

export function pushConfig(servers: string[], extra: Record<string, unknown> = {}): PushConfig {
  return pushSchema.parse({ servers, stream: DEFAULT_STREAM, ack_timeout_seconds: 2, ...extra });
}

export async function withNats<T>(opts: NodeConnectionOptions, fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ timeout: 5000, ...opts });
  try {
    return await fn(nc);
  } finally {
    await nc.close();
  }
}

/** The evidence stream (retries while a fresh server settles). */
export async function createStream(opts: NodeConnectionOptions, name = DEFAULT_STREAM, subjects = ['penstock.evidence.>']): Promise<void> {
  await withNats(opts, async (nc) => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name, subjects, duplicate_window: 3600 * 1e9 });
  });
}

export interface StoredMessage {
  streamSeq: number;
  subject: string;
  kind: string;
  seq: number;
  appliance: string;
  msgId: string;
  data: string;
}

/** Every message the stream holds, in stream order. */
export async function readStream(opts: NodeConnectionOptions, name = DEFAULT_STREAM): Promise<StoredMessage[]> {
  return withNats(opts, async (nc) => {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(name);
    const last = info.state.last_seq;
    if (info.state.messages === 0) return [];
    const consumer = await jetstream(nc).consumers.get(name);
    const out: StoredMessage[] = [];
    const messages = await consumer.consume();
    for await (const m of messages) {
      out.push({
        streamSeq: m.seq,
        subject: m.subject,
        kind: m.headers?.get(HEADER_KIND) ?? '',
        seq: Number(m.headers?.get(HEADER_SEQ)),
        appliance: m.headers?.get(HEADER_APPLIANCE) ?? '',
        msgId: m.headers?.get('Nats-Msg-Id') ?? '',
        data: m.string(),
      });
      if (m.seq >= last) break;
    }
    await messages.close();
    return out;
  });
}

export async function streamCount(opts: NodeConnectionOptions, name = DEFAULT_STREAM): Promise<number> {
  return withNats(opts, async (nc) => (await (await jetstreamManager(nc)).streams.info(name)).state.messages);
}

/** Each event seq and each checkpoint size held exactly once; the events are 0..size-1. */
export function countsBySeq(messages: StoredMessage[], kind: 'event' | 'checkpoint'): Map<number, number> {
  const counts = new Map<number, number>();
  for (const m of messages) if (m.kind === kind) counts.set(m.seq, (counts.get(m.seq) ?? 0) + 1);
  return counts;
}
