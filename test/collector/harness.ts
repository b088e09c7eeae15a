// Shared set-up for the collector tests: real nats-server and PostgreSQL, appliances as real
// LmdbJournals (their own key, their own id), and a small publisher written here from src/fleet/wire.ts
// (not the gateway's pusher): it publishes an honest appliance's evidence, and the tests use the same
// primitives to play a hostile one.
import { join } from 'node:path';
import pg from 'pg';
import { pino, type Logger } from 'pino';
import { connect, headers, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { generateSigningKeyPem } from '../../src/journal/checkpoint.ts';
import type { LmdbJournal } from '../../src/journal/journal.ts';
import { HEADER_APPLIANCE, HEADER_KIND, HEADER_SEQ, applianceSubject, checkpointMsgId, eventMsgId } from '../../src/fleet/wire.ts';
import { collectorConfigSchema, type CollectorConfig } from '../../src/collector/config.ts';
import { openJournal } from '../journal/helpers.ts';
import { startNats, type NatsCluster } from '../peers/nats-server.ts';
import { startPostgres, type Postgres } from '../peers/postgres.ts';
import { tempDir, until } from '../support.ts';

export const quietLog: Logger = pino({ level: process.env.COLLECTOR_TEST_LOG ?? 'silent' });

export interface Peers {
  nats: NatsCluster;
  pg: Postgres;
  dir: string;
  stop(): Promise<void>;
}

export async function startPeers(): Promise<Peers> {
  const [nats, pgServer] = await Promise.all([startNats(), startPostgres()]);
  const { dir, cleanup } = tempDir('penstock-collector-');
  return {
    nats,
    pg: pgServer,
    dir,
    stop: async () => {
      await Promise.all([nats.stop(), pgServer.stop()]);
      cleanup();
    },
  };
}

export interface Appliance {
  id: string;
  journal: LmdbJournal;
  vkey: string;
}

let journals = 0;
export async function openAppliance(peers: Peers, id: string, key = generateSigningKeyPem()): Promise<Appliance> {
  const journal = await openJournal(join(peers.dir, `journal-${journals++}`), { appliance: id, signingKeyPem: key, checkpointEvery: 1_000_000, mapSizeMiB: 256 });
  return { id, journal, vkey: journal.publicKeyVkey() };
}

/** `n` events by principals p0..p2 on targets t0..t1, a checkpoint after every `every` of them and at the end. */
export async function appendEvents(a: Appliance, n: number, every = n): Promise<void> {
  for (let done = 0; done < n; done += every) {
    const chunk = Math.min(every, n - done);
    for (let k = 0; k < chunk; k += 500) {
      await Promise.all(Array.from({ length: Math.min(500, chunk - k) }, (_, j) => {
        const i = done + k + j;
        return a.journal.append({ event: 'action.allowed', session: `s-${i}`, principal: `p${i % 3}`, target: `t${i % 2}`, detail: { i } });
      }));
    }
    a.journal.checkpoint();
  }
}

export function collectorConfig(peers: Peers, db: string, appliances: readonly Appliance[], extra: { id?: string; collector?: Record<string, unknown> } = {}): CollectorConfig {
  return collectorConfigSchema.parse({
    collector: { id: extra.id ?? 'c1', lock_retry_seconds: 0.5, ...extra.collector },
    nats: { servers: peers.nats.urls },
    stream: { create: true },
    postgres: { url: db },
    appliances: appliances.map((a) => ({ id: a.id, vkey: a.vkey })),
  });
}

/** A client that publishes as the wire contract says, or as a hostile appliance would. */
export class Publisher {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;

  private constructor(nc: NatsConnection) {
    this.nc = nc;
    this.js = jetstream(nc);
  }

  static async connect(peers: Pick<Peers, 'nats'>, opts: Omit<NodeConnectionOptions, 'servers'> = {}): Promise<Publisher> {
    return new Publisher(await connect({ servers: peers.nats.urls, ...opts }));
  }

  /** Waits until the stream exists (the collector creates it). */
  async streamReady(name = 'PENSTOCK_EVIDENCE'): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    await until(async () => jsm.streams.info(name).then(() => true, () => false), `stream ${name}`, 30_000);
  }

  async event(appliance: string, seq: number, body: string | Uint8Array, opts: { headerSeq?: number; msgId?: string } = {}): Promise<number> {
    const h = headers();
    h.set(HEADER_KIND, 'event');
    h.set(HEADER_SEQ, String(opts.headerSeq ?? seq));
    h.set(HEADER_APPLIANCE, appliance);
    const ack = await this.js.publish(applianceSubject(appliance), body, { msgID: opts.msgId ?? eventMsgId(appliance, seq), headers: h });
    return ack.seq;
  }

  async checkpoint(appliance: string, size: number, note: string, opts: { msgId?: string } = {}): Promise<number> {
    const h = headers();
    h.set(HEADER_KIND, 'checkpoint');
    h.set(HEADER_SEQ, String(size));
    h.set(HEADER_APPLIANCE, appliance);
    const ack = await this.js.publish(applianceSubject(appliance), note, { msgID: opts.msgId ?? checkpointMsgId(appliance, size), headers: h });
    return ack.seq;
  }

  /**
   * An honest appliance: for each of its checkpoints above `fromSize`, the events below it (in
   * concurrent groups, all acknowledged before the checkpoint), then the checkpoint. With `pipeline`,
   * the first half of the next checkpoint's events goes out before the checkpoint, as a pusher that
   * keeps sending while it waits may do. `mutate` lets a test rewrite the events it is about to send.
   */
  async publishJournal(a: Appliance, opts: { fromSize?: number; toSize?: number; pipeline?: boolean; mutate?: (events: { seq: number; bytes: string }[], checkpointSize: number) => { seq: number; bytes: string; headerSeq?: number }[] } = {}): Promise<void> {
    let prev = opts.fromSize ?? 0;
    let sent = prev;
    const cps = a.journal.checkpoints(prev + 1).filter((c) => opts.toSize === undefined || c.size <= opts.toSize);
    const send = async (events: { seq: number; bytes: string; headerSeq?: number }[]) => {
      for (let i = 0; i < events.length; i += 200) {
        await Promise.all(events.slice(i, i + 200).map((e) => this.event(a.id, e.seq, e.bytes, e.headerSeq === undefined ? {} : { headerSeq: e.headerSeq })));
      }
    };
    for (const [k, cp] of cps.entries()) {
      let events: { seq: number; bytes: string; headerSeq?: number }[] = a.journal.readEvents(sent, cp.size - sent);
      if (opts.mutate) events = opts.mutate(events, cp.size);
      await send(events);
      sent = cp.size;
      const next = cps[k + 1];
      if (opts.pipeline && next) {
        const ahead = Math.floor((next.size - cp.size) / 2);
        await send(a.journal.readEvents(cp.size, ahead));
        sent = cp.size + ahead;
      }
      await this.checkpoint(a.id, cp.size, cp.note);
      prev = cp.size;
    }
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}

export async function dbClient(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

export async function applianceRow(db: pg.Client, id: string): Promise<{ state: string; next_seq: string; checkpoint_size: string; stop_reason: string | null; stop_detail: Record<string, unknown> | null } | undefined> {
  return (await db.query('SELECT * FROM appliances WHERE appliance = $1', [id])).rows[0];
}

export async function eventCount(db: pg.Client, id: string): Promise<number> {
  return Number((await db.query('SELECT count(*) AS n FROM events WHERE appliance = $1', [id])).rows[0].n);
}
