// One appliance on one collector, while that collector holds the appliance's advisory lock: recreate
// the durable consumer from the position stored in PostgreSQL, read the appliance's subject in stream
// order, verify (verifier.ts), commit each verified checkpoint's batch (store.ts), then ack (AckPolicy
// All: one ack covers the stream up to the stored position). A violation stops the appliance in
// PostgreSQL and raises an alert; the worker then waits for `penstock-collector resume`.
import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg, type ConsumerMessages } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { HEADER_KIND, HEADER_SEQ, applianceSubject, subjectToken } from '../fleet/wire.ts';
import { ApplianceVerifier, type Violation } from './verifier.ts';
import type { CollectorStore } from './store.ts';

export const CONSUMER_PREFIX = 'penstock-collector_';
/** Resends checked against PostgreSQL at once, at most (and at every checkpoint). */
const RESEND_BATCH = 1000;
const STOPPED_POLL_MS = 2000;
const RETRY_MS = 1000;

export function consumerName(appliance: string): string {
  // A durable name may not hold '.', '*', '>' or '~'-escapes are fine; subjectToken gives [A-Za-z0-9_~-].
  return `${CONSUMER_PREFIX}${subjectToken(appliance)}`;
}

export interface WorkerOptions {
  appliance: string;
  vkey: string;
  collector: string;
  stream: string;
  subjectPrefix: string;
  maxPending: number;
  js: JetStreamClient;
  jsm: JetStreamManager;
  store: CollectorStore;
  log: Logger;
}

export interface WorkerStatus {
  appliance: string;
  state: 'starting' | 'running' | 'stopped' | 'retrying' | 'closed';
  verified: number;
  pending: number;
  streamSeq: number;
  stopReason?: string;
  lastError?: string;
  /** Events committed by this worker since it started. */
  committed: number;
}

export class ApplianceWorker {
  readonly #o: WorkerOptions;
  readonly #log: Logger;
  #closed = false;
  #messages: ConsumerMessages | undefined;
  #wake: (() => void) | undefined;
  readonly #done: Promise<void>;
  readonly #status: WorkerStatus;

  constructor(opts: WorkerOptions) {
    this.#o = opts;
    this.#log = opts.log.child({ appliance: opts.appliance });
    this.#status = { appliance: opts.appliance, state: 'starting', verified: 0, pending: 0, streamSeq: 0, committed: 0 };
    this.#done = this.#run();
  }

  status(): WorkerStatus {
    return { ...this.#status };
  }

  /** Stops reading (a commit under way finishes or is dropped whole); resolves when the loop is out. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#status.state = 'closed';
    this.#wake?.();
    // Not awaited: close() resolves only once the iterator has been drained, and the loop drains it.
    this.#messages?.close().catch(() => {});
    await this.#done;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      try {
        const row = await this.#o.store.load(this.#o.appliance);
        this.#status.verified = row.position.next;
        this.#status.streamSeq = row.position.streamSeq;
        if (row.state === 'stopped') {
          this.#status.state = 'stopped';
          if (row.stopReason !== null) this.#status.stopReason = row.stopReason;
          await this.#sleep(STOPPED_POLL_MS);
          continue;
        }
        delete this.#status.stopReason;
        const violation = await this.#consume(new ApplianceVerifier(this.#o.appliance, this.#o.vkey, row.position, this.#o.maxPending));
        if (violation) await this.#stop(violation);
      } catch (err) {
        if (this.#closed) break;
        this.#status.state = 'retrying';
        this.#status.lastError = (err as Error).message;
        this.#log.warn({ err: (err as Error).message }, 'appliance verification interrupted; resuming from the stored position');
        await this.#sleep(RETRY_MS);
      }
    }
  }

  async #stop(v: Violation): Promise<void> {
    this.#log.error({ code: v.code, detail: v.details }, v.message);
    await this.#o.store.stop(v, this.#o.collector);
    this.#status.state = 'stopped';
    this.#status.stopReason = v.code;
  }

  /** Reads from the stored position until a violation (returned), a close, or an error (thrown). */
  async #consume(verifier: ApplianceVerifier): Promise<Violation | undefined> {
    const { jsm, js, stream, appliance } = this.#o;
    const name = consumerName(appliance);
    // Recreated, never reused: where a consumer stood is JetStream's opinion; the stored position is ours.
    await jsm.consumers.delete(stream, name).catch((err: Error) => {
      if (!/consumer not found/i.test(err.message)) throw err;
    });
    await jsm.consumers.add(stream, {
      durable_name: name,
      ack_policy: AckPolicy.All,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: verifier.position.streamSeq + 1,
      filter_subject: applianceSubject(appliance, this.#o.subjectPrefix),
      // Events wait unacknowledged until their checkpoint: allow that many, for that long.
      max_ack_pending: this.#o.maxPending + 10_000,
      ack_wait: nanos(30 * 60_000),
    });
    const consumer = await js.consumers.get(stream, name);
    const messages = await consumer.consume({ max_messages: 1000, abort_on_missing_resource: true });
    this.#messages = messages;
    if (this.#closed) {
      // close() came while the consumer was being made: it could not close what did not exist yet.
      messages.close().catch(() => {});
      return undefined;
    }
    this.#status.state = 'running';
    delete this.#status.lastError;
    // Messages not yet acknowledged, by stream sequence: one ack (AckPolicy All) covers all up to it.
    const unacked = new Map<number, JsMsg>();
    let resends: { seq: number; text: string; streamSeq: number }[] = [];
    const checkResends = async (): Promise<Violation | undefined> => {
      if (resends.length === 0) return undefined;
      const batch = resends;
      resends = [];
      const stored = await this.#o.store.bodies(appliance, batch.map((r) => r.seq));
      const bad = batch.find((r) => stored.get(r.seq) !== r.text);
      if (!bad) return undefined;
      return verifier.violation('PS_COLLECTOR_ALTERED', `event ${bad.seq} resent (stream ${bad.streamSeq}) with a body other than the verified one stored`, { seq: bad.seq, stream_seq: bad.streamSeq });
    };
    try {
      for await (const m of messages) {
        if (this.#closed) break;
        const streamSeq = m.seq;
        unacked.set(streamSeq, m);
        const kind = m.headers?.get(HEADER_KIND);
        const label = m.headers?.get(HEADER_SEQ) ?? '';
        const seq = /^(0|[1-9][0-9]{0,15})$/.test(label) ? Number(label) : NaN;
        if ((kind !== 'event' && kind !== 'checkpoint') || !Number.isSafeInteger(seq)) {
          return verifier.violation('PS_COLLECTOR_MALFORMED', `message at stream ${streamSeq} has no valid ${HEADER_KIND}/${HEADER_SEQ} headers`, { stream_seq: streamSeq });
        }
        if (kind === 'event') {
          const r = verifier.onEvent(seq, m.data, streamSeq);
          if (r.kind === 'violation') return r.violation;
          if (r.kind === 'resend') {
            resends.push(r);
            if (resends.length >= RESEND_BATCH) {
              const v = await checkResends();
              if (v) return v;
            }
          }
          this.#status.pending = verifier.pendingCount;
          continue;
        }
        const v = await checkResends();
        if (v) return v;
        const r = verifier.onCheckpoint(seq, m.data, streamSeq);
        if (r.kind === 'violation') return r.violation;
        if (r.kind === 'older') {
          const stored = await this.#o.store.checkpointNote(appliance, r.size);
          if (stored !== r.note) {
            const what = stored === undefined ? 'PS_COLLECTOR_ROLLBACK' : 'PS_COLLECTOR_FORK';
            return verifier.violation(what, stored === undefined
              ? `checkpoint of size ${r.size} (stream ${streamSeq}) is smaller than the verified ${verifier.position.next} and not one verified before: rollback`
              : `checkpoint of size ${r.size} (stream ${streamSeq}) differs from the one verified at that size: fork`, { stream_seq: streamSeq, checkpoint_size: r.size });
          }
          continue;
        }
        if (r.kind === 'duplicate') continue;
        const result = await this.#o.store.commit(appliance, r.batch);
        if (!('ok' in result)) {
          if (result.kind === 'moved') throw new Error('the stored position moved under this collector (another holder, or a stop); reloading it');
          return verifier.violation(result.seq !== undefined ? 'PS_COLLECTOR_ALTERED' : 'PS_COLLECTOR_FORK', result.seq !== undefined
            ? `event ${result.seq} is already stored with another body`
            : `checkpoint ${result.checkpointSize} is already stored with another root`, { seq: result.seq, checkpoint_size: r.batch.checkpoint.size, stream_seq: streamSeq });
        }
        verifier.committed(r.batch);
        this.#status.committed += r.batch.events.length;
        this.#status.verified = r.batch.to.next;
        this.#status.streamSeq = r.batch.to.streamSeq;
        this.#status.pending = verifier.pendingCount;
        this.#log.debug({ size: r.batch.to.next, events: r.batch.events.length, stream_seq: r.batch.to.streamSeq }, 'checkpoint verified and stored');
        // Ack after the commit: the newest message at or below the stored position covers all before it.
        let top = -1;
        for (const s of unacked.keys()) if (s <= r.batch.to.streamSeq && s > top) top = s;
        if (top >= 0) {
          unacked.get(top)!.ack();
          for (const s of [...unacked.keys()]) if (s <= top) unacked.delete(s);
        }
      }
      if (!this.#closed) throw new Error('the consumer ended (deleted, or the stream is gone)');
      return undefined;
    } finally {
      // A stop or an error leaves the loop: stop pulling (not awaited: it resolves once drained).
      messages.close().catch(() => {});
    }
  }
}
