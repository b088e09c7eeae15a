// The collector: connects to NATS and PostgreSQL, applies the schema, and runs one ApplianceWorker per
// appliance whose advisory lock it holds. Several collectors share the appliances: each holds a
// "presence" lock so that all can count the live ones, takes appliances up to its fair share
// (ceil(appliances / live collectors)) and hands back any above it. Locks are session locks on one
// dedicated connection: when a collector dies its connection drops, its locks free, and the others
// take its appliances at their next round.
import { randomInt } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, ensureStream, pgSettings } from './connect.ts';
import type { CollectorConfig } from './config.ts';
import { APPLIANCE_LOCK_CLASS, PRESENCE_LOCK_CLASS, SIEM_LOCK_CLASS, migrate } from './schema.ts';
import { collectorSource } from '../siem/collector-source.ts';
import { startSiemExports, type SiemExports, type SiemExportStatus } from '../siem/exporter.ts';
import { CollectorStore } from './store.ts';
import { ApplianceWorker, type WorkerStatus } from './worker.ts';

export interface CollectorStatus {
  collector: string;
  /** Collectors holding a presence lock, this one included (at the last round). */
  liveCollectors: number;
  appliances: (WorkerStatus & { held: true } | { appliance: string; held: false })[];
  /** The SIEM exports this collector runs now (each runs on one collector at a time). */
  siem: SiemExportStatus[];
}

export interface Collector {
  status(): CollectorStatus;
  close(): Promise<void>;
}

export async function startCollector(config: CollectorConfig, log: Logger): Promise<Collector> {
  const c = new CollectorRuntime(config, log.child({ collector: config.collector.id }));
  try {
    await c.start();
  } catch (err) {
    await c.close();
    throw err;
  }
  return c;
}

class CollectorRuntime implements Collector {
  readonly #config: CollectorConfig;
  readonly #log: Logger;
  #nc: NatsConnection | undefined;
  #pool: pg.Pool | undefined;
  #store: CollectorStore | undefined;
  #lockClient: pg.Client | undefined;
  readonly #workers = new Map<string, ApplianceWorker>();
  /** SIEM exports this collector holds the lock of, by export id. */
  readonly #siem = new Map<string, SiemExports>();
  #live = 1;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> = Promise.resolve();
  #jsm: Awaited<ReturnType<typeof ensureStream>> | undefined;

  constructor(config: CollectorConfig, log: Logger) {
    this.#config = config;
    this.#log = log;
  }

  async start(): Promise<void> {
    const settings = pgSettings(this.#config);
    this.#pool = new pg.Pool({ ...settings, max: this.#config.postgres.pool, application_name: `penstock-collector ${this.#config.collector.id}` });
    // A connection's error (server restarted) must not crash the process: the query under way fails and
    // its worker retries from the stored position. The pool handles idle clients ('error'); a client
    // checked out (mid-commit) emits on itself, so every client gets a listener when it connects.
    this.#pool.on('error', (err) => this.#log.warn({ err: err.message }, 'PostgreSQL connection lost'));
    this.#pool.on('connect', (client) => client.on('error', (err) => this.#log.warn({ err: err.message }, 'PostgreSQL connection lost')));
    const client = await this.#pool.connect();
    try {
      await migrate(client);
    } finally {
      client.release();
    }
    this.#store = new CollectorStore(this.#pool);
    this.#nc = await connectNats(this.#config, `penstock-collector ${this.#config.collector.id}`);
    this.#jsm = await ensureStream(this.#nc, this.#config, this.#log);
    await this.#connectLocks();
    this.#round = this.#balance();
    await this.#round;
    this.#schedule();
    this.#log.info({ appliances: this.#config.appliances.length, held: this.#workers.size, stream: this.#config.stream.name }, 'collector started');
  }

  status(): CollectorStatus {
    return {
      collector: this.#config.collector.id,
      liveCollectors: this.#live,
      appliances: this.#config.appliances.map((a) => {
        const w = this.#workers.get(a.id);
        return w ? { ...w.status(), held: true as const } : { appliance: a.id, held: false as const };
      }),
      siem: [...this.#siem.values()].flatMap((x) => x.status()),
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#round.catch(() => {});
    await Promise.all([...this.#workers.values()].map((w) => w.close()));
    this.#workers.clear();
    await this.#stopSiem();
    await this.#lockClient?.end().catch(() => {});
    await this.#nc?.close().catch(() => {});
    await this.#pool?.end().catch(() => {});
    this.#log.info('collector stopped');
  }

  #schedule(): void {
    if (this.#closed) return;
    // Jitter, so that collectors started together do not take turns in lockstep.
    const base = this.#config.collector.lock_retry_seconds * 1000;
    this.#timer = setTimeout(() => {
      this.#round = this.#balance().catch((err) => this.#log.warn({ err: (err as Error).message }, 'lock round failed')).finally(() => this.#schedule());
    }, base * (0.75 + Math.random() / 2));
  }

  async #connectLocks(): Promise<void> {
    const client = new pg.Client({ ...pgSettings(this.#config), application_name: `penstock-collector ${this.#config.collector.id} locks` });
    client.on('error', (err) => this.#lostLocks(client, err));
    client.on('end', () => this.#lostLocks(client, new Error('connection ended')));
    await client.connect();
    await client.query('SELECT pg_advisory_lock($1, $2)', [PRESENCE_LOCK_CLASS, randomInt(-(2 ** 31), 2 ** 31)]);
    this.#lockClient = client;
  }

  /** The lock connection is gone, and with it every lock: stop every worker at once. */
  #lostLocks(client: pg.Client, err: Error): void {
    if (this.#lockClient !== client || this.#closed) return;
    this.#lockClient = undefined;
    this.#log.warn({ err: err.message }, 'lost the PostgreSQL lock connection: releasing every appliance');
    const workers = [...this.#workers.values()];
    this.#workers.clear();
    for (const w of workers) void w.close();
    void this.#stopSiem();
  }

  async #stopSiem(): Promise<void> {
    const running = [...this.#siem.values()];
    this.#siem.clear();
    await Promise.all(running.map((x) => x.stop().catch(() => {})));
  }

  /**
   * Each SIEM export runs on one collector at a time (the cursor in siem_cursors is shared): the collector
   * that takes its lock runs it; when that collector dies, another takes it at its next round.
   */
  async #takeSiemExports(locks: pg.Client): Promise<void> {
    for (const config of this.#config.siem) {
      if (this.#siem.has(config.id) || this.#closed) continue;
      const r = await locks.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [SIEM_LOCK_CLASS, config.id]);
      if (!r.rows[0]!.ok || this.#closed) continue;
      this.#siem.set(config.id, await startSiemExports([config], await collectorSource(this.#pool!), this.#log));
      this.#log.info({ siem: config.id }, 'SIEM export taken');
    }
  }

  /** One round: count live collectors, take appliances up to the fair share, hand back any above it. */
  async #balance(): Promise<void> {
    if (this.#closed) return;
    if (!this.#lockClient) await this.#connectLocks();
    const locks = this.#lockClient!;
    const live = await locks.query<{ n: string }>(`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid AND granted`, [PRESENCE_LOCK_CLASS]);
    this.#live = Math.max(1, Number(live.rows[0]!.n));
    const all = this.#config.appliances;
    const share = Math.ceil(all.length / this.#live);
    const free = all.filter((a) => !this.#workers.has(a.id)).sort(() => Math.random() - 0.5);
    for (const a of free) {
      if (this.#workers.size >= share || this.#closed) break;
      const r = await locks.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [APPLIANCE_LOCK_CLASS, a.id]);
      if (!r.rows[0]!.ok || this.#closed) continue;
      this.#log.info({ appliance: a.id }, 'appliance taken');
      this.#workers.set(a.id, new ApplianceWorker({
        appliance: a.id, vkey: a.vkey, collector: this.#config.collector.id, stream: this.#config.stream.name, subjectPrefix: this.#config.stream.subject_prefix,
        maxPending: this.#config.collector.max_pending_events, js: jetstream(this.#nc!), jsm: this.#jsm!, store: this.#store!, log: this.#log,
      }));
    }
    await this.#takeSiemExports(locks);
    // Above the share (another collector came up): hand one back per round, so the work spreads gently.
    if (this.#workers.size > share && !this.#closed) {
      const [id, w] = [...this.#workers].at(-1)!;
      this.#workers.delete(id);
      await w.close();
      await locks.query('SELECT pg_advisory_unlock($1, hashtext($2))', [APPLIANCE_LOCK_CLASS, id]);
      this.#log.info({ appliance: id, share }, 'appliance handed back (above this collector\'s share)');
    }
  }
}
