// One SIEM export: reads events from a source (the gateway's journal, or the collector's PostgreSQL) in
// bounded batches after its own cursor, sends each as RFC 5424 + OCSF over TLS, and moves the cursor only
// for bytes that were written and then sat on a live connection for `settle_ms` (syslog has no
// acknowledgement; a receiver that dies drops its buffers). A broken connection rewinds to the cursor
// and sends again: at-least-once, duplicates possible, nothing skipped. It never blocks a front door: it
// runs beside the journal, woken by its commits, and only reads.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { StoredEvent } from '../journal/event.ts';
import type { LmdbJournal } from '../journal/journal.ts';
import type { SiemExportConfig } from '../config/siem.ts';
import { toOcsf, type OcsfOptions } from './ocsf.ts';
import { classifyError, formatSyslog, frame, SiemError, SyslogTlsConnection, type SiemErrorCode, type TlsTarget } from './syslog.ts';

export { siemExportSchema, siemSchema, type SiemExportConfig } from '../config/siem.ts';

export interface SourceItem {
  /** Position in the source (journal seq, or the collector's events.id): what the cursor holds. */
  pos: number;
  event: StoredEvent;
}

/** Where an export reads from, and where its cursor lives. */
export interface SiemSource {
  /** `journal` or `collector`: metadata.log_name. */
  readonly name: string;
  /** The cursor of export `id`: the highest position delivered, -1 for none. */
  cursor(id: string): Promise<number>;
  commit(id: string, pos: number): Promise<void>;
  /** Up to `limit` items after `after`, in order; `skipped`: positions that are gone (pruned) before the first. */
  read(after: number, limit: number): Promise<{ items: SourceItem[]; skipped: number }>;
  /** The highest position there is (for lag), -1 for none. */
  head(): number | Promise<number>;
  /** Calls `wake` when new items may be there; returns the function that stops it. */
  onNew(wake: () => void): () => void;
  /** How often to look for new items when nothing wakes the export (ms). */
  readonly pollMs: number;
}

export interface SiemExportStatus {
  id: string;
  receiver: string;
  state: 'connecting' | 'connected' | 'backoff' | 'stopped';
  /** Highest position delivered (the stored cursor). */
  cursor: number;
  /** Highest position written on the current connection (ahead of the cursor by what is settling). */
  sent: number;
  head: number;
  lag: number;
  exported: number;
  /** Positions that were gone from the source before they could be sent (pruned). */
  skipped: number;
  connects: number;
  last_error?: { code: SiemErrorCode; message: string; at: string };
}

export interface ExporterOptions {
  config: SiemExportConfig;
  source: SiemSource;
  log: Logger;
  /** Penstock's version, for metadata.product.version. */
  productVersion?: string;
  vendorName?: string;
}

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 30_000;
const STOP_TIMEOUT_MS = 5000;

export class SiemExporter {
  readonly #cfg: SiemExportConfig;
  readonly #source: SiemSource;
  readonly #log: Logger;
  readonly #target: TlsTarget;
  readonly #ocsf: OcsfOptions;
  #conn: SyslogTlsConnection | undefined;
  #cursor = -1;
  #sent = -1;
  #head = -1;
  /** Batch ends written on the live connection, waiting out settle_ms before the cursor takes them. */
  #settling: { pos: number; at: number }[] = [];
  #exported = 0;
  #skipped = 0;
  #connects = 0;
  #state: SiemExportStatus['state'] = 'connecting';
  #lastError: SiemExportStatus['last_error'];
  #stopping = false;
  #running: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #woken = false;
  #unsubscribe: (() => void) | undefined;

  constructor(opts: ExporterOptions) {
    this.#cfg = opts.config;
    this.#source = opts.source;
    this.#log = opts.log.child({ siem: opts.config.id });
    const t = opts.config.tls;
    // Read once at start: a missing or unreadable file is a start-up error naming the file, not its contents.
    this.#target = {
      host: opts.config.host,
      port: opts.config.port,
      ca: readPem(t.ca, 'tls.ca'),
      ...(t.cert ? { cert: readPem(t.cert, 'tls.cert') } : {}),
      ...(t.key ? { key: readPem(t.key, 'tls.key') } : {}),
      ...(t.server_name ? { serverName: t.server_name } : {}),
    };
    this.#ocsf = { logName: opts.source.name, ...(opts.productVersion ? { productVersion: opts.productVersion } : {}), ...(opts.vendorName ? { vendorName: opts.vendorName } : {}) };
  }

  get id(): string {
    return this.#cfg.id;
  }

  async start(): Promise<void> {
    this.#cursor = await this.#source.cursor(this.#cfg.id);
    this.#sent = this.#cursor;
    this.#unsubscribe = this.#source.onNew(() => this.#poke());
    this.#running = this.#run();
  }

  /** Stops sending; a receiver that closes its side after ours has read everything, so the cursor takes it all. */
  async stop(): Promise<void> {
    if (this.#stopping) return this.#running;
    this.#stopping = true;
    this.#unsubscribe?.();
    this.#poke();
    const conn = this.#conn;
    // A write stuck on a stalled receiver must not hold the daemon's shutdown.
    const timer = setTimeout(() => conn?.destroy(), STOP_TIMEOUT_MS);
    await this.#running;
    if (conn && !conn.closed) {
      const clean = await conn.end(STOP_TIMEOUT_MS);
      if (clean && this.#sent > this.#cursor) await this.#commit(this.#sent).catch(() => {});
    }
    clearTimeout(timer);
    this.#state = 'stopped';
  }

  status(): SiemExportStatus {
    const head = this.#headNow();
    return {
      id: this.#cfg.id,
      receiver: `${this.#cfg.host}:${this.#cfg.port}`,
      state: this.#state,
      cursor: this.#cursor,
      sent: this.#sent,
      head,
      lag: Math.max(0, head - this.#cursor),
      exported: this.#exported,
      skipped: this.#skipped,
      connects: this.#connects,
      ...(this.#lastError ? { last_error: this.#lastError } : {}),
    };
  }

  #headNow(): number {
    const h = this.#source.head();
    if (typeof h === 'number') return h;
    void h.then((v) => (this.#head = v), () => {});
    return this.#head;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopping) {
      try {
        const conn = this.#conn && !this.#conn.closed ? this.#conn : await this.#connect();
        if (this.#stopping) break;
        failures = 0;
        const { items, skipped } = await this.#read();
        if (items.length === 0) {
          await this.#settle();
          await this.#idle();
          continue;
        }
        const frames: Buffer[] = [];
        for (const it of items) if (this.#wanted(it.event)) frames.push(this.#frame(it.event));
        await conn.write(frames);
        if (conn.closed) throw new SiemError('connection_lost', 'the connection closed while writing');
        this.#skipped += skipped;
        this.#exported += frames.length;
        this.#sent = items.at(-1)!.pos;
        this.#settling.push({ pos: this.#sent, at: Date.now() });
        await this.#settle();
      } catch (err) {
        if (this.#stopping) break;
        const e = classifyError(err, `${this.#cfg.host}:${this.#cfg.port}`);
        this.#failed(e);
        this.#state = 'backoff';
        const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** failures++) * (0.5 + Math.random() / 2);
        await this.#sleep(wait);
      }
    }
  }

  async #connect(): Promise<SyslogTlsConnection> {
    this.#state = 'connecting';
    this.#conn = undefined;
    const conn = await SyslogTlsConnection.open(this.#target);
    this.#connects++;
    this.#conn = conn;
    this.#state = 'connected';
    conn.onClosed((err) => {
      if (this.#stopping || this.#conn !== conn) return;
      this.#failed(err);
      this.#poke();
    });
    this.#log.info({ receiver: `${this.#cfg.host}:${this.#cfg.port}`, from: this.#sent + 1 }, 'siem export connected');
    return conn;
  }

  /**
   * A failure: remember it for status. A connection failure drops the connection and goes back to what
   * the cursor holds; a source or cursor failure leaves the connection and what it carried as they are.
   */
  #failed(e: SiemError): void {
    if (this.#lastError?.message !== e.message) this.#log.warn({ code: e.code, err: e.message }, 'siem export interrupted');
    this.#lastError = { code: e.code, message: e.message, at: new Date().toISOString() };
    if (e.code === 'source_failed' || e.code === 'cursor_failed') return;
    this.#conn?.destroy();
    this.#conn = undefined;
    this.#settling = [];
    this.#sent = this.#cursor;
  }

  async #read(): Promise<{ items: SourceItem[]; skipped: number }> {
    try {
      const r = await this.#source.read(this.#sent, this.#cfg.batch);
      this.#head = Math.max(this.#head, r.items.at(-1)?.pos ?? -1);
      return r;
    } catch (err) {
      throw new SiemError('source_failed', `reading ${this.#source.name}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Moves the cursor over what has sat long enough on a connection that is still up. */
  async #settle(): Promise<void> {
    const before = Date.now() - this.#cfg.settle_ms;
    let pos: number | undefined;
    while (this.#settling.length > 0 && this.#settling[0]!.at <= before) pos = this.#settling.shift()!.pos;
    if (pos !== undefined && this.#conn && !this.#conn.closed) await this.#commit(pos);
  }

  async #commit(pos: number): Promise<void> {
    try {
      await this.#source.commit(this.#cfg.id, pos);
      this.#cursor = pos;
    } catch (err) {
      throw new SiemError('cursor_failed', `storing the cursor: ${(err as Error).message}`, { cause: err });
    }
  }

  #wanted(e: StoredEvent): boolean {
    const prefixes = this.#cfg.events;
    return prefixes === undefined || prefixes.some((p) => e.event.startsWith(p));
  }

  #frame(e: StoredEvent): Buffer {
    const record = toOcsf(e, this.#ocsf);
    const fields = { facility: this.#cfg.facility, code: e.code, time: e.time, appliance: e.appliance, seq: e.seq, event: e.event, enterprise: this.#cfg.enterprise_number };
    let msg = formatSyslog({ ...fields, body: record });
    if (msg.length > this.#cfg.max_message_bytes) {
      // Too large for the receiver: the OCSF fields stay, the verbatim copy goes, and the record says so.
      const full = msg.length;
      msg = formatSyslog({ ...fields, body: { ...record, metadata: { ...record.metadata, is_truncated: true, untruncated_size: full }, unmapped: { penstock: { event: e.event, code: e.code, seq: e.seq, appliance: e.appliance } } } });
    }
    return frame(msg);
  }

  /** Waits for new items, the next settle, a poll, or stop. */
  #idle(): Promise<void> {
    const next = this.#settling[0] ? Math.max(0, this.#settling[0].at + this.#cfg.settle_ms - Date.now()) + 1 : this.#source.pollMs;
    return this.#sleep(Math.min(next, this.#source.pollMs));
  }

  #sleep(ms: number): Promise<void> {
    if (this.#woken || this.#stopping) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        // Only this sleep's own waker is forgotten: a stale one left set would swallow the next poke.
        if (this.#wake === wake) this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#wake = wake;
    });
  }

  #poke(): void {
    if (this.#wake) this.#wake();
    else this.#woken = true;
  }
}

function readPem(path: string, field: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`siem ${field}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
}

/** The gateway's journal as a source: positions are seqs, the cursor is the journal's `siem:<id>`. */
export function journalSource(journal: LmdbJournal): SiemSource {
  return {
    name: 'journal',
    pollMs: 5000,
    cursor: async (id) => journal.cursor(`siem:${id}`),
    commit: async (id, pos) => journal.advanceCursor(`siem:${id}`, pos),
    read: async (after, limit) => {
      const rows = journal.readEvents(after + 1, limit);
      const skipped = rows.length > 0 ? rows[0]!.seq - (after + 1) : Math.max(0, Math.min(journal.firstRetained(), journal.size()) - (after + 1));
      return { items: rows.map((r) => ({ pos: r.seq, event: JSON.parse(r.bytes) as StoredEvent })), skipped };
    },
    head: () => journal.size() - 1,
    onNew: (wake) => journal.onCommitted(() => wake()),
  };
}

export interface SiemExports {
  exporters: SiemExporter[];
  status(): SiemExportStatus[];
  stop(): Promise<void>;
}

/** Starts one exporter per config entry over `source` (the daemon's and the collector's entry point). */
export async function startSiemExports(configs: readonly SiemExportConfig[], source: SiemSource, log: Logger, opts: { productVersion?: string; vendorName?: string } = {}): Promise<SiemExports> {
  const exporters = configs.map((config) => new SiemExporter({ config, source, log, ...opts }));
  for (const x of exporters) await x.start();
  return {
    exporters,
    status: () => exporters.map((x) => x.status()),
    stop: async () => void (await Promise.all(exporters.map((x) => x.stop()))),
  };
}
