// The registry of journal event types. Codes are stable: never renumber or reuse one; add new ones at
// the end of their block. Suffix I = info, W = warning, E = error. test/journal/codes.test.ts checks
// uniqueness and form. Events only one protocol emits are its module's (`events`), merged in below.
import { protocols } from '../adapters/registry.ts';

const SHARED_EVENT_CODES = {
  // daemon life 1xxx
  'daemon.started': 'PS1001I',
  'daemon.stopping': 'PS1002I',
  'config.loaded': 'PS1003I',
  'config.reloaded': 'PS1004I',
  'config.reload_refused': 'PS1005W',
  'checkpoint.signed': 'PS1006I',
  // sessions 2xxx
  'session.opened': 'PS2001I',
  'session.closed': 'PS2002I',
  'session.killed': 'PS2003W',
  'auth.failed': 'PS2004W',
  'auth.rate_limited': 'PS2005W',
  // actions 3xxx
  'action.allowed': 'PS3001I',
  'action.denied': 'PS3002W',
  'action.outcome': 'PS3003I',
  'reads.aggregate': 'PS3004I',
  'action.malformed': 'PS3005W',
  // grants and approvals 4xxx
  'grant.issued': 'PS4001I',
  'grant.revoked': 'PS4002W',
  'grant.expired': 'PS4003I',
  'approval.requested': 'PS4004I',
  'approval.granted': 'PS4005I',
  'approval.refused': 'PS4006W',
  'approval.timed_out': 'PS4007W',
  // alerts 5xxx
  'alert.journal_unavailable': 'PS5001E',
  'alert.journal_recovered': 'PS5002I',
  'alert.denial_burst': 'PS5003W',
  'alert.out_of_window': 'PS5004W',
  /** A credential's delegation chain disagrees with what the principal is configured to act for. */
  'alert.delegation_mismatch': 'PS5005W',
  // Raised by the detectors (src/alerts/detectors; docs/alerts.md).
  'alert.new_target': 'PS5006W',
  'alert.privilege_expansion': 'PS5007W',
  'alert.unexpected_delegation': 'PS5008W',
  'alert.probing': 'PS5009W',
  'alert.cross_zone': 'PS5010W',
  'alert.programming': 'PS5011W',
  'alert.unusual_write': 'PS5012W',
  /** Containment acted on an alert (or could not, and says why): alerts/containment.ts. */
  'containment.applied': 'PS5013I',
  /** Staff lifted a suspension or a grant's approval requirement (penstockctl sessions resume, grants release). */
  'containment.lifted': 'PS5014I',
  // admin and sync 6xxx
  'admin.request': 'PS6001I',
  'admin.refused': 'PS6002W',
  'sync.acknowledged': 'PS6003I',
  'sync.cosigned': 'PS6004I',
} as const;

/** A protocol's own event: `<protocol>.<what>`, registered by its module. */
export type ProtocolEventName = `${string}.${string}`;
export type EventName = keyof typeof SHARED_EVENT_CODES | ProtocolEventName;

/** Every event name with its code: the shared ones and each protocol module's. */
export const EVENT_CODES: Readonly<Record<string, string>> = Object.freeze({
  ...SHARED_EVENT_CODES,
  ...Object.assign({}, ...[...protocols.values()].map((m) => m.events ?? {})),
});

/**
 * Registered names no part emits yet. They stay (a code is never removed or reused: the snapshot in
 * test/journal/codes.test.ts), but are named here so that readers and SIEM authors know not to wait
 * for them; test/journal/codes-emitted.test.ts fails when another name goes unemitted, or when one of
 * these starts being emitted (then take it off this list).
 */
export const NOT_EMITTED: readonly (keyof typeof SHARED_EVENT_CODES)[] = ['config.loaded', 'checkpoint.signed', 'alert.journal_unavailable'];
