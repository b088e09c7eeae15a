// The status code each refused item is answered with (OPC UA Part 4, 7.34). One table: the front door
// answers from it (accessor.ts, monitored.ts) and the module descriptor publishes it. And the codes of
// the refusals the front door journals itself (logins, certificates, frames), through the core's one
// refusal path (RateLimitedRefusals → core.recordRefusal).
import type { RateLimitedRefusals } from '../../core/refusals.ts';
import type { DecisionReason } from '../../policy/types.ts';

export type OpcuaRefusalStatus = 'BadOutOfRange' | 'BadUserAccessDenied';

/**
 * A value outside a rule's or a point's bounds is `BadOutOfRange` (the client may try another value);
 * every other refusal is `BadUserAccessDenied`, which says nothing of what the grants hold.
 */
export const OPCUA_REFUSALS: Readonly<Record<DecisionReason, OpcuaRefusalStatus>> = {
  rule_allows: 'BadUserAccessDenied',
  rule_requires_approval: 'BadUserAccessDenied',
  rule_denies: 'BadUserAccessDenied',
  no_grant: 'BadUserAccessDenied',
  grant_not_active: 'BadUserAccessDenied',
  principal_expired: 'BadUserAccessDenied',
  function_not_granted: 'BadUserAccessDenied',
  object_not_granted: 'BadUserAccessDenied',
  value_out_of_bounds: 'BadOutOfRange',
  metacharacters: 'BadUserAccessDenied',
  malformed: 'BadUserAccessDenied',
  journal_unavailable: 'BadUserAccessDenied',
  session_limit: 'BadUserAccessDenied',
  approval_refused: 'BadUserAccessDenied',
};

/** The status name a refusal for `reason` is answered with. */
export function refusalStatusName(reason: DecisionReason): OpcuaRefusalStatus {
  return OPCUA_REFUSALS[reason];
}

/**
 * Stable `reason` codes of what the front door refuses before policy sees a request, as journaled
 * (auth.failed, auth.rate_limited, action.malformed, with `detail.protocol: opcua`). Tests and SIEM rules
 * match on these; the detail beside them says more (status, thumbprints, sizes).
 */
export const OPCUA_REFUSAL_REASONS = {
  client_certificate_refused: 'a client application certificate is not trusted (`status` says why)',
  user_certificate_refused: 'an X.509 user certificate is not trusted (`status` says why)',
  user_certificate_unknown: 'a trusted user certificate names no principal',
  unknown_user: 'no principal has this OPC UA user name',
  wrong_password: 'the password does not match the hash in the vault',
  vault_entry_missing: "the principal's password hash is not in the vault",
  vault_entry_not_a_hash: "the principal's vault entry is not a password hash (a clear-text entry is refused)",
  anonymous_refused: 'an anonymous identity token (never offered)',
  secure_channel_refused: 'a secure channel could not be opened (`message` is the stack\'s reason)',
  connection_refused: 'the stack refused the connection (`message` is its reason)',
  handshake_timeout: 'no session was activated within handshake_seconds of connecting: the connection is closed',
  transport_limit: 'a HEL asked for message buffers the unauthenticated connections may no longer have',
  malformed_frame: 'a frame the stack refused with an ERR message (`status`)',
  request_too_large: "an item's values would not fit the heap next to the rest of its request",
} as const;
export type OpcuaRefusalReason = keyof typeof OPCUA_REFUSAL_REASONS;

/** The listener's rate-limited refusal journal, taking only the codes above as reasons. */
export class OpcuaRefusals {
  readonly #journal: RateLimitedRefusals;

  constructor(journal: RateLimitedRefusals) {
    this.#journal = journal;
  }

  authFailed(remote: string, reason: OpcuaRefusalReason, detail: Record<string, unknown> = {}): void {
    this.#journal.authFailed(remote, reason, detail);
  }

  rateLimited(remote: string, reason: OpcuaRefusalReason, detail: Record<string, unknown> = {}): void {
    this.#journal.record('auth.rate_limited', remote, undefined, { reason, ...detail });
  }

  malformed(remote: string, principal: string | undefined, reason: OpcuaRefusalReason, detail: Record<string, unknown> = {}): void {
    this.#journal.record('action.malformed', remote, principal, { reason, ...detail });
  }
}
