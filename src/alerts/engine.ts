// The engine that runs the detectors in the daemon: it follows the journal's committed events
// (Journal.onCommitted), feeds each to every enabled detector in order, and journals each alert as
// `alert.<kind>` with the seqs of the events that triggered it; then it tells `onAlert` (where
// containment acts). Alert events themselves are not fed back (no loops). It never holds the journal
// up: detectors are synchronous and bounded, and alerts are appended like any other record.
import type { Logger } from 'pino';
import type { Clock } from '../common/clock.ts';
import type { AlertsConfig } from '../config/alerts.ts';
import type { Core } from '../core/core.ts';
import type { EventName } from '../journal/codes.ts';
import type { StoredEvent } from '../journal/event.ts';
import type { Journal } from '../journal/types.ts';
import { DETECTORS } from './detectors/index.ts';
import { ALERT_KINDS, type Alert, type AlertEnvironment, type AlertKind, type Detector, type DetectorContext } from './types.ts';

/** The journal event of each kind (codes in journal/codes.ts). */
export const ALERT_EVENTS: { readonly [K in AlertKind]: EventName } = {
  new_target: 'alert.new_target',
  privilege_expansion: 'alert.privilege_expansion',
  out_of_window: 'alert.out_of_window',
  unexpected_delegation: 'alert.unexpected_delegation',
  probing: 'alert.probing',
  cross_zone: 'alert.cross_zone',
  programming: 'alert.programming',
  unusual_write: 'alert.unusual_write',
};

export interface AlertEngineOptions {
  /** The journal to follow and to write alerts to; readEvents and size, when present, give history to learn from at start. */
  journal: Pick<Journal, 'append' | 'onCommitted'> & { readEvents?(fromSeq: number, limit: number): { seq: number; bytes: string }[]; size?(): number };
  clock: Clock;
  /** The `alerts:` section now (a reload may change it: detectors whose settings changed start afresh). */
  settings: () => AlertsConfig;
  env?: AlertEnvironment;
  log?: Logger;
  /** Told of each alert once it is journaled, with its seq (containment plugs in here). Must not throw. */
  onAlert?: (alert: Alert, seq: number) => void;
}

export class AlertEngine {
  readonly #opts: AlertEngineOptions;
  #detectors = new Map<AlertKind, { detector: Detector; settings: string }>();
  #settings: AlertsConfig | undefined;
  #unsubscribe: (() => void) | undefined;
  readonly #pending = new Set<Promise<unknown>>();

  constructor(opts: AlertEngineOptions) {
    this.#opts = opts;
  }

  /** Build the detectors, let them learn from recent history, then follow the journal. */
  start(): void {
    this.#refresh();
    this.#learnHistory();
    this.#unsubscribe = this.#opts.journal.onCommitted((events) => this.#onCommitted(events));
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  /** Resolves once every alert raised so far is journaled and told (what tests and shutdown await). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Run every enabled detector on one event (exposed for tests that feed events by hand). */
  observe(event: StoredEvent, ctx: DetectorContext = this.#context()): Alert[] {
    if (event.event.startsWith('alert.')) return [];
    const alerts: Alert[] = [];
    for (const [kind, { detector }] of this.#detectors) {
      try {
        alerts.push(...detector.observe(event, ctx));
      } catch (err) {
        this.#opts.log?.error({ err, kind, seq: event.seq }, 'an alert detector failed on an event');
      }
    }
    return alerts;
  }

  #context(): DetectorContext {
    return { now: this.#opts.clock.now(), ...(this.#opts.env ? { env: this.#opts.env } : {}) };
  }

  #onCommitted(events: readonly StoredEvent[]): void {
    this.#refresh();
    const ctx = this.#context();
    for (const event of events) for (const alert of this.observe(event, ctx)) this.#raise(alert);
  }

  /** (Re)build the detectors whose settings changed; `action` is containment's and changes no detector. */
  #refresh(): void {
    const all = this.#opts.settings();
    if (all === this.#settings) return;
    this.#settings = all;
    for (const kind of ALERT_KINDS) {
      const { action: _action, ...own } = all[kind];
      const key = JSON.stringify(own);
      if (!own.enabled) this.#detectors.delete(kind);
      else if (this.#detectors.get(kind)?.settings !== key) this.#detectors.set(kind, { detector: (DETECTORS[kind] as (s: unknown) => Detector)(all[kind]), settings: key });
    }
  }

  /** Detectors that learn a baseline read the most recent history once, without alerting. */
  #learnHistory(): void {
    const { journal } = this.#opts;
    const learners = [...this.#detectors.values()].map((d) => d.detector).filter((d) => d.learn);
    const depth = this.#settings?.unusual_write.history_events ?? 0;
    if (learners.length === 0 || depth === 0 || !journal.readEvents || !journal.size) return;
    const end = journal.size();
    for (let from = Math.max(0, end - depth); from < end;) {
      const page = journal.readEvents(from, Math.min(1000, end - from));
      if (page.length === 0) break;
      for (const { bytes } of page) {
        const event = JSON.parse(bytes) as StoredEvent;
        for (const d of learners) d.learn!(event);
      }
      from = page.at(-1)!.seq + 1;
    }
  }

  #raise(alert: Alert): void {
    const { log, onAlert } = this.#opts;
    log?.warn({ alert: alert.kind, severity: alert.severity, principal: alert.principal, session: alert.session, triggers: alert.triggers }, `ALERT ${alert.summary}`);
    const work = this.#opts.journal.append({
      event: ALERT_EVENTS[alert.kind],
      principal: alert.principal,
      ...(alert.session !== undefined ? { session: alert.session } : {}),
      ...(alert.chain !== undefined ? { chain: alert.chain } : {}),
      ...(alert.target !== undefined ? { target: alert.target } : {}),
      detail: { ...alert.detail, severity: alert.severity, summary: alert.summary, triggers: alert.triggers, ...(alert.grant !== undefined ? { grant: alert.grant } : {}) },
    }, { lazy: true }).then(
      ({ seq }) => {
        try {
          onAlert?.(alert, seq);
        } catch (err) {
          log?.error({ err, alert: alert.kind }, 'the alert hook failed');
        }
      },
      (err: unknown) => log?.error({ err, alert: alert.kind }, 'an alert could not be journaled'),
    );
    this.#pending.add(work);
    void work.finally(() => this.#pending.delete(work));
  }
}

/** What the detectors may know, read live from the core: its grants and its current config. */
export function coreEnvironment(core: Pick<Core, 'grants' | 'config'>): AlertEnvironment {
  return {
    grantsOf: (principal) => core.grants.forPrincipal(principal).filter((g) => !g.revoked),
    zoneOf: (target) => core.config().targets.get(target)?.zone,
    chainOf: (principal) => {
      const p = core.config().principals.get(principal);
      return p ? [p.id, ...(p.acting_for !== undefined ? [p.acting_for] : [])] : undefined;
    },
  };
}
