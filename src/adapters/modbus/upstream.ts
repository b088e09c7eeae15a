// The gateway's side toward the PLC. Many PLCs accept only a few TCP connections and a serial bus
// carries one request at a time, so every session to one target shares ONE upstream link:
//   - a fair queue: round-robin across sessions, each session's own queue bounded;
//   - transaction ids rewritten (TCP): the PLC sees the gateway's ids, a late answer to a request that
//     already timed out is recognised and dropped instead of being taken for the next one's;
//   - per-request time-outs (target.timeout_ms, from the moment the request is sent, and again for the
//     time it may wait in the queue) → exception 0x0B "gateway target failed to respond";
//   - a link that is down or refused → 0x0A "gateway path unavailable" at once, reconnect with back-off.
// Nothing here waits without a timer: a caller always gets an answer.
//
// Transport choice. The issue asks for modbus-serial toward the PLC. Its client API (ModbusRTU) only
// builds the requests it knows (no FC 8, 20-24, 43 with arbitrary MEI data, no vendor codes), and its
// ports frame responses by function code: RTUBufferedPort computes the expected length for FC 1-6, 15,
// 16, 17 and 43 only, so an FC 23 or FC 24 answer is never emitted; TcpPort recomputes a CRC per frame
// and hides the transaction id, which rules out pipelining and late-answer detection. A forwarding
// gateway must pass any PDU the policy allowed, so:
//   - Modbus RTU: the byte transport is the `serialport` SerialPort that modbus-serial's own RTU ports
//     wrap (resolved through modbus-serial, so no new dependency), framed and CRC-checked by our codec
//     (rtu.ts), which knows every public function's response length;
//   - Modbus TCP: node:net with our MBAP framing — a socket is all TcpPort is, minus the rewrites.
import net from 'node:net';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { systemScheduler, type Scheduler, type TimerHandle } from '../../common/clock.ts';
import { PenstockError } from '../../common/errors.ts';
import { requireAuthorization, type Authorization } from '../../core/authorization.ts';
import { EXCEPTION_CODES, MbapDecoder, RtuResponseDecoder, decodeResponse, encodeMbap, encodeRequest, encodeResponse, encodeRtu, type ModbusRequest, type ModbusResponse } from './codec.ts';
import type { ModbusObject } from './rules.ts';
import type { ModbusTargetConfig } from './schema.ts';

export type UpstreamFailureCode =
  | 'UPSTREAM_UNAVAILABLE' // link down, refused, or backing off → 0x0A
  | 'UPSTREAM_TIMEOUT' // no answer in time → 0x0B
  | 'UPSTREAM_BAD_RESPONSE' // an answer that could not be framed (bad CRC, wrong unit) → 0x0B
  | 'UPSTREAM_QUEUE_FULL' // this session already has too many requests queued → 0x06
  | 'UPSTREAM_CLOSED'; // the gateway is shutting the link down → 0x0A

export type UpstreamReply =
  | { ok: true; pdu: Buffer; response: ModbusResponse; ms: number }
  | { ok: false; code: UpstreamFailureCode; exception: number; message: string; ms: number };

/** What the gateway may read for itself (Upstream.gatewayRead): coils, discrete inputs, registers. */
export type GatewayRead = Extract<ModbusRequest, { kind: 'read_bits' | 'read_registers' }>;
const GATEWAY_READS: ReadonlySet<ModbusRequest['kind']> = new Set(['read_bits', 'read_registers']);

/** Requests one session may have waiting for the shared link; beyond this it gets "busy". */
export const MAX_QUEUED_PER_SESSION = 16;
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10_000;
/** Timed-out requests whose late answer never came, before a TCP link is reset. */
const MAX_UNANSWERED = 8;
/** Serial line: silence kept after a request that got no (complete) answer. */
const LATE_ANSWER_QUIET_MS = 100;

interface Job {
  readonly session: string;
  readonly unit: number;
  readonly req: ModbusRequest;
  readonly pdu: Buffer;
  readonly startedNs: bigint;
  readonly resolve: (r: UpstreamReply) => void;
  /** When it times out (monotonic ns): in the queue, 2 × timeout_ms after it came; once sent, timeout_ms after. */
  deadlineNs: bigint;
  tid: number;
  settled: boolean;
}


/**
 * One target's shared link and fair queue. Subclasses move bytes (TCP, RTU); this class owns who goes
 * next, time-outs, failure answers and back-off.
 */
export abstract class Upstream {
  readonly target: string;
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  protected readonly log: Logger;
  /** Time and timers (time-outs, back-off, serial gaps): injected so tests move time instead of waiting. */
  protected readonly time: Scheduler;
  readonly #queues = new Map<string, Job[]>();
  /** Sessions with queued jobs, in round-robin order. */
  #ring: string[] = [];
  #inFlight = 0;
  #state: 'down' | 'connecting' | 'up' | 'backoff' | 'closed' = 'down';
  #backoffMs = BACKOFF_MIN_MS;
  #backoffTimer: TimerHandle | undefined;
  #lastFailure = '';
  /**
   * One timer per link, not one per request: it is due at the earliest deadline known when it was set,
   * and on firing fails what is overdue and sets itself for the next. A request's deadline only moves
   * it earlier when nothing earlier is pending, so a steady stream of requests sets it about once per
   * timeout_ms instead of twice per request.
   */
  #deadlineTimer: TimerHandle | undefined;
  #deadlineTimerNs = 0n;
  readonly #timeoutNs: bigint;
  /** How long a request may wait in the queue: 2 × timeout_ms (a BigInt product made once, not per request). */
  readonly #queuedTimeoutNs: bigint;

  protected constructor(target: string, timeoutMs: number, maxInFlight: number, log: Logger, time: Scheduler) {
    this.target = target;
    this.timeoutMs = timeoutMs;
    this.maxInFlight = maxInFlight;
    this.log = log;
    this.time = time;
    this.#timeoutNs = BigInt(timeoutMs) * 1_000_000n;
    this.#queuedTimeoutNs = 2n * this.#timeoutNs;
  }

  /**
   * Forward a client's request (decoded `req`, its bytes `pdu`) to `unit` and wait for the PLC's answer,
   * checked against the request by the codec, or a gateway exception. Only with proof: one Authorization
   * per action the request became, each minted by the core for this session, this target and this
   * function code (a request of two actions, FC 23, carries both). Anything less is a bug, never a peer's
   * doing: it throws PS_INTERNAL before a byte is queued. `session` is also the fairness key.
   */
  forward(authorizations: readonly Authorization[], session: string, unit: number, req: ModbusRequest, pdu: Buffer): Promise<UpstreamReply> {
    this.#checkProof(authorizations, session, req);
    return new Promise((resolve) => this.#enqueue(session, unit, req, pdu, resolve));
  }

  /**
   * forward(), with the answer handed to `onReply` instead of a promise: no promise and no microtask per
   * request on a front door's hot path. `onReply` is called exactly once, possibly before this returns
   * (a link that is closed, backing off or whose queue for this session is full answers at once).
   */
  forwardThen(authorizations: readonly Authorization[], session: string, unit: number, req: ModbusRequest, pdu: Buffer, onReply: (reply: UpstreamReply) => void): void {
    this.#checkProof(authorizations, session, req);
    this.#enqueue(session, unit, req, pdu, onReply);
  }

  #checkProof(authorizations: readonly Authorization[], session: string, req: ModbusRequest): void {
    if (authorizations.length === 0) throw new PenstockError('PS_INTERNAL', 'forwarding a request without an authorization');
    for (const a of authorizations) {
      const { action } = requireAuthorization(a, session, { target: this.target });
      if (action.object.kind !== 'modbus' || (action.object as ModbusObject).functionCode !== req.fc) {
        throw new PenstockError('PS_INTERNAL', `authorization for another request used for function ${req.fc}`);
      }
    }
  }

  /**
   * A read the gateway makes for itself, never a client's bytes: a scale factor before policy decides, or
   * the values a write is about to replace. Only FC 1-4 reads, built here from the request fields; the
   * answer goes to policy or the journal, never to a client.
   */
  gatewayRead(session: string, unit: number, req: GatewayRead): Promise<UpstreamReply> {
    if (!GATEWAY_READS.has(req.kind)) throw new PenstockError('PS_INTERNAL', `the gateway reads only with functions 1-4, not ${req.kind}`);
    const encoded = encodeRequest(req);
    return new Promise((resolve) => this.#enqueue(session, unit, req, encoded, resolve));
  }

  #enqueue(session: string, unit: number, req: ModbusRequest, pdu: Buffer, resolve: (r: UpstreamReply) => void): void {
    const startedNs = this.time.monotonic();
    // Time in the queue counts too: a long queue must not turn into a hang.
    const job: Job = { session, unit, req, pdu, startedNs, resolve, deadlineNs: startedNs + this.#queuedTimeoutNs, tid: 0, settled: false };
    if (this.#state === 'closed') return this.#fail(job, 'UPSTREAM_CLOSED', 'the gateway is closing this link');
    if (this.#state === 'backoff') return this.#fail(job, 'UPSTREAM_UNAVAILABLE', `target ${this.target} unreachable (${this.#lastFailure}); retrying shortly`);
    let queue = this.#queues.get(session);
    if (!queue) {
      queue = [];
      this.#queues.set(session, queue);
    }
    if (queue.length >= MAX_QUEUED_PER_SESSION) return this.#fail(job, 'UPSTREAM_QUEUE_FULL', `more than ${MAX_QUEUED_PER_SESSION} requests queued for this session`);
    if (queue.length === 0) this.#ring.push(session);
    queue.push(job);
    if (this.#state === 'down') this.#connect();
    else this.#pump();
    // After the pump: a job sent at once has its (earlier) in-flight deadline already.
    if (!job.settled) this.#watchDeadline(job.deadlineNs);
  }

  /** Queued and in-flight requests (for status and tests). */
  get pending(): number {
    let n = this.#inFlight;
    for (const q of this.#queues.values()) n += q.length;
    return n;
  }

  get state(): string {
    return this.#state;
  }

  close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.time.clearTimeout(this.#backoffTimer);
    this.time.clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    this.drop('UPSTREAM_CLOSED', 'the gateway closed this link');
    this.closeLink();
  }

  // ----------------------------------------------------------------- for subclasses

  /** Open the link; call linkUp() or linkFailed(). */
  protected abstract openLink(): void;
  /** Put one job on the wire (it carries `tid` on TCP). */
  protected abstract transmit(job: Job): void;
  protected abstract closeLink(): void;
  /** Called when a job ends (answered or timed out) so a serial link can move to the next frame. */
  protected abstract released(job: Job): void;

  protected linkUp(): void {
    if (this.#state === 'closed') return;
    this.#state = 'up';
    this.#backoffMs = BACKOFF_MIN_MS;
    this.log.info({ target: this.target }, 'upstream connected');
    this.#pump();
  }

  /** The link could not be opened or went away. In-flight requests get 0x0B (their fate is unknown), queued ones 0x0A. */
  protected linkFailed(reason: string): void {
    if (this.#state === 'closed') return;
    const wasUp = this.#state === 'up';
    this.#lastFailure = reason;
    this.log.warn({ target: this.target, reason, backoff_ms: this.#backoffMs }, 'upstream link failed');
    this.failInFlight('UPSTREAM_TIMEOUT', `target ${this.target} went away before answering (${reason})`);
    if (wasUp && this.pending > 0) {
      // A link that was up: try once more at once for what is queued, then back off if that fails too.
      this.#state = 'down';
      this.#connect();
      return;
    }
    this.drop('UPSTREAM_UNAVAILABLE', `target ${this.target} unreachable (${reason})`);
    this.#state = 'backoff';
    this.#backoffTimer = this.time.setTimeout(() => {
      if (this.#state === 'backoff') this.#state = 'down';
    }, this.#backoffMs);
    this.#backoffTimer.unref();
    this.#backoffMs = Math.min(BACKOFF_MAX_MS, this.#backoffMs * 2);
  }

  /** The answer for an in-flight job: checked against its request; a mismatch is a failed answer (0x0B). */
  protected deliver(job: Job, pdu: Buffer, decoded?: ModbusResponse): void {
    if (job.settled) return;
    let response = decoded;
    if (!response) {
      const r = decodeResponse(job.req, pdu);
      if (!r.ok) return this.#fail(job, 'UPSTREAM_BAD_RESPONSE', `${this.target} answered function ${job.req.fc} with a bad response: ${r.error.code}`);
      response = r.value;
    }
    this.#settle(job, { ok: true, pdu, response, ms: this.#elapsedMs(job) });
  }

  protected deliverFailure(job: Job, code: UpstreamFailureCode, message: string): void {
    if (job.settled) return;
    this.#fail(job, code, message);
  }

  /** Subclasses track in-flight jobs; this fails every one they hold. */
  protected abstract failInFlight(code: UpstreamFailureCode, message: string): void;

  /** Fail every queued (not yet sent) job. */
  protected drop(code: UpstreamFailureCode, message: string): void {
    for (const q of this.#queues.values()) for (const job of q) this.#fail(job, code, message);
    this.#queues.clear();
    this.#ring = [];
    if (code === 'UPSTREAM_CLOSED') this.failInFlight(code, message);
  }

  // ----------------------------------------------------------------- internals

  #connect(): void {
    this.#state = 'connecting';
    this.openLink();
  }

  #pump(): void {
    while (this.#state === 'up' && this.#inFlight < this.maxInFlight && this.#ring.length > 0) {
      const session = this.#ring.shift()!;
      const queue = this.#queues.get(session)!;
      const job = queue.shift()!;
      if (queue.length > 0) this.#ring.push(session);
      else this.#queues.delete(session);
      this.#inFlight++;
      job.deadlineNs = this.time.monotonic() + this.#timeoutNs;
      this.transmit(job);
      if (!job.settled) this.#watchDeadline(job.deadlineNs);
    }
  }

  /** Make sure the link's timer fires by `deadlineNs`. */
  #watchDeadline(deadlineNs: bigint): void {
    if (this.#state === 'closed') return;
    if (this.#deadlineTimer !== undefined) {
      if (this.#deadlineTimerNs <= deadlineNs) return;
      this.time.clearTimeout(this.#deadlineTimer);
    }
    this.#deadlineTimerNs = deadlineNs;
    const ms = Math.max(0, Math.ceil(Number(deadlineNs - this.time.monotonic()) / 1e6));
    this.#deadlineTimer = this.time.setTimeout(() => this.#onDeadline(), ms);
    // Whatever waits has a socket or a connect timer keeping the process up; this one need not.
    this.#deadlineTimer.unref();
  }

  /** The link's timer: fail every job past its deadline, then watch the earliest one left. */
  #onDeadline(): void {
    this.#deadlineTimer = undefined;
    const now = this.time.monotonic();
    const overdue: Job[] = [];
    let next: bigint | undefined;
    const consider = (job: Job) => {
      if (job.settled) return;
      if (job.deadlineNs <= now) overdue.push(job);
      else if (next === undefined || job.deadlineNs < next) next = job.deadlineNs;
    };
    for (const q of this.#queues.values()) for (const job of q) consider(job);
    for (const job of this.#sent) consider(job);
    for (const job of overdue) this.#timeout(job);
    if (next !== undefined) this.#watchDeadline(next);
  }

  #timeout(job: Job): void {
    if (job.settled) return;
    const queue = this.#queues.get(job.session);
    const at = queue ? queue.indexOf(job) : -1;
    if (at >= 0) {
      queue!.splice(at, 1);
      if (queue!.length === 0) {
        this.#queues.delete(job.session);
        this.#ring = this.#ring.filter((s) => s !== job.session);
      }
      this.#fail(job, 'UPSTREAM_TIMEOUT', `target ${this.target} queue did not drain within ${this.timeoutMs * 2} ms`);
      return;
    }
    this.#fail(job, 'UPSTREAM_TIMEOUT', `target ${this.target} did not answer within ${this.timeoutMs} ms`);
  }

  #fail(job: Job, code: UpstreamFailureCode, message: string): void {
    const exception = code === 'UPSTREAM_TIMEOUT' || code === 'UPSTREAM_BAD_RESPONSE'
      ? EXCEPTION_CODES.GATEWAY_TARGET_FAILED_TO_RESPOND
      : code === 'UPSTREAM_QUEUE_FULL'
        ? EXCEPTION_CODES.SERVER_DEVICE_BUSY
        : EXCEPTION_CODES.GATEWAY_PATH_UNAVAILABLE;
    this.#settle(job, { ok: false, code, exception, message, ms: this.#elapsedMs(job) });
  }

  #settle(job: Job, reply: UpstreamReply): void {
    if (job.settled) return;
    job.settled = true;
    const wasSent = this.#sent.delete(job);
    if (wasSent) {
      this.#inFlight--;
      this.released(job);
    }
    job.resolve(reply);
    if (wasSent) this.#pump();
  }

  readonly #sent = new Set<Job>();

  #elapsedMs(job: Job): number {
    return Number(this.time.monotonic() - job.startedNs) / 1e6;
  }

  /** Subclasses call this right before writing a job's bytes. */
  protected markSent(job: Job): void {
    this.#sent.add(job);
  }
}

// ------------------------------------------------------------------ Modbus/TCP

export class TcpUpstream extends Upstream {
  readonly #host: string;
  readonly #port: number;
  #socket: net.Socket | undefined;
  #decoder = new MbapDecoder();
  readonly #readBuffer = Buffer.allocUnsafe(16 * 1024);
  readonly #inFlight = new Map<number, Job>();
  #nextTid = 0;

  constructor(target: string, cfg: { host: string; port: number; timeout_ms: number; max_in_flight?: number }, log: Logger, time: Scheduler = systemScheduler) {
    super(target, cfg.timeout_ms, cfg.max_in_flight ?? 1, log, time);
    this.#host = cfg.host;
    this.#port = cfg.port;
  }

  protected openLink(): void {
    this.#decoder = new MbapDecoder();
    // Answers are read into one buffer per link, reused for every read (the decoder copies out what it
    // keeps): no fresh buffer and no stream 'data' event per answer.
    const socket = net.connect({
      host: this.#host,
      port: this.#port,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: 10_000,
      onread: {
        buffer: this.#readBuffer,
        callback: (n: number, buf: Uint8Array) => {
          if (this.#socket === socket) this.#onData(buf.subarray(0, n));
          return true; // keep reading
        },
      },
    });
    this.#socket = socket;
    const connectTimer = this.time.setTimeout(() => socket.destroy(new Error(`connect timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
    socket.once('connect', () => {
      this.time.clearTimeout(connectTimer);
      this.linkUp();
    });
    socket.on('error', () => {}); // 'close' follows with the reason handled there
    socket.once('close', () => {
      this.time.clearTimeout(connectTimer);
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      this.linkFailed(socket.errored ? describe(socket.errored) : 'connection closed by the target');
    });
  }

  protected transmit(job: Job): void {
    // 1..65535, skipping ids still in flight (a timed-out id stays reserved until its late answer or the link goes).
    do this.#nextTid = (this.#nextTid % 0xffff) + 1;
    while (this.#inFlight.has(this.#nextTid));
    job.tid = this.#nextTid;
    this.#inFlight.set(job.tid, job);
    this.markSent(job);
    const socket = this.#socket!;
    // Requests from many sessions that are sent in the same event-loop turn leave in one write(v)
    // syscall: corked now, uncorked once this turn's I/O callbacks have run (setImmediate). With one
    // request in flight there is nothing to gather, and waiting would only delay the PLC: send at once.
    if (this.maxInFlight > 1 && !this.#corked) {
      this.#corked = true;
      socket.cork();
      setImmediate(() => {
        this.#corked = false;
        socket.uncork();
      });
    }
    socket.write(encodeMbap(job.tid, job.unit, job.pdu));
  }

  #corked = false;

  protected released(job: Job): void {
    // An answered job was removed in #onData. A timed-out one keeps its id reserved, so that its late
    // answer is recognised and dropped rather than taken for another request's; a PLC that keeps not
    // answering gets its connection reset (which frees every id).
    if (this.#inFlight.get(job.tid) !== job) return;
    if (++this.#unanswered > MAX_UNANSWERED) this.#socket?.destroy(new Error(`${this.#unanswered} requests unanswered`));
  }

  #unanswered = 0;

  protected failInFlight(code: UpstreamFailureCode, message: string): void {
    const jobs = [...this.#inFlight.values()];
    this.#inFlight.clear();
    this.#unanswered = 0;
    for (const job of jobs) this.deliverFailure(job, code, message);
  }

  protected closeLink(): void {
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  #onData(chunk: Uint8Array): void {
    for (const r of this.#decoder.push(chunk)) {
      if ('error' in r) {
        if (!r.error.close) continue; // a frame with a foreign protocol id, skipped whole
        // The PLC's stream cannot be framed any more: drop the link, fail what is in flight, reconnect.
        this.log.warn({ target: this.target, code: r.error.code }, 'upstream sent an unframeable response');
        this.#socket?.destroy(new Error(`unframeable response (${r.error.code})`));
        return;
      }
      const f = r.frame;
      const job = this.#inFlight.get(f.transactionId);
      if (!job || f.unitId !== job.unit) continue; // a foreign answer: ignore
      this.#inFlight.delete(job.tid);
      if (job.settled) {
        this.#unanswered--; // the late answer to a request that timed out: drop it, free its id
        continue;
      }
      this.deliver(job, f.pdu);
    }
  }
}

// ------------------------------------------------------------------ Modbus RTU over a serial line

interface SerialPortLike extends Duplex {
  open(cb: (err: Error | null) => void): void;
  close(cb?: (err: Error | null) => void): void;
  readonly isOpen: boolean;
}
type SerialPortCtor = new (opts: Record<string, unknown>) => SerialPortLike;

let serialPortCtor: SerialPortCtor | undefined;
/** The SerialPort class modbus-serial's RTU ports use, resolved through modbus-serial itself. */
function loadSerialPort(): SerialPortCtor {
  if (!serialPortCtor) {
    const fromModbusSerial = createRequire(createRequire(import.meta.url).resolve('modbus-serial'));
    serialPortCtor = (fromModbusSerial('serialport') as { SerialPort: SerialPortCtor }).SerialPort;
  }
  return serialPortCtor;
}

export interface SerialConfig {
  device: string;
  baud: number;
  parity: 'none' | 'even' | 'odd';
  data_bits: 7 | 8;
  stop_bits: 1 | 2;
}

export class RtuUpstream extends Upstream {
  readonly #serial: SerialConfig;
  #port: SerialPortLike | undefined;
  #current: Job | undefined;
  #decoder: RtuResponseDecoder | undefined;
  /** The bus must be silent 3.5 character times between frames (≥ 1.75 ms above 19200 baud, per the spec). */
  readonly #gapMs: number;
  #lastTrafficMs = -Infinity; // no traffic yet: the first frame need not wait

  constructor(target: string, cfg: { serial: SerialConfig; timeout_ms: number }, log: Logger, time: Scheduler = systemScheduler) {
    super(target, cfg.timeout_ms, 1, log, time);
    this.#serial = cfg.serial;
    const bitsPerChar = 1 + cfg.serial.data_bits + (cfg.serial.parity === 'none' ? 0 : 1) + cfg.serial.stop_bits;
    this.#gapMs = cfg.serial.baud > 19200 ? 1.75 : (3.5 * bitsPerChar * 1000) / cfg.serial.baud;
  }

  protected openLink(): void {
    let port: SerialPortLike;
    try {
      const SerialPort = loadSerialPort();
      port = new SerialPort({
        path: this.#serial.device,
        baudRate: this.#serial.baud,
        parity: this.#serial.parity,
        dataBits: this.#serial.data_bits,
        stopBits: this.#serial.stop_bits,
        autoOpen: false,
      });
    } catch (err) {
      queueMicrotask(() => this.linkFailed(describe(err)));
      return;
    }
    this.#port = port;
    port.on('data', (chunk: Buffer) => this.#onData(chunk));
    port.on('error', () => {});
    port.once('close', () => {
      if (this.#port !== port) return;
      this.#port = undefined;
      this.linkFailed('serial port closed');
    });
    port.open((err) => {
      if (this.#port !== port) return;
      if (err) {
        this.#port = undefined;
        this.linkFailed(describe(err));
      } else this.linkUp();
    });
  }

  protected transmit(job: Job): void {
    this.#current = job;
    this.#decoder = new RtuResponseDecoder(job.req, job.unit);
    this.markSent(job);
    const frame = encodeRtu(job.unit, job.pdu);
    const wait = this.#gapMs - (this.#nowMs() - this.#lastTrafficMs);
    if (wait > 0) this.time.setTimeout(() => this.#write(job, frame), wait);
    else this.#write(job, frame);
  }

  #write(job: Job, frame: Buffer): void {
    if (this.#current !== job || job.settled) return;
    this.#port?.write(frame);
    this.#lastTrafficMs = this.#nowMs();
    // A broadcast (unit 0) is never answered: routes refuse unit 0 toward serial targets (see stream.ts).
  }

  protected released(job: Job): void {
    if (this.#current === job) {
      // An unanswered request's reply may still be on its way: keep the line quiet for a while, so that it
      // lands on no decoder instead of being read as the start of the next request's answer.
      if (this.#decoder?.result === undefined) this.#lastTrafficMs = this.#nowMs() + LATE_ANSWER_QUIET_MS;
      this.#current = undefined;
      this.#decoder = undefined;
      this.time.clearTimeout(this.#silence);
    }
  }

  protected failInFlight(code: UpstreamFailureCode, message: string): void {
    const job = this.#current;
    if (job) this.deliverFailure(job, code, message);
  }

  protected closeLink(): void {
    const port = this.#port;
    this.#port = undefined;
    if (port?.isOpen) port.close(() => {});
  }

  #onData(chunk: Buffer): void {
    this.#lastTrafficMs = this.#nowMs();
    const job = this.#current;
    const decoder = this.#decoder;
    if (!job || !decoder) return; // noise or a late answer after a time-out: the gap before the next frame absorbs it
    this.time.clearTimeout(this.#silence);
    const r = decoder.push(chunk);
    if (r === undefined) {
      // A function the codec cannot size (a vendor code) ends when the line goes quiet (t3.5, with
      // slack for USB adapters and ptys that deliver in bursts).
      if (job.req.kind === 'opaque') this.#silence = this.time.setTimeout(() => this.#finish(job, decoder.end()), Math.max(20, this.#gapMs * 4));
      return;
    }
    this.#finish(job, r);
  }

  #silence: TimerHandle | undefined;

  /** Milliseconds on the monotonic clock, for the gaps the serial line needs. */
  #nowMs(): number {
    return Number(this.time.monotonic()) / 1e6;
  }

  #finish(job: Job, r: ReturnType<RtuResponseDecoder['end']>): void {
    if (this.#current !== job) return;
    if (!r.ok) {
      this.deliverFailure(job, 'UPSTREAM_BAD_RESPONSE', `bad RTU response from ${this.target}: ${r.error.code}`);
      return;
    }
    this.deliver(job, encodeResponse(r.response), r.response);
  }
}

function describe(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') return (err as { code: string }).code;
  return err instanceof Error ? err.message : String(err);
}

// ------------------------------------------------------------------ one link per target

export function createUpstream(target: ModbusTargetConfig & { max_in_flight?: number }, log: Logger): Upstream {
  if (target.serial) return new RtuUpstream(target.id, { serial: target.serial, timeout_ms: target.timeout_ms }, log);
  return new TcpUpstream(target.id, { host: target.host!, port: target.port, timeout_ms: target.timeout_ms, ...(target.max_in_flight ? { max_in_flight: target.max_in_flight } : {}) }, log);
}
