// Alerts: what a detector concludes from the journal's event stream, and what containment acts on.
// Shared by the detectors (detectors/*.ts), the engine that runs them (engine.ts) and containment
// (containment.ts). No wire format, no protocol: detectors read journal events (StoredEvent).
import type { StoredEvent } from '../journal/event.ts';

export type AlertSeverity = 'info' | 'warning' | 'critical';

/** The kinds of alert, each journaled as `alert.<kind>` with its own stable code (journal/codes.ts). */
export const ALERT_KINDS = [
  'new_target',
  'privilege_expansion',
  'out_of_window',
  'unexpected_delegation',
  'probing',
  'cross_zone',
  'programming',
  'unusual_write',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

/** One incident (not one event): detectors de-duplicate, so an incident raises one alert. */
export interface Alert {
  kind: AlertKind;
  severity: AlertSeverity;
  /** A sentence for plant staff. */
  summary: string;
  principal: string;
  /** The session it concerns, when there is one (containment acts on it). */
  session?: string;
  /** The delegation chain of that session, the principal first. */
  chain?: string[];
  target?: string;
  /** The grant it concerns, when there is one (`revoke`, `require_approval`). */
  grant?: string;
  /** Sequence numbers of the journal events that triggered it. */
  triggers: number[];
  /** Detector-specific facts (thresholds crossed, zones, values), never secrets. */
  detail?: Record<string, unknown>;
}

/** What a detector may consult besides the event: the time now (injected), and the live config. */
export interface DetectorContext {
  /** Clock ms: detectors never read the wall clock themselves. */
  now: number;
  /** What config and grants say now (the engine provides it; a detector without it judges by events alone). */
  env?: AlertEnvironment;
}

/** A grant as detectors see it: who, where, since when (no rules: policy already judged those). */
export interface GrantView {
  id: string;
  targets: readonly string[];
}

/** The live config and grants, as detectors may read them (engine.ts builds it over the core). */
export interface AlertEnvironment {
  /** Every grant the principal holds (active or not, not revoked). */
  grantsOf(principal: string): readonly GrantView[];
  /** The zone config gives the target (`targets[].zone`). */
  zoneOf(target: string): string | undefined;
  /** The principal's configured delegation chain (itself, then `acting_for`); undefined for an unknown principal. */
  chainOf(principal: string): readonly string[] | undefined;
}

/** A pure detector: fed every committed event in order, it returns the alerts they complete. */
export interface Detector {
  readonly kind: AlertKind;
  observe(event: StoredEvent, ctx: DetectorContext): Alert[];
  /** Learn from history without alerting (a baseline read from the journal at start); optional. */
  learn?(event: StoredEvent): void;
}

/** What containment may do when an alert of a kind is raised (config `alerts.<kind>.action`). */
export const CONTAINMENT_ACTIONS = ['log', 'suspend', 'kill', 'revoke', 'require_approval'] as const;
export type ContainmentAction = (typeof CONTAINMENT_ACTIONS)[number];

/** How a containment step names the alert that caused it: its kind and the journal seq of its event. */
export interface AlertRef {
  kind: AlertKind;
  seq: number;
}

/** A containment step in force (a suspended session, a grant that requires approval): why and since when. */
export interface ContainmentHold {
  alert: AlertRef;
  /** Clock ms when it was applied. */
  since: number;
}
