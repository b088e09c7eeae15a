// What every front door turns a request into, and what policy answers. No wire format and no protocol
// here: each protocol's module (src/adapters/<name>/module.ts) defines its own action object, as a
// schema, and its matcher; policy looks the matcher up by the object's `kind`.

/**
 * A protocol's action object: `kind` is the protocol's name; the other fields are the protocol's own
 * (its module's objectSchema). Policy reads only `kind`.
 */
export type ActionObject = { kind: string; [field: string]: unknown };

export type Verb = 'read' | 'write' | 'call' | 'browse' | 'subscribe' | 'history' | 'exec' | 'shell' | 'tunnel' | 'upload' | 'download' | 'diagnostic' | 'program' | 'other';

export interface Action<O extends ActionObject = ActionObject> {
  target: string;
  verb: Verb;
  object: O;
}

export type Effect = 'allow' | 'deny' | 'approve';

/**
 * Why a decision came out as it did: a stable registry, so each front door maps a reason to its own
 * protocol's refusal (its module's `refusals`: an exception code, a status code, a message) and tests
 * match on it, never on the text.
 */
export const DECISION_REASONS = {
  rule_allows: 'an allow rule of an active grant matches',
  rule_requires_approval: 'a rule of an active grant matches but requires a person to approve',
  rule_denies: 'an explicit deny rule matches',
  no_grant: 'the principal holds no grant for this target',
  grant_not_active: 'the principal has grants for this target, but none is active now (outside window, expired or revoked)',
  principal_expired: 'the principal itself has expired',
  function_not_granted: 'no rule grants this operation (function, verb or channel kind)',
  object_not_granted: 'the operation is granted, but not on this object (address, node, command or path)',
  value_out_of_bounds: 'the object is granted, but the value written is outside the rule\'s bounds',
  metacharacters: 'the command line holds shell metacharacters and no rule names that exact line',
  malformed: 'the request could not be decoded',
  journal_unavailable: 'the journal cannot be written, so privileged actions are refused (fail closed)',
  session_limit: 'the session has reached its rate limit or maximum duration, or was ended',
  approval_refused: 'a person refused the request, or nobody answered before the time-out',
} as const;
export type DecisionReason = keyof typeof DECISION_REASONS;

export interface Decision {
  effect: Effect;
  reason: DecisionReason;
  /** The grant and rule that made the decision (absent for default deny). Rule ids are `GRANT#INDEX`. */
  grant?: string;
  rule?: string;
  /** A sentence a person can read, naming what matched or what was missing. */
  explanation: string;
}
