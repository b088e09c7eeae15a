// The admin socket's live event stream (`events.follow`): committed journal events, as stored, and
// periodic snapshots of the live sessions, fanned out to any number of watchers.
//
// Nobody waits for a watcher. The journal hands each committed batch to the hub synchronously; the hub
// encodes each event once and offers the line to every watcher, which writes it to its socket while the
// socket keeps up and queues it (bounded, in events and bytes) while it does not. A watcher whose queue
// is full loses the events that do not fit; when it catches up it is told, in order, with a `lost` line
// (how many, first and last seq) where the gap is. Memory per watcher is bounded whatever it does.
import type { StoredEvent } from '../journal/event.ts';
import type { SessionView } from '../sessions/types.ts';
import type { StreamSink } from './stream.ts';

export const EVENT_KINDS = ['session', 'decision', 'alert', 'grant', 'admin', 'other'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];
/** What a watcher sees unless it asks for more: the plant's side, not the broker's own housekeeping. */
export const DEFAULT_EVENT_KINDS: readonly EventKind[] = ['session', 'decision', 'alert', 'grant'];

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** The kind of a stored event, from its name. */
export function kindOf(event: Pick<StoredEvent, 'event'>): EventKind {
  const [family] = event.event.split('.', 1);
  switch (family) {
    case 'session':
    case 'auth':
      return 'session';
    case 'action':
    case 'reads':
    case 'approval':
      return 'decision';
    case 'alert':
    case 'containment':
      return 'alert';
    case 'grant':
      return 'grant';
    case 'admin':
    case 'config':
    case 'daemon':
    case 'sync':
    case 'checkpoint':
      return 'admin';
    default:
      return 'other';
  }
}

/**
 * How serious an event is: the alert's own `detail.severity` when it names one, else its code's suffix
 * (I info, W warning, E critical). A denial (PS3002W) is therefore a warning.
 */
export function severityOf(event: Pick<StoredEvent, 'code' | 'detail'>): Severity {
  const named = event.detail?.severity;
  if (typeof named === 'string' && (SEVERITIES as readonly string[]).includes(named)) return named as Severity;
  switch (event.code.at(-1)) {
    case 'E':
      return 'critical';
    case 'W':
      return 'warning';
    default:
      return 'info';
  }
}

export interface EventFilter {
  /** The principal, or anyone in the delegation chain (for whom it acts). */
  principal?: string | undefined;
  target?: string | undefined;
  /** At least this severity (events only; session snapshots are filtered by principal and target). */
  severity?: Severity | undefined;
  kinds?: readonly EventKind[] | undefined;
}

function involves(who: string | undefined, chain: readonly string[] | undefined, principal: string): boolean {
  return who === principal || (chain?.includes(principal) ?? false);
}

export function eventMatches(f: EventFilter, e: StoredEvent, kind: EventKind, severity: Severity): boolean {
  if (!(f.kinds ?? DEFAULT_EVENT_KINDS).includes(kind)) return false;
  if (f.severity !== undefined && SEVERITIES.indexOf(severity) < SEVERITIES.indexOf(f.severity)) return false;
  if (f.principal !== undefined && !involves(e.principal, e.chain, f.principal)) return false;
  if (f.target !== undefined && e.target !== f.target) return false;
  return true;
}

export function sessionMatches(f: EventFilter, s: SessionView): boolean {
  if (f.principal !== undefined && !involves(s.principal, s.chain, f.principal)) return false;
  if (f.target !== undefined && s.target !== f.target) return false;
  return true;
}

/** The lines of the stream (after the reply header), one JSON object each. */
export type StreamLine =
  | { type: 'event'; kind: EventKind; severity: Severity; event: StoredEvent }
  | { type: 'sessions'; time: string; sessions: SessionView[] }
  | { type: 'lost'; dropped: number; first_seq: number; last_seq: number };

export interface WatcherLimits {
  /** Stop writing to the socket while it holds this many unsent bytes (then queue). */
  socketBytes: number;
  /** Most lines queued behind the socket. */
  queueLines: number;
  /** Most bytes queued behind the socket. */
  queueBytes: number;
}

export const DEFAULT_WATCHER_LIMITS: WatcherLimits = { socketBytes: 64 * 1024, queueLines: 1000, queueBytes: 512 * 1024 };

/** One watcher's bounded queue in front of its socket. */
export class Watcher {
  readonly filter: EventFilter;
  readonly #sink: StreamSink;
  readonly #limits: WatcherLimits;
  readonly #queue: string[] = [];
  #queuedBytes = 0;
  #dropped = 0;
  #firstDropped = 0;
  #lastDropped = 0;
  #stopped = false;
  // Called as each written line leaves for the kernel: room again, so move the queue on. (Not 'drain':
  // that comes only after a write found the socket past its own high-water mark, which need not be ours.)
  readonly #onFlushed = (err?: Error | null): void => {
    if (err || this.#stopped) return;
    this.#pump();
    // Caught up: say what was lost now, not only when the next event comes.
    if (this.#queue.length === 0 && this.#dropped > 0) {
      this.#tellLost();
      this.#pump();
    }
  };

  constructor(sink: StreamSink, filter: EventFilter, limits: WatcherLimits = DEFAULT_WATCHER_LIMITS) {
    this.#sink = sink;
    this.filter = filter;
    this.#limits = limits;
  }

  /** True when nothing waits behind the socket (a snapshot is only worth sending then). */
  get caughtUp(): boolean {
    return this.#queue.length === 0 && this.#dropped === 0 && this.#sink.writableLength < this.#limits.socketBytes;
  }

  /**
   * Offer an event line (with its seq, for the `lost` notice); never blocks, never grows past the limits.
   * Once the queue is full the watcher has lost its place: everything is dropped until it has read all
   * that was queued, so that a gap is one run of seqs, told once.
   */
  offerEvent(line: string, seq: number): void {
    if (this.#dropped > 0 || this.#queue.length >= this.#limits.queueLines || this.#queuedBytes + line.length > this.#limits.queueBytes) {
      if (this.#dropped === 0) this.#firstDropped = seq;
      this.#dropped++;
      this.#lastDropped = seq;
      return;
    }
    this.#enqueue(line);
    this.#pump();
  }

  /** Offer a line that may be skipped when the watcher is behind (a newer one follows). */
  offerSnapshot(line: string): void {
    if (!this.caughtUp) return;
    this.#enqueue(line);
    this.#pump();
  }

  stop(): void {
    this.#stopped = true;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
  }

  #tellLost(): void {
    const lost: StreamLine = { type: 'lost', dropped: this.#dropped, first_seq: this.#firstDropped, last_seq: this.#lastDropped };
    this.#dropped = 0;
    // May pass the queue's bound by this one short line: the notice is never itself lost.
    this.#enqueue(`${JSON.stringify(lost)}\n`);
  }

  #enqueue(line: string): void {
    this.#queue.push(line);
    this.#queuedBytes += line.length;
  }

  #pump(): void {
    if (this.#sink.destroyed) return;
    while (this.#queue.length > 0 && this.#sink.writableLength < this.#limits.socketBytes) {
      const line = this.#queue.shift()!;
      this.#queuedBytes -= line.length;
      this.#sink.write(line, this.#onFlushed);
    }
  }
}

/** What the hub follows: the journal's committed events. */
export interface CommittedSource {
  onCommitted(listener: (events: readonly StoredEvent[]) => void): () => void;
}

export interface EventHubOptions {
  journal: CommittedSource;
  sessions: () => readonly SessionView[];
  /** Wall time for the snapshots' `time`. */
  now: () => number;
  /** How often live sessions are sent (default 2 s). */
  sessionsEveryMs?: number;
  limits?: WatcherLimits;
}

export const DEFAULT_SESSIONS_EVERY_MS = 2_000;

/** Fans committed events and session snapshots out to watchers; follows the journal only while watched. */
export class EventHub {
  readonly #opts: EventHubOptions;
  readonly #watchers = new Set<Watcher>();
  #unfollow: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: EventHubOptions) {
    this.#opts = opts;
  }

  get sessionsEveryMs(): number {
    return this.#opts.sessionsEveryMs ?? DEFAULT_SESSIONS_EVERY_MS;
  }

  get watching(): number {
    return this.#watchers.size;
  }

  /** A new watcher on `sink`: it gets the live sessions at once, then events as committed. Returns its stop. */
  follow(sink: StreamSink, filter: EventFilter): () => void {
    const w = new Watcher(sink, filter, this.#opts.limits);
    this.#watchers.add(w);
    if (this.#watchers.size === 1) this.#start();
    w.offerSnapshot(this.#snapshotLine(this.#opts.sessions(), w.filter));
    return () => {
      if (!this.#watchers.delete(w)) return;
      w.stop();
      if (this.#watchers.size === 0) this.#halt();
    };
  }

  #start(): void {
    this.#unfollow = this.#opts.journal.onCommitted((events) => this.#publish(events));
    this.#timer = setInterval(() => {
      const sessions = this.#opts.sessions();
      for (const w of this.#watchers) w.offerSnapshot(this.#snapshotLine(sessions, w.filter));
    }, this.sessionsEveryMs);
    this.#timer.unref();
  }

  #halt(): void {
    this.#unfollow?.();
    this.#unfollow = undefined;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #publish(events: readonly StoredEvent[]): void {
    for (const event of events) {
      const kind = kindOf(event);
      const severity = severityOf(event);
      let line: string | undefined;
      for (const w of this.#watchers) {
        if (!eventMatches(w.filter, event, kind, severity)) continue;
        line ??= `${JSON.stringify({ type: 'event', kind, severity, event } satisfies StreamLine)}\n`;
        w.offerEvent(line, event.seq);
      }
    }
  }

  #snapshotLine(all: readonly SessionView[], filter: EventFilter): string {
    const sessions = all.filter((s) => sessionMatches(filter, s));
    return `${JSON.stringify({ type: 'sessions', time: new Date(this.#opts.now()).toISOString(), sessions } satisfies StreamLine)}\n`;
  }
}
