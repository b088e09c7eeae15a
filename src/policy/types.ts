// What every front door turns a request into, and what policy answers. No wire format here:
// a Modbus object is (unit, table, address range), not an MBAP header.
import type { modbusTables, opcuaVerbs } from '../config/schema.ts';

export type ModbusTable = (typeof modbusTables)[number];
export type OpcuaVerb = (typeof opcuaVerbs)[number];

export interface ModbusObject {
  kind: 'modbus';
  unit: number;
  functionCode: number;
  /** Null for function codes that address no table (diagnostics, device identification, programming). */
  table: ModbusTable | null;
  address: number;
  quantity: number;
  /** Raw register (0..65535) or coil (0/1) values of a write, in address order. */
  values?: number[];
  /**
   * Run-time scale factors the gateway read from the device for this write (profile point name →
   * exponent), so bounds on points with a `scale_factor` compare engineering values.
   */
  scaleFactors?: Record<string, number>;
}

export interface OpcuaObject {
  kind: 'opcua';
  /** Gateway-side node id, e.g. `ns=1;s=boiler-1/Boiler/Drum/Level`. */
  nodeId: string;
  /** Browse path below the target folder, e.g. `Objects/Boiler/Drum/Level`, when known. */
  browsePath?: string;
  /** Attribute name for reads (Value, DisplayName, …). */
  attribute?: string;
  /**
   * Numeric value of a write, for bounds checks: a number, or the exact decimal text of a 64-bit
   * integer a double cannot hold (beyond ±2^53), compared exactly.
   */
  value?: number | string;
  /** For calls: the object the method is called on. */
  objectId?: string;
}

// Moved to the SSH folder (derived from its object schema); this re-export goes when ActionObject becomes generic.
import type { SshObject } from '../adapters/ssh/rules.ts';
export type { SshObject };

export type ActionObject = ModbusObject | OpcuaObject | SshObject;

export type Verb = 'read' | 'write' | 'call' | 'browse' | 'subscribe' | 'history' | 'exec' | 'shell' | 'tunnel' | 'upload' | 'download' | 'diagnostic' | 'program' | 'other';

export interface Action {
  target: string;
  verb: Verb;
  object: ActionObject;
}

export type Effect = 'allow' | 'deny' | 'approve';

/**
 * Why a decision came out as it did: a stable registry, so adapters map a reason to their own
 * protocol's refusal (Modbus: function_not_granted → exception 1, object_not_granted → 2,
 * value_out_of_bounds → 3) and tests match on it, never on the text.
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
