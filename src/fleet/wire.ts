// The evidence bus between the gateways (src/push) and the verifying collectors (src/collector): which
// NATS JetStream subject an appliance's evidence goes to, and what its messages carry. Both sides import
// this file and nothing else of each other.
//
// One subject per appliance, `<prefix>.<appliance token>`, carries two kinds of message, in this order:
//   - every journal event, payload its canonical JSON exactly as hashed into the Merkle tree (the leaf
//     data), `Nats-Msg-Id: <appliance>:e:<seq>`;
//   - every signed checkpoint, payload the C2SP signed note verbatim, `Nats-Msg-Id: <appliance>:c:<size>`,
//     published only once JetStream acknowledged every event below its size.
// The message ids make a resend after a cut a duplicate JetStream drops (within the stream's duplicate
// window; past it the collector drops an identical resend by seq). Order within a checkpoint's events is
// not guaranteed by the transport after a retry: the collector places events by seq, and the signed tree
// says what the order is.

export const DEFAULT_SUBJECT_PREFIX = 'penstock.evidence';
export const DEFAULT_STREAM = 'PENSTOCK_EVIDENCE';

/** Headers on every message (besides Nats-Msg-Id). */
export const HEADER_KIND = 'Penstock-Kind';
/** The event's seq, or the checkpoint's size. */
export const HEADER_SEQ = 'Penstock-Seq';
export const HEADER_APPLIANCE = 'Penstock-Appliance';

export type EvidenceKind = 'event' | 'checkpoint';

/**
 * An appliance id as one subject token: letters, digits, `_` and `-` as they are; anything else (the id
 * also allows `.` and `:`) as `~` and two hex digits. `~` is not in the id alphabet, so it reverses.
 */
export function subjectToken(appliance: string): string {
  return appliance.replace(/[^A-Za-z0-9_-]/g, (c) => `~${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function applianceFromToken(token: string): string {
  return token.replace(/~([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

/** The subject an appliance publishes its evidence to. */
export function applianceSubject(appliance: string, prefix = DEFAULT_SUBJECT_PREFIX): string {
  return `${prefix}.${subjectToken(appliance)}`;
}

export function eventMsgId(appliance: string, seq: number): string {
  return `${appliance}:e:${seq}`;
}

export function checkpointMsgId(appliance: string, size: number): string {
  return `${appliance}:c:${size}`;
}
