// The live registry of sessions: who is connected through which front door, to what, since when,
// with which counters. A front door opens a session once the principal is authenticated and gives
// the registry a way to end it (`kill`): the registry never touches a socket itself.
import { randomBytes } from 'node:crypto';
import type { Clock } from '../common/clock.ts';
import { PenstockError } from '../common/errors.ts';
import type { PrincipalConfig } from '../config/schema.ts';
import type { Operator } from '../grants/types.ts';
import type { ContainmentHold } from '../alerts/types.ts';
import type { SessionCounters, SessionInit, SessionView } from './types.ts';

export type { SessionInit, SessionView } from './types.ts';

export type SessionEndReason = 'closed' | 'killed' | 'grant_revoked' | 'grant_expired' | 'max_duration' | 'shutdown' | 'idle';

export interface SessionEnd {
  reason: SessionEndReason;
  detail?: string;
  by?: Operator;
}

export class Session {
  readonly id: string;
  readonly principal: PrincipalConfig;
  readonly chain: string[];
  readonly listener: string;
  readonly protocol: string;
  readonly remote: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly startedMs: number;
  readonly counters: SessionCounters = { allowed: 0, denied: 0, bytesIn: 0, bytesOut: 0 };
  /** Grants that allowed something in this session; revoking one ends the session. */
  readonly grantsUsed = new Set<string>();
  target: string | undefined;
  lastActivityMs: number;
  /** Id of the approval this session waits for, if any (idle time-out does not apply meanwhile). */
  pendingApproval: string | undefined;
  ended: SessionEnd | undefined;
  /**
   * Set by containment (`suspend`): every further action of the session waits for a person, as an
   * approve rule does, until staff lift it (penstockctl sessions resume).
   */
  suspended?: ContainmentHold;
  /** Token bucket for the per-session action rate limit. */
  tokens: number;
  tokensAtMs: number;

  readonly #registry: SessionRegistry;
  readonly #kill: (end: SessionEnd) => void;

  constructor(registry: SessionRegistry, id: string, init: SessionInit, nowMs: number, kill: (end: SessionEnd) => void) {
    this.#registry = registry;
    this.#kill = kill;
    this.id = id;
    this.principal = init.principal;
    this.chain = init.chain;
    this.target = init.target;
    this.listener = init.listener;
    this.protocol = init.protocol;
    this.remote = init.remote;
    this.attributes = { ...init.attributes };
    this.startedMs = nowMs;
    this.lastActivityMs = nowMs;
    this.tokens = Number.POSITIVE_INFINITY;
    this.tokensAtMs = nowMs;
  }

  get active(): boolean {
    return this.ended === undefined;
  }

  /** The front door calls this when the peer went away on its own. */
  close(): void {
    this.#registry.end(this, { reason: 'closed' });
  }

  /** Ends the session through its front door (which tells the peer in its own protocol). */
  terminate(end: SessionEnd): void {
    if (this.ended) return;
    this.#registry.end(this, end);
    this.#kill(end);
  }

  view(): SessionView {
    return {
      id: this.id,
      principal: this.principal.id,
      kind: this.principal.kind,
      chain: [...this.chain],
      ...(this.target !== undefined ? { target: this.target } : {}),
      listener: this.listener,
      protocol: this.protocol,
      remote: this.remote,
      started: new Date(this.startedMs).toISOString(),
      grants: [...this.grantsUsed],
      attributes: { ...this.attributes },
      counters: { ...this.counters },
      ...(this.suspended ? { suspended: { alert: { ...this.suspended.alert }, since: new Date(this.suspended.since).toISOString() } } : {}),
    };
  }
}

export interface SessionRegistryOptions {
  clock: Clock;
  /** Told of every opened and ended session (the core journals them). */
  onOpen?: (s: Session) => void;
  onEnd?: (s: Session, end: SessionEnd) => void;
}

export class SessionRegistry {
  readonly #sessions = new Map<string, Session>();
  readonly #opts: SessionRegistryOptions;

  constructor(opts: SessionRegistryOptions) {
    this.#opts = opts;
  }

  open(init: SessionInit, kill: (end: SessionEnd) => void): Session {
    const id = `s-${randomBytes(6).toString('hex')}`;
    const session = new Session(this, id, init, this.#opts.clock.now(), kill);
    this.#sessions.set(id, session);
    this.#opts.onOpen?.(session);
    return session;
  }

  get(id: string): Session | undefined {
    return this.#sessions.get(id);
  }

  list(): Session[] {
    return [...this.#sessions.values()];
  }

  /** Kill a session from the admin socket. */
  kill(id: string, end: SessionEnd): SessionView {
    const session = this.#sessions.get(id);
    if (!session) throw new PenstockError('PS_SESSION_UNKNOWN', `no session ${id}`);
    session.terminate(end);
    return session.view();
  }

  /** End every session that used, or depends on, a grant that no longer holds. */
  endSessionsUsingGrant(grantId: string, end: SessionEnd): Session[] {
    const ended: Session[] = [];
    for (const s of this.#sessions.values()) {
      if (s.grantsUsed.has(grantId)) {
        s.terminate(end);
        ended.push(s);
      }
    }
    return ended;
  }

  /** Called by Session; removes it and tells the listener once. */
  end(session: Session, end: SessionEnd): void {
    if (session.ended) return;
    session.ended = end;
    this.#sessions.delete(session.id);
    this.#opts.onEnd?.(session, end);
  }
}
