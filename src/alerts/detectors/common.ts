// What the detectors share: bounded, expiring state (a detector follows an endless stream, so every
// map it keeps has a cap and forgets what went quiet), the quiet period that makes one incident one
// alert, and reading an event's who/where and its action's protocol block.
import type { StoredEvent } from '../../journal/event.ts';
import { protocols } from '../../adapters/registry.ts';
import type { ProtocolModule } from '../../adapters/types.ts';
import type { Alert } from '../types.ts';

/** Most keys (principals, sessions, points) one detector's map holds; the least recently touched go first. */
export const DEFAULT_CAP = 10_000;

/**
 * A map whose entries expire `ttlMs` after they were last set, holding at most `cap` of them (the least
 * recently set is dropped first). Time is whatever the caller says it is (the injected clock).
 */
export class ExpiringMap<K, V> {
  readonly #entries = new Map<K, { value: V; at: number }>();
  readonly #ttlMs: number;
  readonly #cap: number;
  #sweptAt = -Infinity;

  constructor(ttlMs: number, cap = DEFAULT_CAP) {
    this.#ttlMs = ttlMs;
    this.#cap = cap;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: K, now: number): V | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (now - e.at >= this.#ttlMs) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: K, value: V, now: number): void {
    // Re-inserted, so the map's order is the order of last use: the oldest is always first.
    this.#entries.delete(key);
    this.#entries.set(key, { value, at: now });
    // Over the cap, the oldest tenth goes at once: one walk over the map's front per many inserts.
    if (this.#entries.size > this.#cap) this.#evict(Math.floor(this.#cap * 0.9));
    // Expired entries go in sweeps a quarter of the time to live apart (get() never returns one anyway).
    if (now - this.#sweptAt >= this.#ttlMs / 4) this.#sweep(now);
  }

  delete(key: K): void {
    this.#entries.delete(key);
  }

  values(now: number): V[] {
    this.#sweep(now);
    return [...this.#entries.values()].map((e) => e.value);
  }

  #evict(keep: number): void {
    for (const key of this.#entries.keys()) {
      if (this.#entries.size <= keep) break;
      this.#entries.delete(key);
    }
  }

  #sweep(now: number): void {
    this.#sweptAt = now;
    for (const [key, e] of this.#entries) {
      if (now - e.at < this.#ttlMs) break;
      this.#entries.delete(key);
    }
  }
}

/** One alert per incident: after an incident's alert, the same key stays quiet for `quietMs`. */
export class QuietPeriods {
  readonly #last: ExpiringMap<string, true>;

  constructor(quietMs: number, cap = DEFAULT_CAP) {
    this.#last = new ExpiringMap(quietMs, cap);
  }

  /** True (and the quiet period starts) when `key` has not alerted within the quiet period. */
  take(key: string, now: number): boolean {
    if (this.#last.get(key, now)) return false;
    this.#last.set(key, true, now);
    return true;
  }
}

/** The alert's who and where, from the event that completes it. */
export function about(e: StoredEvent): Pick<Alert, 'principal' | 'session' | 'chain' | 'target'> {
  return {
    principal: e.principal ?? '(unknown)',
    ...(e.session !== undefined ? { session: e.session } : {}),
    ...(e.chain !== undefined ? { chain: [...e.chain] } : {}),
    ...(e.target !== undefined ? { target: e.target } : {}),
  };
}

/** The grant a decision names, when it names one. */
export function grantOf(e: StoredEvent): { grant: string } | Record<string, never> {
  const g = e.decision?.grant;
  return typeof g === 'string' ? { grant: g } : {};
}

/** An action event's protocol block (`action.<protocol>`, as its module rendered it). */
export interface ActionBlock {
  verb: string;
  target: string;
  protocol: string;
  module: ProtocolModule | undefined;
  block: Record<string, unknown>;
}

export function actionBlock(e: StoredEvent): ActionBlock | undefined {
  const a = e.action;
  if (!a) return undefined;
  for (const [key, value] of Object.entries(a)) {
    if (key === 'verb' || key === 'target' || value === null || typeof value !== 'object') continue;
    return { verb: String(a.verb), target: String(a.target ?? e.target ?? ''), protocol: key, module: protocols.get(key), block: value as Record<string, unknown> };
  }
  return undefined;
}

/** Settings every kind has (config/alerts.ts). */
export interface KindSettings {
  enabled: boolean;
  quiet_seconds: number;
}

/** A session as the events told it: opened (who, for whom, where), not yet closed. */
export interface LiveSession {
  id: string;
  principal: string;
  chain: readonly string[];
  target?: string;
  openedSeq: number;
  /** When the session was last refreshed in memory (clock ms). */
  seenAt: number;
}

/** How long a session nobody hears of is remembered (longer than any session may last: sessions.max_duration_seconds). */
const SESSION_MEMORY_MS = 24 * 3600_000;

/** The sessions open now, from session.opened / session.closed / session.killed; bounded like every map here. */
export class LiveSessions {
  readonly #open = new ExpiringMap<string, LiveSession>(SESSION_MEMORY_MS);

  /** Follow one event; returns the session it concerns, if that session is live. */
  observe(e: StoredEvent, now: number): LiveSession | undefined {
    if (e.session === undefined) return undefined;
    if (e.event === 'session.opened' && e.principal !== undefined) {
      const s: LiveSession = { id: e.session, principal: e.principal, chain: e.chain ?? [e.principal], ...(e.target !== undefined ? { target: e.target } : {}), openedSeq: e.seq, seenAt: now };
      this.#open.set(e.session, s, now);
      return s;
    }
    if (e.event === 'session.closed' || e.event === 'session.killed') {
      this.#open.delete(e.session);
      return undefined;
    }
    const s = this.#open.get(e.session, now);
    // Still in use: remembered from now on (refreshed hourly, not at every event).
    if (s && now - s.seenAt >= 3600_000) this.#open.set(e.session, Object.assign(s, { seenAt: now }), now);
    return s;
  }

  /** The live session with this id, if any (without following an event). */
  get(id: string, now: number): LiveSession | undefined {
    return this.#open.get(id, now);
  }

  ofPrincipal(principal: string, now: number): LiveSession[] {
    return this.#open.values(now).filter((s) => s.principal === principal);
  }
}
