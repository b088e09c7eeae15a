// The grants in force: those from the config file and those issued over the admin socket, with
// their revocations. Config grants are replaced whole on reload; runtime grants and every
// revocation survive it (a revoked config grant stays revoked, even if the file still lists it —
// reissue it under a new id). Held grants are frozen: nobody outside changes them in place.
//
// Time: grants expire on their own. ManualClock has no timers, so the store does not keep one:
// the daemon calls tick() at nextTick() (and tests after moving the clock), and tick() emits
// 'expired' for every grant that was active at the previous check and is not any more — the end of
// its window, or the close of one of its maintenance windows.
import { z } from 'zod';
import type { Clock } from '../common/clock.ts';
import { PenstockError, isPenstockError } from '../common/errors.ts';
import type { GrantConfig } from '../config/schema.ts';
import type { GrantChange, HeldGrant, Operator } from './types.ts';
import { isGrantActive, nextChange } from './window.ts';

export interface Revocation {
  by: Operator;
  at: string;
  reason: string;
}

export interface GrantStoreOptions {
  clock: Clock;
  /** Validates a grant against the current config (references) and returns it, or throws PenstockError('PS_GRANT_INVALID'). */
  validateGrant: (g: unknown) => GrantConfig;
  /** Where a listener's exception goes; by default it is rethrown after every listener has run. */
  onListenerError?: (err: unknown, change: GrantChange) => void;
}

/** What a reload changed, so the daemon can re-check sessions that depend on changed or removed grants. */
export interface ConfigGrantsDiff {
  added: string[];
  removed: string[];
  changed: string[];
}

/** What toJSON() writes and fromJSON() reads: runtime grants and all revocations. */
export interface GrantStoreState {
  version: 1;
  runtime: HeldGrant[];
  revocations: ({ id: string } & Revocation)[];
}

const operatorSchema = z.strictObject({ uid: z.number().int().min(0), user: z.string().optional(), verified: z.boolean() });
const revocationSchema = z.strictObject({ by: operatorSchema, at: z.string().min(1), reason: z.string().min(1) });
const stateSchema = z.strictObject({
  version: z.literal(1),
  runtime: z.array(z.looseObject({ id: z.string(), source: z.literal('runtime'), issued: z.strictObject({ by: operatorSchema, at: z.string().min(1) }) })),
  revocations: z.array(revocationSchema.extend({ id: z.string().min(1) })),
});

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** The grant's own fields, without what the store adds. */
function configPart(g: HeldGrant | GrantConfig): GrantConfig {
  const { source: _s, issued: _i, revoked: _r, ...rest } = g as HeldGrant;
  return rest;
}

export class GrantStore {
  readonly #clock: Clock;
  readonly #validate: (g: unknown) => GrantConfig;
  readonly #onListenerError: GrantStoreOptions['onListenerError'];
  /** Config grants as the file gives them, in file order. */
  #config = new Map<string, GrantConfig>();
  /** Runtime grants as issued (without revocation), in issue order. */
  #runtime = new Map<string, HeldGrant>();
  /** Revocations by grant id, for config and runtime grants alike; they outlive reloads. */
  #revocations = new Map<string, Revocation>();
  /** The held view, rebuilt on every change. */
  #held = new Map<string, HeldGrant>();
  /** Whether each grant was active at the last check, to notice it stop. */
  #wasActive = new Map<string, boolean>();
  readonly #listeners = new Set<(c: GrantChange) => void>();

  constructor(options: GrantStoreOptions) {
    this.#clock = options.clock;
    this.#validate = options.validateGrant;
    this.#onListenerError = options.onListenerError;
  }

  /** Swap in the config file's grants (at start and on reload). Refused whole, changing nothing, on a clash. */
  replaceConfigGrants(grants: readonly GrantConfig[]): ConfigGrantsDiff {
    const next = new Map<string, GrantConfig>();
    for (const g of grants) {
      if (next.has(g.id)) throw new PenstockError('PS_GRANT_INVALID', `grant id ${g.id} appears twice in the config`, { id: g.id });
      if (this.#runtime.has(g.id)) throw new PenstockError('PS_GRANT_INVALID', `config grant ${g.id} has the id of a grant issued at run time`, { id: g.id });
      next.set(g.id, deepFreeze(structuredClone(configPart(g))));
    }
    const diff: ConfigGrantsDiff = { added: [], removed: [], changed: [] };
    for (const [id, g] of next) {
      const old = this.#config.get(id);
      if (!old) diff.added.push(id);
      else if (JSON.stringify(old) !== JSON.stringify(g)) diff.changed.push(id);
    }
    for (const id of this.#config.keys()) if (!next.has(id)) diff.removed.push(id);
    this.#config = next;
    this.#rebuild();
    return diff;
  }

  /** Issue a grant at run time. The grant is validated against the current config first. */
  issue(grant: unknown, by: Operator): HeldGrant {
    let g: GrantConfig;
    try {
      g = this.#validate(grant);
    } catch (err) {
      if (isPenstockError(err)) throw err;
      throw new PenstockError('PS_GRANT_INVALID', `grant is invalid: ${err instanceof Error ? err.message : String(err)}`, undefined, { cause: err });
    }
    const now = this.#clock.now();
    if (this.#held.has(g.id) || this.#revocations.has(g.id)) {
      throw new PenstockError('PS_GRANT_INVALID', `a grant with id ${g.id} already exists or existed; choose a new id`, { id: g.id });
    }
    if (g.window && Date.parse(g.window.to) <= now) {
      throw new PenstockError('PS_GRANT_INVALID', `grant ${g.id} would be issued already expired (window ended ${g.window.to})`, { id: g.id });
    }
    const held: HeldGrant = deepFreeze({ ...structuredClone(configPart(g)), source: 'runtime', issued: { by: { ...by }, at: new Date(now).toISOString() } });
    this.#runtime.set(g.id, held);
    this.#rebuild();
    const out = this.#held.get(g.id)!;
    this.#emit([{ kind: 'issued', grant: out }]);
    return out;
  }

  revoke(id: string, by: Operator, reason: string): HeldGrant {
    const held = this.#held.get(id);
    if (!held) throw new PenstockError('PS_GRANT_UNKNOWN', `no grant ${id}`, { id });
    if (held.revoked) throw new PenstockError('PS_GRANT_INVALID', `grant ${id} was already revoked by uid ${held.revoked.by.uid} at ${held.revoked.at}`, { id });
    if (typeof reason !== 'string' || reason.trim() === '') throw new PenstockError('PS_GRANT_INVALID', 'a revocation needs a reason', { id });
    this.#revocations.set(id, deepFreeze({ by: { ...by }, at: new Date(this.#clock.now()).toISOString(), reason }));
    this.#rebuild();
    const out = this.#held.get(id)!;
    this.#emit([{ kind: 'revoked', grant: out }]);
    return out;
  }

  /** Every grant held: config grants in file order, then runtime grants in issue order, revoked ones included. */
  list(): HeldGrant[] {
    return [...this.#held.values()];
  }

  get(id: string): HeldGrant | undefined {
    return this.#held.get(id);
  }

  /** The grants naming this principal, active or not (what decide() takes). */
  forPrincipal(principalId: string): HeldGrant[] {
    return this.list().filter((g) => g.principal === principalId);
  }

  isActive(grant: HeldGrant, nowMs: number = this.#clock.now()): boolean {
    return isGrantActive(grant, nowMs);
  }

  /** Subscribe to issued / revoked / expired; returns the unsubscribe function. */
  onChange(listener: (c: GrantChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Notice grants that stopped being active since the last check, and emit 'expired' for each. */
  tick(nowMs: number = this.#clock.now()): GrantChange[] {
    const changes: GrantChange[] = [];
    for (const g of this.#held.values()) {
      if (g.revoked) continue;
      const active = isGrantActive(g, nowMs);
      if (this.#wasActive.get(g.id) && !active) changes.push({ kind: 'expired', grant: g });
      this.#wasActive.set(g.id, active);
    }
    this.#emit(changes);
    return changes;
  }

  /** When tick() should run next: the earliest instant any grant's activity may change. */
  nextTick(nowMs: number = this.#clock.now()): number | undefined {
    let best: number | undefined;
    for (const g of this.#held.values()) {
      const t = nextChange(g, nowMs);
      if (t !== undefined && (best === undefined || t < best)) best = t;
    }
    return best;
  }

  toJSON(): GrantStoreState {
    return {
      version: 1,
      runtime: [...this.#runtime.values()].map((g) => structuredClone(g)),
      revocations: [...this.#revocations].map(([id, r]) => ({ id, ...structuredClone(r) })),
    };
  }

  /**
   * Restore runtime grants and revocations saved by toJSON() (at start, after the config grants).
   * A malformed state is refused whole and changes nothing; a runtime grant the current config no
   * longer supports (validateGrant refuses it, or a config grant took its id) is skipped and reported.
   */
  fromJSON(data: unknown): { restored: string[]; skipped: { id: string; message: string }[] } {
    const parsed = stateSchema.safeParse(data);
    if (!parsed.success) {
      throw new PenstockError('PS_GRANT_INVALID', `saved grant state is malformed: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    }
    const runtime = new Map<string, HeldGrant>();
    const skipped: { id: string; message: string }[] = [];
    for (const saved of parsed.data.runtime) {
      const { source: _s, issued, revoked: _r, ...rest } = saved as unknown as HeldGrant;
      try {
        if (this.#config.has(saved.id) || runtime.has(saved.id)) throw new Error('its id is taken');
        const g = this.#validate(rest);
        runtime.set(g.id, deepFreeze({ ...structuredClone(configPart(g)), source: 'runtime', issued: issued! }));
      } catch (err) {
        skipped.push({ id: saved.id, message: err instanceof Error ? err.message : String(err) });
      }
    }
    const revocations = new Map<string, Revocation>();
    for (const { id, ...r } of parsed.data.revocations) revocations.set(id, deepFreeze(r));
    this.#runtime = runtime;
    this.#revocations = revocations;
    this.#rebuild();
    return { restored: [...runtime.keys()], skipped };
  }

  #rebuild(): void {
    const held = new Map<string, HeldGrant>();
    const compose = (g: GrantConfig | HeldGrant, source: HeldGrant['source']): HeldGrant => {
      const base: HeldGrant = source === 'runtime' ? (g as HeldGrant) : { ...g, source };
      const rev = this.#revocations.get(g.id);
      return deepFreeze(rev ? { ...base, revoked: rev } : base);
    };
    for (const g of this.#config.values()) held.set(g.id, compose(g, 'config'));
    for (const g of this.#runtime.values()) held.set(g.id, compose(g, 'runtime'));
    this.#held = held;
    // New grants start from their current activity, so they do not 'expire' retroactively.
    const now = this.#clock.now();
    const was = new Map<string, boolean>();
    for (const g of held.values()) was.set(g.id, this.#wasActive.get(g.id) ?? isGrantActive(g, now));
    for (const g of held.values()) if (g.revoked) was.set(g.id, false);
    this.#wasActive = was;
  }

  #emit(changes: readonly GrantChange[]): void {
    const errors: unknown[] = [];
    for (const c of changes) {
      for (const l of [...this.#listeners]) {
        try {
          l(c);
        } catch (err) {
          if (this.#onListenerError) this.#onListenerError(err, c);
          else errors.push(err);
        }
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'grant change listeners failed');
  }
}
