// The status code each refused item is answered with (OPC UA Part 4, 7.34). One table: the front door
// answers from it (accessor.ts, monitored.ts) and the module descriptor publishes it.
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
