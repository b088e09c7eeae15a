// The evidence push: the gateway's journal events and signed checkpoints, published to the appliance's
// subject on NATS JetStream (src/fleet/wire.ts says what the messages carry). The journal is the outbox:
// nothing is held here that the journal does not hold, so a link down for hours loses nothing.
//
// What must stay true:
//   - The `push` cursor (in the journal's LMDB, its own transaction) moves only to the highest seq below
//     which JetStream acknowledged everything (a duplicate acknowledged as such is held all the same).
//     Retention counting `push` may then prune; nothing above the cursor is ever pruned for us.
//   - A checkpoint of size S is published only once every event < S is acknowledged. The highest size
//     published is kept as the cursor `push:checkpoint` = S - 1 (-1: none), so a restart does not
//     publish it again (JetStream would drop the duplicate anyway, within its duplicate window).
//   - A resend after a cut carries the same Nats-Msg-Id: JetStream drops it; past the duplicate window
//     the collector drops an identical event by seq.
//   - Events pruned before they were pushed are not invented or skipped: the pusher stops and says so
//     (PS_PUSH_PRUNED in status), because the collector would see a gap it cannot close.
//
// One loop does everything in order: connect (with backoff), publish checkpoints now covered, publish
// up to `batch_events` events in flight, await their acknowledgements, move the cursor, repeat; when
// caught up it sleeps until the journal commits (onCommitted), a checkpoint is due or a window turns.
import type { Logger } from 'pino';
import { connect, headers as natsHeaders, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { natsCredentialOptions } from '../fleet/nats-credentials.ts';
import { jetstream, type JetStreamClient, type JetStreamPublishOptions } from '@nats-io/jetstream';
import { systemScheduler, type Scheduler, type TimerHandle } from '../common/clock.ts';
import { PenstockError, isPenstockError, type ErrorCode } from '../common/errors.ts';
import type { PushConfig } from '../config/push.ts';
import { HEADER_APPLIANCE, HEADER_KIND, HEADER_SEQ, applianceSubject, checkpointMsgId, eventMsgId } from '../fleet/wire.ts';
import type { CheckpointInfo } from '../journal/store.ts';
import { ByteBucket } from './rate.ts';
import { probeTls } from './tls-probe.ts';
import { inWindow, parseWindows, type SendWindow } from './windows.ts';

/** The journal cursor of what JetStream acknowledged (retention may count it: `acknowledged_by: [push]`). */
export const PUSH_CURSOR = 'push';
/** The highest checkpoint published, as size - 1 (a cursor is a seq; -1: none). */
export const PUSH_CHECKPOINT_CURSOR = 'push:checkpoint';

/** What the pusher needs of the journal (LmdbJournal has it all). */
export interface PushJournal {
  size(): number;
  firstRetained(): number;
  readEvents(fromSeq: number, limit: number): { seq: number; bytes: string }[];
  cursor(name: string): number;
  advanceCursor(name: string, seq: number): void;
  checkpoints(fromSize?: number): CheckpointInfo[];
  latestCheckpoint(): CheckpointInfo | undefined;
  checkpoint(): CheckpointInfo | undefined;
  onCommitted(listener: (events: readonly unknown[]) => void): () => void;
}

export interface PusherOptions {
  journal: PushJournal;
  /** The appliance id (the checkpoint origin): names the subject and the message ids. */
  appliance: string;
  config: PushConfig;
  log?: Logger;
  /** Wall time for windows and last_ack_time; timers for backoff, rate and checkpoints. */
  clock?: Scheduler;
}

export interface PushError {
  code: ErrorCode;
  message: string;
  time: string;
}

export interface PushStatus {
  /** Connected to a NATS server now. */
  connected: boolean;
  /** Highest seq JetStream holds with everything below it (-1: none). */
  cursor: number;
  /** Size of the newest checkpoint published (0: none). */
  checkpoint_pushed: number;
  /** Events in the journal not yet acknowledged by JetStream. */
  lag_events: number;
  last_ack_time: string | null;
  /** The latest failure; cleared by the next acknowledgement. */
  last_error: PushError | null;
  in_window: boolean;
  /** Bytes published per second, averaged over the last few seconds. */
  bytes_per_second: number;
  /** running, waiting for a window, backing off after an error, stopped for good (see last_error), closed. */
  state: 'running' | 'outside_window' | 'backoff' | 'stopped' | 'closed';
  subject: string;
}

export interface Pusher {
  status(): PushStatus;
  /** Stops publishing and disconnects; waits at most `timeoutMs` (default 2 s) for acknowledgements in flight. */
  close(timeoutMs?: number): Promise<void>;
}

interface Message {
  payload: Buffer;
  kind: 'event' | 'checkpoint';
  /** The event's seq or the checkpoint's size (header Penstock-Seq). */
  seq: number;
  msgID: string;
}

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 30_000;
/** bytes_per_second averages over this many seconds. */
const RATE_WINDOW_S = 5;

export function startPusher(opts: PusherOptions): Pusher {
  return new EvidencePusher(opts);
}

export class EvidencePusher implements Pusher {
  readonly #journal: PushJournal;
  readonly #appliance: string;
  readonly #config: PushConfig;
  readonly #log: Logger | undefined;
  readonly #clock: Scheduler;
  readonly #subject: string;
  readonly #windows: SendWindow[] | undefined;
  readonly #bucket: ByteBucket | undefined;
  readonly #stopListening: () => void;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #connected = false;
  #closed = false;
  #state: PushStatus['state'] = 'running';
  #lastError: PushError | null = null;
  #lastAck: number | undefined;
  /** Something happened (commit, timer, close): the loop looks again. */
  #dirty = true;
  readonly #wakers = new Set<{ pokeable: boolean; done: () => void }>();
  #checkpointTimer: TimerHandle | undefined;
  #checkpointDue = false;
  /** Checkpoints not yet published, oldest first; reloaded when the journal signs a newer one. */
  #pendingCheckpoints: CheckpointInfo[] = [];
  #knownCheckpointSize = 0;
  /** Bytes sent per whole second (monotonic), for bytes_per_second. */
  readonly #sent = new Map<number, number>();
  readonly #loop: Promise<void>;

  constructor(opts: PusherOptions) {
    this.#journal = opts.journal;
    this.#appliance = opts.appliance;
    this.#config = opts.config;
    this.#log = opts.log;
    this.#clock = opts.clock ?? systemScheduler;
    this.#subject = applianceSubject(opts.appliance, opts.config.subject_prefix);
    this.#windows = parseWindows(opts.config.windows);
    this.#bucket = opts.config.max_bytes_per_second ? new ByteBucket(opts.config.max_bytes_per_second, this.#clock) : undefined;
    this.#stopListening = this.#journal.onCommitted(() => this.#poke());
    this.#loop = this.#run();
  }

  status(): PushStatus {
    const cursor = this.#journal.cursor(PUSH_CURSOR);
    return {
      connected: this.#connected,
      cursor,
      checkpoint_pushed: this.#journal.cursor(PUSH_CHECKPOINT_CURSOR) + 1,
      lag_events: Math.max(0, this.#journal.size() - cursor - 1),
      last_ack_time: this.#lastAck === undefined ? null : new Date(this.#lastAck).toISOString(),
      last_error: this.#lastError,
      in_window: this.#inWindow(),
      bytes_per_second: this.#rate(),
      state: this.#state,
      subject: this.#subject,
    };
  }

  async close(timeoutMs = 2000): Promise<void> {
    if (this.#closed) return this.#loop;
    this.#closed = true;
    this.#stopListening();
    this.#clock.clearTimeout(this.#checkpointTimer);
    this.#bucket?.cancel();
    this.#poke();
    // A dead link must not hold shutdown: the loop gets `timeoutMs`, then the connection is dropped.
    const timer = setTimeout(() => void this.#disconnect(), timeoutMs);
    timer.unref();
    // A connect in progress cannot be cut short: the loop drops it when it resolves, without the journal.
    let late: NodeJS.Timeout | undefined;
    await Promise.race([this.#loop, new Promise<void>((resolve) => (late = setTimeout(resolve, timeoutMs + 1000)))]);
    clearTimeout(late);
    clearTimeout(timer);
    await this.#disconnect();
    this.#state = 'closed';
  }

  // ---------------------------------------------------------------- the loop

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      if (this.#state === 'stopped') {
        await this.#idle();
        continue;
      }
      if (!this.#inWindow()) {
        if (this.#state !== 'outside_window') this.#log?.info({ subject: this.#subject }, 'push: outside the send windows; disconnecting');
        this.#state = 'outside_window';
        await this.#disconnect();
        await this.#idle(this.#msToNextMinute());
        continue;
      }
      this.#state = 'running';
      try {
        const js = await this.#connection();
        const progressed = await this.#pumpOnce(js);
        failures = 0;
        if (!progressed) await this.#idle(this.#windows ? this.#msToNextMinute() : undefined);
      } catch (err) {
        if (this.#closed) break;
        const e = describe(err);
        this.#setError(e);
        if (e.code === 'PS_PUSH_PRUNED') {
          this.#state = 'stopped';
          this.#log?.error({ code: e.code, subject: this.#subject }, `push stopped: ${e.message}`);
          continue;
        }
        // After an error the connection may be half-dead (a blackholed link answers nothing, and the
        // client's pings take a while to notice): a second failure in a row starts a fresh connection.
        if (e.code !== 'PS_PUSH_REJECTED' && (e.code !== 'PS_PUSH_UNAVAILABLE' || failures >= 1)) await this.#disconnect();
        const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(failures++, 10)) * (0.5 + Math.random() / 2);
        this.#log?.warn({ code: e.code, subject: this.#subject, retryMs: Math.round(delay) }, `push: ${e.message}`);
        this.#state = 'backoff';
        await this.#wait(delay, false);
      }
    }
  }

  /** One step: publish what the acknowledged events now cover, then one batch of events. False: caught up. */
  async #pumpOnce(js: JetStreamClient): Promise<boolean> {
    if (this.#checkpointDue) {
      this.#checkpointDue = false;
      try {
        this.#journal.checkpoint();
      } catch (err) {
        this.#log?.error({ err }, 'push: could not sign a checkpoint');
      }
    }
    const next = this.#journal.cursor(PUSH_CURSOR) + 1;
    const checkpoints = this.#coveredCheckpoints(next);
    if (checkpoints.length > 0) {
      await this.#publishCheckpoints(js, checkpoints);
      return true;
    }
    const size = this.#journal.size();
    if (next >= size) {
      this.#armCheckpointTimer(next);
      return false;
    }
    const first = this.#journal.firstRetained();
    const events = next < first ? [] : this.#journal.readEvents(next, this.#config.batch_events);
    if (events[0]?.seq !== next) {
      throw new PenstockError('PS_PUSH_PRUNED', `events from seq ${next} were pruned before JetStream acknowledged them (the journal keeps seq ${first} on); the collector would see a gap: count push in journal.retention.acknowledged_by`, { next, first });
    }
    await this.#publishEvents(js, this.#limitBytes(events));
    this.#armCheckpointTimer(this.#journal.cursor(PUSH_CURSOR) + 1);
    return true;
  }

  /** Under a byte rate, a batch is at most about one second's worth (the cursor moves once per batch). */
  #limitBytes(events: { seq: number; bytes: string }[]): { seq: number; bytes: string }[] {
    const cap = this.#config.max_bytes_per_second;
    if (!cap) return events;
    let total = 0;
    let n = 0;
    while (n < events.length && (n === 0 || total + events[n]!.bytes.length <= cap)) total += events[n++]!.bytes.length;
    return events.slice(0, n);
  }

  async #publishEvents(js: JetStreamClient, events: { seq: number; bytes: string }[]): Promise<void> {
    const messages = events.map((e) => ({ payload: Buffer.from(e.bytes, 'utf8'), kind: 'event' as const, seq: e.seq, msgID: eventMsgId(this.#appliance, e.seq) }));
    await this.#publishInOrder(js, messages, (last) => this.#advance(PUSH_CURSOR, events[last]!.seq));
  }

  async #publishCheckpoints(js: JetStreamClient, checkpoints: CheckpointInfo[]): Promise<void> {
    const messages = checkpoints.map((c) => ({ payload: Buffer.from(c.note, 'utf8'), kind: 'checkpoint' as const, seq: c.size, msgID: checkpointMsgId(this.#appliance, c.size) }));
    await this.#publishInOrder(js, messages, (last) => {
      const size = checkpoints[last]!.size;
      this.#advance(PUSH_CHECKPOINT_CURSOR, size - 1);
      this.#pendingCheckpoints = this.#pendingCheckpoints.filter((c) => c.size > size);
    });
  }

  /**
   * Publishes `messages` and calls `held` with the index of the last message of the acknowledged prefix
   * (a failed one keeps everything after it unacknowledged), then throws the first failure, if any.
   */
  async #publishInOrder(js: JetStreamClient, messages: Message[], held: (last: number) => void): Promise<void> {
    const results = await this.#publishAll(js, messages);
    let last = -1;
    while (last + 1 < results.length && results[last + 1] === undefined) last++;
    if (last >= 0) held(last);
    const failed = results.find((r) => r !== undefined);
    if (failed) throw failed;
  }

  /**
   * Publishes every message, in order, without waiting between them (under the byte rate, each waits
   * for its tokens), then awaits every acknowledgement. Per message: undefined when JetStream holds it
   * (stored now, or a duplicate of one stored), else the error. Stops issuing on close or window end.
   */
  async #publishAll(js: JetStreamClient, messages: Message[]): Promise<(Error | undefined)[]> {
    const acks: Promise<Error | undefined>[] = [];
    for (const m of messages) {
      if (this.#closed || !this.#inWindow()) break;
      const h = natsHeaders();
      h.set(HEADER_KIND, m.kind);
      h.set(HEADER_SEQ, String(m.seq));
      h.set(HEADER_APPLIANCE, this.#appliance);
      const bytes = m.payload.length + headerBytes(m.kind, m.seq, this.#appliance, m.msgID);
      if (this.#bucket && !(await this.#bucket.take(bytes))) break;
      const options: Partial<JetStreamPublishOptions> = {
        msgID: m.msgID,
        headers: h,
        timeout: this.#config.ack_timeout_seconds * 1000,
        ...(this.#config.stream ? { expect: { streamName: this.#config.stream } } : {}),
      };
      this.#count(bytes);
      // A handler at once: a rejection while later messages wait for tokens must not go unhandled.
      acks.push(js.publish(this.#subject, m.payload, options).then(() => undefined, (err: unknown) => (err instanceof Error ? err : new Error(String(err)))));
    }
    // Stopped early (closing, the window closed): what was not issued stays above the cursor, no error.
    return Promise.all(acks);
  }

  #advance(cursor: string, seq: number): void {
    try {
      this.#journal.advanceCursor(cursor, seq);
    } catch (err) {
      // Not held in LMDB: the events go again after a restart (JetStream drops them as duplicates).
      throw new PenstockError('PS_PUSH_JOURNAL', `could not store the push cursor: ${isPenstockError(err) ? err.message : String(err)}`, undefined, { cause: err });
    }
    this.#lastAck = this.#clock.now();
    if (this.#lastError) {
      this.#log?.info({ subject: this.#subject }, 'push: JetStream acknowledges again');
      this.#lastError = null;
    }
  }

  /** Checkpoints not yet published whose events JetStream holds (size <= next), oldest first. */
  #coveredCheckpoints(next: number): CheckpointInfo[] {
    const latest = this.#journal.latestCheckpoint();
    if (latest && latest.size > this.#knownCheckpointSize) {
      const published = this.#journal.cursor(PUSH_CHECKPOINT_CURSOR) + 1;
      this.#pendingCheckpoints = this.#journal.checkpoints(published + 1);
      this.#knownCheckpointSize = latest.size;
    }
    const out: CheckpointInfo[] = [];
    for (const c of this.#pendingCheckpoints) {
      if (c.size > next || out.length >= this.#config.batch_events) break;
      out.push(c);
    }
    return out;
  }

  /** Pushed events no checkpoint covers yet get one `checkpoint_seconds` later (so the collector can verify them). */
  #armCheckpointTimer(next: number): void {
    if (this.#checkpointTimer || this.#checkpointDue || next === 0) return;
    if ((this.#journal.latestCheckpoint()?.size ?? 0) >= next) return;
    this.#checkpointTimer = this.#clock.setTimeout(() => {
      this.#checkpointTimer = undefined;
      this.#checkpointDue = true;
      this.#poke();
    }, this.#config.checkpoint_seconds * 1000);
    this.#checkpointTimer.unref();
  }

  // ---------------------------------------------------------------- connection

  async #connection(): Promise<JetStreamClient> {
    if (this.#js && this.#nc && !this.#nc.isClosed()) return this.#js;
    let nc: NatsConnection;
    try {
      nc = await connect(this.#connectOptions());
    } catch (err) {
      throw await this.#explainTls(err);
    }
    if (this.#closed) {
      await nc.close().catch(() => {});
      throw new PenstockError('PS_PUSH_UNAVAILABLE', 'closing');
    }
    this.#nc = nc;
    this.#js = jetstream(nc, { timeout: this.#config.ack_timeout_seconds * 1000 });
    this.#connected = true;
    this.#log?.info({ server: nc.getServer(), subject: this.#subject }, 'push: connected');
    void this.#watch(nc);
    return this.#js;
  }

  /** A connect that timed out or closed under TLS: the probe may name the server's refusal (see tls-probe.ts). */
  async #explainTls(err: unknown): Promise<unknown> {
    const tls = this.#config.tls;
    if (!tls || describe(err).code !== 'PS_PUSH_UNAVAILABLE') return err;
    for (const url of this.#config.servers) {
      const found = await probeTls(url, tls);
      if (found) return new PenstockError('PS_PUSH_TLS', `TLS with ${url} failed: ${found.message}${tls.cert ? ' (is push.tls.cert under a CA the server trusts?)' : ''}`, undefined, { cause: found });
    }
    return err;
  }

  async #watch(nc: NatsConnection): Promise<void> {
    void nc.closed().then((err) => {
      if (this.#nc !== nc) return;
      this.#nc = undefined;
      this.#js = undefined;
      this.#connected = false;
      if (err && !this.#closed) this.#setError(describe(err));
      this.#poke();
    });
    for await (const s of nc.status()) {
      if (this.#nc !== nc) break;
      if (s.type === 'disconnect') {
        this.#connected = false;
        this.#log?.warn({ server: s.server }, 'push: disconnected; the client reconnects');
      } else if (s.type === 'reconnect') {
        this.#connected = true;
        this.#log?.info({ server: s.server }, 'push: reconnected');
        this.#poke();
      } else if (s.type === 'error') {
        this.#setError(describe(s.error));
      }
    }
  }

  #connectOptions(): NodeConnectionOptions {
    const c = this.#config;
    return {
      servers: c.servers,
      name: `penstock ${this.#appliance}`,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
      timeout: 10_000,
      pingInterval: 15_000,
      maxPingOut: 2,
      // Only what the pusher publishes is sent; nothing is echoed back to it.
      noEcho: true,
      // Otherwise every request builds two Errors with stack traces up front (a sixth of the CPU at 5k/s).
      noAsyncTraces: true,
      ...natsCredentialOptions(c, (_problem, message) => new PenstockError('PS_PUSH_CREDENTIALS', `push.${message}`)),
    };
  }

  async #disconnect(): Promise<void> {
    const nc = this.#nc;
    this.#nc = undefined;
    this.#js = undefined;
    this.#connected = false;
    if (nc && !nc.isClosed()) await nc.close().catch(() => {});
  }

  // ---------------------------------------------------------------- waiting, windows, figures

  #poke(): void {
    this.#dirty = true;
    for (const w of [...this.#wakers]) if (w.pokeable || this.#closed) w.done();
  }

  /** Until something happens (a commit, a timer, close), or `ms` passed. */
  async #idle(ms?: number): Promise<void> {
    if (this.#closed) return;
    if (!this.#dirty) await this.#wait(ms, true);
    this.#dirty = false;
  }

  /** Waits `ms` (undefined: no limit), or until close, or (when `pokeable`) until something happens. */
  #wait(ms: number | undefined, pokeable: boolean): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let timer: TimerHandle | undefined;
      const waker = {
        pokeable,
        done: () => {
          this.#clock.clearTimeout(timer);
          this.#wakers.delete(waker);
          resolve();
        },
      };
      this.#wakers.add(waker);
      if (ms !== undefined) timer = this.#clock.setTimeout(waker.done, ms);
    });
  }

  #inWindow(): boolean {
    return inWindow(this.#windows, this.#clock.now(), this.#config.windows_tz);
  }

  #msToNextMinute(): number {
    return 60_000 - (this.#clock.now() % 60_000) + 5;
  }

  #setError(e: Omit<PushError, 'time'>): void {
    this.#lastError = { ...e, time: new Date(this.#clock.now()).toISOString() };
  }

  #count(bytes: number): void {
    const s = Number(this.#clock.monotonic() / 1_000_000_000n);
    this.#sent.set(s, (this.#sent.get(s) ?? 0) + bytes);
    for (const k of this.#sent.keys()) if (k <= s - RATE_WINDOW_S) this.#sent.delete(k);
  }

  #rate(): number {
    const s = Number(this.#clock.monotonic() / 1_000_000_000n);
    let total = 0;
    for (const [k, v] of this.#sent) if (k > s - RATE_WINDOW_S) total += v;
    return Math.round(total / RATE_WINDOW_S);
  }
}

/** Bytes of the headers a message carries (NATS/1.0 line and `Key: value` lines), for the byte rate. */
function headerBytes(kind: string, seq: number, appliance: string, msgID: string): number {
  return 12 + HEADER_KIND.length + kind.length + 4 + HEADER_SEQ.length + String(seq).length + 4 + HEADER_APPLIANCE.length + appliance.length + 4 + 'Nats-Msg-Id'.length + msgID.length + 4 + 2;
}

const TLS_CODES = /^(ERR_TLS_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|CERT_|ERR_SSL_)/;

/** The stable code and a message for a failure; the message names what happened, never a secret. */
export function describe(err: unknown): Omit<PushError, 'time'> {
  if (isPenstockError(err)) return { code: err.code, message: err.message };
  const e = err as { name?: string; message?: string; code?: string | number; cause?: unknown };
  const chain: { name?: string; message?: string; code?: string | number }[] = [];
  for (let c: unknown = err, i = 0; c && i < 5; c = (c as { cause?: unknown }).cause, i++) {
    if (isPenstockError(c)) return { code: c.code, message: c.message };
    chain.push(c as { name?: string; message?: string; code?: string | number });
  }
  const text = chain.map((c) => c.message ?? '').join(': ');
  if (chain.some((c) => /unable to parse credentials|invalid seed|bad seed|invalid prefix|invalid encoded key|base32/i.test(c.message ?? ''))) {
    return { code: 'PS_PUSH_CREDENTIALS', message: 'the credential file is not a NATS creds file or nkey seed' };
  }
  if (chain.some((c) => c.name === 'AuthorizationError' || c.name === 'UserAuthenticationExpiredError' || /authorization violation|authentication/i.test(c.message ?? ''))) {
    return { code: 'PS_PUSH_AUTH', message: `the NATS server refused the credential (${text})` };
  }
  if (chain.some((c) => (typeof c.code === 'string' && TLS_CODES.test(c.code)) || /certificate|tls|ssl/i.test(c.message ?? ''))) {
    return { code: 'PS_PUSH_TLS', message: `TLS with the NATS server failed (${text})` };
  }
  if (chain.some((c) => c.name === 'PermissionViolationError')) {
    return { code: 'PS_PUSH_REJECTED', message: `the NATS server does not permit this publish (${text})` };
  }
  if (chain.some((c) => c.name === 'JetStreamNotEnabled' || c.name === 'NoResponders' || c.name === 'JetStreamApiError' || c.name === 'StreamNotFoundError' || c.name === 'JetStreamError')) {
    return { code: 'PS_PUSH_REJECTED', message: `JetStream did not store the message (${text || e.name}): is there a stream for the subject?` };
  }
  return { code: 'PS_PUSH_UNAVAILABLE', message: `the NATS server could not be reached or did not answer (${text || String(err)})` };
}
