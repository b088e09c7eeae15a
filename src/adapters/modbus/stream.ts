// One client's Modbus/TCP byte stream, already tied to an authenticated session: the glue between the
// codec, the core and the shared upstream links. Every front door ends here — the TLS and plain TCP
// listeners (adapter.ts) and, through `serveModbusStream`, tunnels another front door opened to a target.
//
// Per request, in the order it arrived (one at a time per stream, so a write and the read after it
// reach the PLC in that order; concurrency comes from many streams sharing the upstream's fair queue):
//   MBAP frame → route (client unit → target, target unit) → decodeRequest → requestToActions
//   → core.authorize for each action (reads first, then writes: a write is journaled as allowed only
//     once everything else in the request is) → any refusal: the Modbus exception for its reason, at once
//   → optional read-back of the values about to be overwritten → forward upstream, with the
//     Authorization of every action as proof (Upstream.forward refuses to send without it)
//   → answer with the PLC's response under the client's transaction id → core.recordOutcome for writes.
// Bad bytes never reach the PLC: an undecodable PDU gets the codec's exception; a stream that can no
// longer be framed is closed. Refusals of malformed input are counted, and journaled (core.recordRefusal)
// one by one up to a bound per stream (a hostile peer must not turn the journal into its disk-filler);
// the rest are journaled as one summary when the stream ends.
import type { Duplex } from 'node:stream';
import type { Authorization, Core, Verdict } from '../../core/core.ts';
import type { Session } from '../../sessions/registry.ts';
import {
  EXCEPTION_CODES,
  MbapDecoder,
  decodeRequest,
  encodeException,
  encodeMbap,
  exceptionForDecision,
  requestToActions,
  type MbapFrame,
  type ModbusAction,
  type ModbusErrorCode,
  type ModbusRequest,
  type ModbusResponse,
} from './codec.ts';
import { modbusTargetSchema, type ModbusTargetConfig } from './schema.ts';
import type { GatewayRead, Upstream, UpstreamReply } from './upstream.ts';
import { addScaleFactors } from './scale-factors.ts';
import { upstreamsFor, type UpstreamPool } from './pool.ts';

/** A client unit id → the target it reaches and the unit id used toward that target. */
export interface ModbusRoute {
  unit: number;
  target: string;
  /** Unit id on the target side; defaults to the target's configured `unit`. */
  targetUnit?: number;
}

export interface ModbusStreamOptions {
  routes: readonly ModbusRoute[];
  /** Close the stream after this long without a complete request (default 300 s). */
  idleMs?: number;
  /** Close the stream when a partial frame has been pending this long: slow-loris (default 5 s). */
  frameTimeoutMs?: number;
  /** Shared upstream links; default: the pool shared by every front door of this core. */
  upstreams?: UpstreamPool;
  /** The Modbus/TCP Security role from the client certificate, recorded with write outcomes. */
  role?: string;
}

export type StreamEndReason = 'peer_closed' | 'idle' | 'frame_timeout' | 'desynchronised' | 'stream_error' | 'closed';

export interface ModbusStreamHandle {
  /** Resolves when the stream has ended (never rejects). */
  readonly done: Promise<StreamEndReason>;
  /** End the stream now. */
  close(reason?: StreamEndReason): void;
}

/** Malformed requests journaled one by one per stream; beyond this they are counted and summarised. */
export const MALFORMED_JOURNALED_PER_STREAM = 16;
/** Frames decoded but not yet handled before the stream stops reading (backpressure on a pipelining client). */
const MAX_BACKLOG = 16;
/** #handle's answer for a request whose reply will call #continue. */
const WAITING = Symbol('waiting');

function isRead(a: ModbusAction): boolean {
  return a.verb === 'read';
}

/**
 * Reads first, then privileged actions: a write is journaled as allowed only when the whole request is.
 * Most requests are one action, which is returned as it is (no copies on the hot path).
 */
function readsFirst(actions: ModbusAction[]): ModbusAction[] {
  if (actions.length < 2) return actions;
  return [...actions.filter(isRead), ...actions.filter((a) => !isRead(a))];
}

/**
 * Serve Modbus/TCP (MBAP) on `stream` for `session`. The caller owns the session: it opened it, and it
 * closes it once `done` resolves if the session was only this stream (a listener connection), or keeps
 * it (a session of another front door that carries several streams). The session's kill callback should destroy the stream.
 */
export function serveModbusStream(stream: Duplex, session: Session, core: Core, options: ModbusStreamOptions): ModbusStreamHandle {
  return new StreamServer(stream, session, core, options).handle;
}

class StreamServer {
  readonly handle: ModbusStreamHandle;
  readonly #stream: Duplex;
  readonly #session: Session;
  readonly #core: Core;
  readonly #routes: Map<number, ModbusRoute>;
  readonly #pool: UpstreamPool;
  readonly #release: () => void;
  readonly #role: string | undefined;
  readonly #idleMs: number;
  readonly #frameTimeoutMs: number;
  readonly #decoder = new MbapDecoder();
  readonly #backlog: MbapFrame[] = [];
  #working = false;
  #ended: StreamEndReason | undefined;
  #resolveDone!: (r: StreamEndReason) => void;
  #lastRequestMs: number;
  #partialSinceMs: number | undefined;
  readonly #sweep: NodeJS.Timeout;
  #malformed = 0;

  constructor(stream: Duplex, session: Session, core: Core, options: ModbusStreamOptions) {
    this.#stream = stream;
    this.#session = session;
    this.#core = core;
    this.#routes = new Map(options.routes.map((r) => [r.unit, r]));
    if (options.upstreams) {
      this.#pool = options.upstreams;
      this.#release = () => {};
    } else {
      this.#pool = upstreamsFor(core);
      this.#release = this.#pool.acquire();
    }
    this.#role = options.role;
    this.#idleMs = options.idleMs ?? 300_000;
    this.#frameTimeoutMs = options.frameTimeoutMs ?? 5_000;
    this.#lastRequestMs = performance.now();
    const done = new Promise<StreamEndReason>((resolve) => {
      this.#resolveDone = resolve;
    });
    this.handle = { done, close: (reason = 'closed') => this.#end(reason) };

    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('error', () => this.#end('stream_error'));
    stream.on('close', () => this.#end('peer_closed'));
    stream.on('end', () => this.#end('peer_closed'));
    // One coarse timer per stream (not one per byte): idle and slow-loris checks.
    const every = Math.max(50, Math.min(1000, Math.floor(Math.min(this.#idleMs, this.#frameTimeoutMs) / 4)));
    this.#sweep = setInterval(() => this.#checkTimers(), every);
    this.#sweep.unref();
  }

  // ----------------------------------------------------------------- input

  #onData(chunk: Buffer): void {
    if (this.#ended) return;
    this.#session.counters.bytesIn += chunk.length;
    for (const r of this.#decoder.push(chunk)) {
      if ('error' in r) {
        this.#refuseMalformed(r.error.code, 0, r.error.message, r.error.transactionId);
        if (r.error.close) {
          // The length cannot be trusted, so neither can anything after it: close (the spec answers nothing).
          this.#end('desynchronised');
          return;
        }
        continue;
      }
      this.#lastRequestMs = performance.now();
      this.#backlog.push(r.frame);
    }
    this.#partialSinceMs = this.#decoder.bufferedBytes > 0 ? (this.#partialSinceMs ?? performance.now()) : undefined;
    if (this.#backlog.length >= MAX_BACKLOG) this.#stream.pause();
    if (!this.#working && this.#backlog.length > 0) void this.#work();
  }

  /**
   * Handles the backlog in order, one request at a time. A request answered without waiting (a refusal
   * of bad input, a read the PLC answered at once) is followed by the next in this same call; one that
   * waits ends the call, and its answer calls #continue.
   */
  #work(): void {
    this.#working = true;
    try {
      while (!this.#ended && this.#backlog.length > 0) {
        const frame = this.#backlog.shift()!;
        const waiting = this.#handle(frame);
        if (waiting === WAITING) return;
        if (waiting) {
          waiting.then(this.#continue, this.#crashed);
          return;
        }
        this.#unpause();
      }
    } catch (err) {
      this.#crashed(err);
      return;
    }
    this.#working = false;
  }

  /** The request #work waited for has been answered: on with the backlog. */
  readonly #continue = (): void => {
    this.#unpause();
    this.#work();
  };

  /** A bug here must not leave a client hanging or the process dying: log and close this stream only. */
  readonly #crashed = (err: unknown): void => {
    this.#working = false;
    this.#core.log.error({ err, session: this.#session.id }, 'modbus stream handler failed');
    this.#end('stream_error');
  };

  #unpause(): void {
    if (this.#backlog.length < MAX_BACKLOG / 2 && this.#stream.isPaused()) this.#stream.resume();
  }

  #checkTimers(): void {
    const now = performance.now();
    if (this.#partialSinceMs !== undefined && now - this.#partialSinceMs >= this.#frameTimeoutMs) this.#end('frame_timeout');
    else if (!this.#working && this.#backlog.length === 0 && now - this.#lastRequestMs >= this.#idleMs) this.#end('idle');
  }

  // ----------------------------------------------------------------- one request

  /**
   * One request: undefined once it has been answered, WAITING when the answer will call #continue, or
   * the promise of the slow path (anything but a lone read allowed at once).
   */
  #handle(frame: MbapFrame): typeof WAITING | Promise<void> | undefined {
    const route = this.#routes.get(frame.unitId);
    const target = route ? this.#target(route.target) : undefined;
    if (!route || !target) {
      this.#refuseMalformed('MODBUS_UNROUTED_UNIT', frame.pdu[0] ?? 0, `no route for unit ${frame.unitId}`, frame.transactionId);
      return this.#answer(frame, encodeException(frame.pdu[0] ?? 0, EXCEPTION_CODES.GATEWAY_PATH_UNAVAILABLE));
    }
    const decoded = decodeRequest(frame.pdu);
    if (!decoded.ok) {
      const e = decoded.error;
      this.#refuseMalformed(e.code, e.fc, e.message, frame.transactionId, route.target);
      return this.#answer(frame, encodeException(e.fc, e.exception));
    }
    const req = decoded.value;
    const unit = route.targetUnit ?? target.unit;
    const ordered = readsFirst(requestToActions(req, route.target, unit));
    const upstream = this.#pool.get(target);
    if (ordered.length === 1 && isRead(ordered[0]!)) {
      // A lone read (a poll): no scale factor to carry (it does not wait a turn for nothing), and an
      // allowed read is decided without a promise.
      const core = this.#core;
      const verdict = core.authorizeNow ? core.authorizeNow(this.#session, ordered[0]!) : core.authorize(this.#session, ordered[0]!);
      if (verdict instanceof Promise) return this.#forwardReadLater(frame, req, unit, target, upstream, verdict);
      if (this.#refuseRead(frame, req, unit, target, verdict)) return undefined;
      return this.#forwardRead(frame, req, unit, upstream, verdict.authorization!);
    }
    return this.#handleActions(frame, req, unit, target, upstream, ordered);
  }

  /** Answers a lone read that must not go out (refused, the stream ended, a serial broadcast); true if so. */
  #refuseRead(frame: MbapFrame, req: ModbusRequest, unit: number, target: ModbusTargetConfig, verdict: Verdict): boolean {
    if (!verdict.authorization) this.#answer(frame, encodeException(req.fc, exceptionForDecision(verdict.reason)));
    else if (this.#ended) return true;
    // A broadcast on a serial line is never answered, so it cannot be confirmed to the client.
    else if (target.serial && unit === 0) this.#answer(frame, encodeException(req.fc, EXCEPTION_CODES.GATEWAY_PATH_UNAVAILABLE));
    else return false;
    return true;
  }

  /** A lone read allowed at once, forwarded; its answer is passed on by #passOnReply. */
  #forwardRead(frame: MbapFrame, req: ModbusRequest, unit: number, upstream: Upstream, authorization: Authorization): typeof WAITING {
    this.#reading = frame;
    this.#readingFc = req.fc;
    upstream.forwardThen([authorization], this.#session.id, unit, req, frame.pdu, this.#onReadReply);
    return WAITING;
  }

  /** The one read this stream has out (one request at a time per stream): its frame and function code. */
  #reading: MbapFrame | undefined;
  #readingFc = 0;
  #readReply: UpstreamReply | undefined;

  /**
   * Called by the link, from inside its own bookkeeping (settling a job, failing every queued one, or
   * before forwardThen returns): the answer and the next request wait for a microtask, so that the next
   * request never enters the link while it is half way through changing its state.
   */
  readonly #onReadReply = (reply: UpstreamReply): void => {
    this.#readReply = reply;
    queueMicrotask(this.#passOnReply);
  };

  readonly #passOnReply = (): void => {
    const frame = this.#reading!;
    const reply = this.#readReply!;
    this.#reading = undefined;
    this.#readReply = undefined;
    try {
      this.#answerReply(frame, this.#readingFc, reply);
    } catch (err) {
      this.#crashed(err);
      return;
    }
    this.#continue();
  };

  /** A lone read whose verdict waits (a refusal being journaled, journal.every_read, a person). */
  async #forwardReadLater(frame: MbapFrame, req: ModbusRequest, unit: number, target: ModbusTargetConfig, upstream: Upstream, pending: Promise<Verdict>): Promise<void> {
    const verdict = await pending;
    if (this.#refuseRead(frame, req, unit, target, verdict)) return;
    const reply = await upstream.forward([verdict.authorization!], this.#session.id, unit, req, frame.pdu);
    this.#answerReply(frame, req.fc, reply);
  }

  /** Anything but a lone read: scale factors, every action decided in turn, read-back, outcomes journaled. */
  async #handleActions(frame: MbapFrame, req: ModbusRequest, unit: number, target: ModbusTargetConfig, upstream: Upstream, ordered: ModbusAction[]): Promise<void> {
    // Writes to points scaled by a register of the device carry the factor, read first, into policy.
    const profile = target.profile ? this.#core.config().profiles.get(target.profile) : undefined;
    if (profile) await addScaleFactors(ordered, profile, upstream, this.#session.id);
    const authorizations: Authorization[] = [];
    for (const action of ordered) {
      const verdict = await this.#core.authorize(this.#session, action);
      if (!verdict.authorization) return this.#answer(frame, encodeException(req.fc, exceptionForDecision(verdict.reason)));
      authorizations.push(verdict.authorization);
    }
    if (this.#ended) return;
    if (target.serial && unit === 0) {
      // A broadcast on a serial line is never answered, so it cannot be confirmed to the client.
      return this.#answer(frame, encodeException(req.fc, EXCEPTION_CODES.GATEWAY_PATH_UNAVAILABLE));
    }
    const writes = ordered.filter((a) => !isRead(a));
    const before = writes.length > 0 && target.read_back_before_write ? await readBack(upstream, this.#session.id, unit, writes) : undefined;
    const reply = await upstream.forward(authorizations, this.#session.id, unit, req, frame.pdu);
    this.#answerReply(frame, req.fc, reply);
    for (const action of writes) void this.#core.recordOutcome(this.#session, action, writeOutcome(action, reply, before, this.#role));
  }

  /** The PLC's answer, or the exception the link gave instead (time-out, link down, queue full). */
  #answerReply(frame: MbapFrame, fc: number, reply: UpstreamReply): void {
    this.#answer(frame, reply.ok ? reply.pdu : encodeException(fc, reply.exception));
  }

  #answer(frame: MbapFrame, pdu: Buffer): undefined {
    if (this.#ended || this.#stream.destroyed) return undefined;
    const bytes = encodeMbap(frame.transactionId, frame.unitId, pdu);
    this.#session.counters.bytesOut += bytes.length;
    this.#stream.write(bytes);
    return undefined;
  }

  #target(id: string): ModbusTargetConfig | undefined {
    return parsedTarget(this.#core, id);
  }

  // ----------------------------------------------------------------- refusals that policy never saw

  #refuseMalformed(reason: MalformedReason, fc: number, message: string, transactionId: number, target?: string): void {
    this.#session.counters.denied++;
    this.#malformed++;
    if (this.#malformed > MALFORMED_JOURNALED_PER_STREAM) return;
    void recordMalformed(this.#core, this.#session, reason, { function_code: fc, transaction_id: transactionId, message, ...(target ? { target } : {}) });
  }

  #end(reason: StreamEndReason): void {
    if (this.#ended) return;
    this.#ended = reason;
    clearInterval(this.#sweep);
    this.#backlog.length = 0;
    if (!this.#stream.destroyed) this.#stream.destroy();
    const suppressed = this.#malformed - MALFORMED_JOURNALED_PER_STREAM;
    if (suppressed > 0) void recordMalformed(this.#core, this.#session, 'MODBUS_MALFORMED_SUMMARY', { suppressed, total: this.#malformed });
    this.#release();
    this.#resolveDone(reason);
  }
}

// ------------------------------------------------------------------ helpers

/**
 * Why a request never became an Action: a codec refusal (exceptions.ts), a unit id with no route, or the
 * summary of the refusals beyond the per-stream bound. Stable codes: the journal's `detail.reason`.
 */
export type MalformedReason = ModbusErrorCode | 'MODBUS_UNROUTED_UNIT' | 'MODBUS_MALFORMED_SUMMARY';

/**
 * Journal a request that never became an Action (undecodable, unframeable, unrouted) through the core's
 * one refusal path. It gates nothing, so the request path does not wait for it; recordRefusal never throws.
 */
export function recordMalformed(core: Core, session: Session, reason: MalformedReason, detail: Record<string, unknown>): Promise<void> {
  return core.recordRefusal({
    event: 'action.malformed',
    listener: session.listener,
    remote: session.remote,
    session,
    detail: { protocol: 'modbus', reason, ...detail },
  });
}

const targetCache = new WeakMap<object, ModbusTargetConfig | null>();
/** The target's Modbus options with defaults, from the current config snapshot (a reload swaps it). */
export function parsedTarget(core: Core, id: string): ModbusTargetConfig | undefined {
  const raw = core.config().targets.get(id);
  if (!raw || raw.protocol !== 'modbus') return undefined;
  let parsed = targetCache.get(raw);
  if (parsed === undefined) {
    const r = modbusTargetSchema.safeParse(raw);
    parsed = r.success ? r.data : null;
    targetCache.set(raw, parsed);
  }
  return parsed ?? undefined;
}

/** The current values of the registers or coils the writes are about to change (Penstock's own read, not the client's): `table:address` → values. */
export async function readBack(upstream: Upstream, session: string, unit: number, writes: readonly ModbusAction[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const w of writes) {
    const o = w.object;
    if ((o.table !== 'holding_register' && o.table !== 'coil') || o.quantity < 1) continue;
    const req: GatewayRead = o.table === 'coil'
      ? { kind: 'read_bits', fc: 1, address: o.address, quantity: o.quantity }
      : { kind: 'read_registers', fc: 3, address: o.address, quantity: o.quantity };
    const r = await upstream.gatewayRead(session, unit, req);
    out[`${o.table}:${o.address}`] = r.ok ? valuesOf(r.response) : { failed: r.code, exception: r.exception };
  }
  return out;
}

function valuesOf(res: ModbusResponse): number[] | undefined {
  return 'values' in res && Array.isArray(res.values) ? res.values : undefined;
}

/** What the journal's action.outcome of one write says: values, old values (read back), duration, and how the target answered. */
export function writeOutcome(action: ModbusAction, reply: UpstreamReply, before: Record<string, unknown> | undefined, role: string | undefined): Record<string, unknown> {
  const o = action.object;
  const base: Record<string, unknown> = {
    function_code: o.functionCode,
    ...(o.values ? { new_values: o.values } : {}),
    ...(before ? { old_values: before[`${o.table}:${o.address}`] } : {}),
    duration_ms: Math.round(reply.ms * 1000) / 1000,
    ...(role ? { role } : {}),
  };
  if (!reply.ok) return { ...base, ok: false, upstream: reply.code, exception: reply.exception, message: reply.message };
  if (reply.response.kind === 'exception') return { ...base, ok: false, exception: reply.response.exception };
  return { ...base, ok: true };
}
