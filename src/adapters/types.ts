// What a protocol is to the rest of Penstock: one ProtocolModule, registered in adapters/registry.ts.
// Everything protocol-specific lives in the protocol's folder and reaches shared code through this
// interface: config schemas, the rule matcher, how its actions read in the journal and in penstockctl,
// how a refusal is said in its own protocol, its config warnings. Shared code (config, policy, journal,
// admin, cli, core) looks protocols up in the table and never names one.
//
// The descriptor is loaded eagerly (config validation, policy and the journal need it, and it is small);
// the front door itself (`load()`) only when a listener or a tunnel uses it, so a gateway that does not
// speak a protocol never loads its stack.
import type { Duplex } from 'node:stream';
import type { z } from 'zod';
import type { AuthorizeOptions, Core, Verdict } from '../core/core.ts';
import type { ConfigIssue, FirmwareProfile, ListenerConfig, TargetConfig } from '../config/types.ts';
import type { Path } from '../config/yaml-issues.ts';
import type { ProtocolMatcher } from '../policy/matcher.ts';
import type { Action, ActionObject, DecisionReason, Verb } from '../policy/types.ts';
import type { Session } from '../sessions/registry.ts';

export interface RunningListener {
  readonly id: string;
  /** The bound address (port 0 in config becomes the real port). */
  address(): { host: string; port: number };
  /** Stop accepting, end sessions cleanly (telling clients in their protocol), release upstreams. */
  close(): Promise<void>;
  /** What plant staff should see in `penstockctl status` beyond the address (e.g. upstream links). */
  status?(): Record<string, unknown>;
}

/** A running stream served in a protocol (see FrontDoor.serveStream). */
export interface ServedStream {
  /** Resolves, with why it ended (`peer_closed`, `idle`, …), when the stream has ended and its requests are answered. */
  readonly done: Promise<string>;
  close(): void;
}

/** The front door itself: loaded on first use. */
export interface FrontDoor {
  /** Bind and serve; resolves only once the listener is bound (readiness waits for every listener). */
  start(listener: ListenerConfig, core: Core): Promise<RunningListener>;
  /**
   * Serve this protocol on a stream another front door already authenticated and authorised (a tunnel
   * to a target of this protocol): every request on it is decided as usual, for `session`.
   */
  serveStream?(stream: Duplex, session: Session, core: Core, target: string): ServedStream;
  /**
   * Run one call of an agent tool this protocol offers (ProtocolModule.agentTools), with arguments the
   * agents' front door has already validated against the tool's input schema. Every action it takes on a target is
   * decided through `call.authorize` and forwarded only with the Authorization that carries; the first
   * verdict that is not an allow ends the call as `{ ok: false, refused }`.
   */
  callAgentTool?(name: string, args: Record<string, unknown>, call: AgentCall): Promise<AgentToolResult>;
}

/**
 * A tool an AI agent calls on the agents' front door that acts on targets of one protocol
 * (`<protocol>_read`). The protocol's module describes it; its front door runs it (FrontDoor.callAgentTool).
 * The agents' door knows no protocol: it lists, validates, journals and answers calls from these alone.
 */
export interface AgentToolSpec<R = unknown> {
  /** `<protocol>_<what>`: unique across the table. */
  readonly name: string;
  readonly title: string;
  /** For the agent's model: what the tool does, what it needs, what it returns. */
  readonly description: string;
  /**
   * The arguments, as a strict zod object. It has a `target` (the target's id); the agents' door narrows it
   * to the targets of this protocol the principal's grants name, converts the schema to JSON Schema for
   * tools/list and validates every call against it.
   */
  readonly input: z.ZodObject;
  /** The structured result, as a zod object (the tool's outputSchema). */
  readonly output?: z.ZodObject;
  /** It changes nothing on the target (a read-only hint to the agent). */
  readonly readOnly: boolean;
  /** Argument names whose values are secrets: never journaled (replaced by `[secret]`). */
  readonly secretArgs?: readonly string[];
  /**
   * Whether a rule body of this protocol (allow or approve; deny rules are never asked) could let this
   * tool do something: tools/list shows a tool while an active grant of the principal holds such a rule.
   */
  listedBy(rule: R): boolean;
}

/** What an agent tool call may use: the agents' door makes one per call. */
export interface AgentCall {
  readonly core: Core;
  /** The agent's session, as a core session (principal, chain, counters, limits). */
  readonly session: Session;
  /**
   * Decide one action of this call: core.authorize with the call's correlation id (every event of the
   * call carries it) and its approval binding (an approve rule answers at once with a pending approval
   * bound to the SHA-256 of the call's canonical arguments; the same call, once approved, runs once).
   */
  authorize(action: Action, opts?: Pick<AuthorizeOptions, 'evidence' | 'request'>): Promise<Verdict>;
  /** Journal what the target did after an allowed action (the side effect), with the call's correlation id. */
  outcome(action: Action, outcome: Record<string, unknown>): Promise<void>;
  /** Aborted when the session ends or the client cancels the call: stop waiting on the target. */
  readonly signal: AbortSignal;
}

/** How an agent tool call ended. */
export type AgentToolResult =
  /** Done: the structured result (matching the tool's output schema) and, optionally, a line of text for the model. */
  | { ok: true; result: Record<string, unknown>; text?: string }
  /** Policy said no, or a person must approve first: the verdict that ended the call. */
  | { ok: false; refused: Verdict }
  /**
   * Not a policy matter: arguments that name nothing (an unknown point, a target of another protocol),
   * or the target's own error (an exception code, a bad status; a command's exit status is a result, not an error).
   * `code` is stable and machine-readable (`unknown_point`, `device_exception`); message is for people.
   */
  | { ok: false; error: { code: string; message: string; detail?: Record<string, unknown> } };

/** How `penstockctl policy check PRINCIPAL TARGET <protocol> ARGS…` builds this protocol's action. */
export interface DryRunSyntax {
  /** Usage lines after `PRINCIPAL TARGET`, e.g. `<name> read|write OBJECT [--option V]`. */
  readonly usage: readonly string[];
  /** Command-line options this protocol reads (`--unit <u>`), with their help text (penstockctl puts the protocol's name before it). */
  readonly options: readonly { flags: string; description: string }[];
  /** Extra help text after the options. */
  readonly help?: string;
  /** The action a real request would build (without its target); throws DryRunUsageError on bad input. */
  parse(args: string[], options: Record<string, string | undefined>): { verb: Verb; object: ActionObject };
}

/** A command-line mistake in a dry run; penstockctl prints it with usage. */
export class DryRunUsageError extends Error {
  override readonly name = 'UsageError';
}

/** What config check says of one rule of this protocol: a warning (stable `W_…` code), or an error (`E_…`). */
export interface RuleWarning {
  /** Path below the rule body, e.g. `['exec']`. */
  path: Path;
  code: string;
  message: string;
  /** Default: a warning. An error is for what only the protocol can check (a name the table must know). */
  severity?: 'warning' | 'error';
}

/** What a rule check may consult beside the rule. */
export interface RuleCheckContext {
  /** The module table: a rule may name another protocol (a tunnel carrying it). */
  readonly protocols: ProtocolTable;
}

/** A firmware-profile point checked by the profile's protocol. */
export interface ProfilePointIssue {
  /** Path below the point, e.g. `['table']` (empty: the point itself). */
  path: Path;
  message: string;
}

/**
 * What a principal was seen doing on one target, as the journal holds it (`penstockctl grants suggest`):
 * identical actions folded into one, with how often and when.
 */
export interface ObservedAction {
  verb: Verb;
  /** The protocol's journal block of the action (its module's renderObject output). */
  object: Record<string, unknown>;
  /** `allowed`: a suggested rule must cover it; `denied`: listed, never granted. */
  effect: 'allowed' | 'denied';
  count: number;
  /** ISO times of the first and last time it was seen. */
  first: string;
  last: string;
}

/** A rule body of this protocol that covers some observed actions, and a line saying what it covers. */
export interface SuggestedRule<R = unknown> {
  rule: R;
  comment: string;
}

/** What a suggestion may consult beside the observations: the target and its firmware profile. */
export interface SuggestContext {
  readonly target: TargetConfig | undefined;
  readonly profile: FirmwareProfile | undefined;
}

/** An OCSF event class (schema.ocsf.io) that evidence maps to, with the activities used. */
export interface OcsfClassDef {
  readonly uid: number;
  readonly name: string;
  readonly category_uid: number;
  readonly category_name: string;
  readonly activities: Readonly<Record<number, string>>;
}

/** How one journal event becomes an OCSF record (src/siem/ocsf.ts; the table in docs/siem.md). */
export interface OcsfRule {
  /** The class uid, or `door`: the class of the door the event came through (its module's `ocsf.actions`, else API Activity). */
  readonly class: number | 'door';
  /** A fixed activity id, or `door`: the door's own (`ocsf.actions.activity`, else from the verb). */
  readonly activity: number | 'door';
  readonly status: 'success' | 'failure' | 'by_decision' | 'by_outcome' | 'pending' | 'none';
  /** api.operation, for API Activity records of events that are not actions. */
  readonly operation?: string;
  /** What the record fills beyond the common fields, for the docs' table. */
  readonly fields: string;
}

/** How a protocol's evidence reads in OCSF, for SIEM export (src/siem/ocsf.ts). */
export interface ProtocolOcsf {
  /** Classes this protocol uses that the shared catalogue in src/siem/ocsf.ts does not hold. */
  readonly classes?: readonly OcsfClassDef[];
  /** The class of actions through this door and each action event's activity; default API Activity, activity by verb. */
  readonly actions?: { readonly class: number; activity(event: string): number };
  /** Everything through this door is an AI agent's: API Activity with OCSF's ai_operation profile. */
  readonly agent?: boolean;
  /** Rules for this protocol's own events (`events`), by name. */
  readonly events?: Readonly<Record<string, OcsfRule>>;
}

export interface ProtocolModule<O extends ActionObject = ActionObject, R = unknown> {
  /** The one name: a listener's and target's `protocol`, a rule's key, an action object's `kind`, the journal block's key. */
  readonly name: string;
  /** For people: the name the protocol's users know it by, spaces and capitals as they write it. */
  readonly title: string;
  /** Strict schema of a listener of this protocol, including the base fields (id, protocol, host, port). */
  readonly listenerSchema: z.ZodType;
  /** Strict schema of a target of this protocol, including the base fields. */
  readonly targetSchema: z.ZodType;
  /** Schema of a rule body (`- <name>: {…}` in a grant). */
  readonly ruleSchema: z.ZodType<R>;
  /** Schema of an action object, as `penstockctl policy check` sends it over the admin socket. */
  readonly objectSchema: z.ZodType<O>;
  /** Keys this protocol adds to a principal's `credentials` (e.g. OpenSSH keys), each with its value's schema (the config makes each optional). */
  readonly credentialSchemas?: Readonly<Record<string, z.ZodType>>;
  /** Schema of a firmware-profile point's protocol fields; absent: no profiles for this protocol. */
  readonly profilePoint?: {
    /** Fields a point of this protocol may carry (besides the common name, unit, min, max). */
    readonly fields: Readonly<Record<string, z.ZodType>>;
    /** Problems with one point (a missing field, a scale factor the protocol cannot read). */
    check(point: Record<string, unknown>, profile: FirmwareProfile): ProfilePointIssue[];
  };
  /** The pure rule matcher policy/decide.ts asks. */
  readonly matcher: ProtocolMatcher<O, R>;
  /**
   * Protocols of the targets a rule of this protocol may apply to beyond its own: a tunnel that carries
   * another protocol is decided as this protocol's action, on the other protocol's target.
   */
  ruleReaches?(rule: R): readonly string[];
  /** Config warnings for one rule (rules that grant more than they seem to), and errors only the protocol can see. */
  ruleWarnings?(rule: R, context?: RuleCheckContext): RuleWarning[];
  /** The journal's block for an action object, in the names OT analysts know (Zeek, Suricata). */
  renderObject(object: O): Record<string, unknown>;
  /** One short line for people (`penstockctl`): `write holding_register 100 = [5] (unit 1, fc 6)`. */
  describeAction(action: Action & { object: O }): string;
  /**
   * How each refusal reads in this protocol (an exception code, a status code, a message):
   * documentation and tests read it; the front door answers with it.
   */
  readonly refusals: Readonly<Record<DecisionReason, string>>;
  /**
   * Journal events this protocol alone emits, by name, with their codes (`PS3xxxW`: the block of
   * actions). Codes are stable like the shared ones in journal/codes.ts; test/journal/codes.test.ts checks both.
   */
  readonly events?: Readonly<Record<string, string>>;
  /** How its actions and events read in OCSF (SIEM export); absent: API Activity, activity by verb. */
  readonly ocsf?: ProtocolOcsf;
  readonly dryRun?: DryRunSyntax;
  /** How `penstockctl grants issue --rule <name>:KEY=VALUE,…` reads this protocol's rule keys. */
  readonly quickRule?: {
    /** Keys whose value is a list, items separated by spaces (`exec=systemctl status *`). */
    readonly listKeys: readonly string[];
    /** Keys (or list keys) whose values are numbers. */
    readonly numberKeys: readonly string[];
    /** List keys whose all-digit items are numbers and other items stay text (`addresses=100 200-210`). */
    readonly numericItemKeys?: readonly string[];
    /** One or two examples for the help text. */
    readonly examples: readonly string[];
  };
  /** Secrets this protocol stores in the vault in a form of its own (`penstockctl vault set --as NAME`). */
  readonly secretForms?: Readonly<Record<string, { description: string; encode(plain: string): string | Promise<string> }>>;
  /**
   * The smallest rules that would have allowed every `allowed` observation (denied ones are never
   * granted): `penstockctl grants suggest`. Each rule body must pass this module's ruleSchema.
   */
  suggestRules?(actions: readonly ObservedAction[], context: SuggestContext): SuggestedRule<R>[];
  /** Tools an AI agent may call on the agents' front door to act on this protocol's targets; FrontDoor.callAgentTool runs them. */
  readonly agentTools?: readonly AgentToolSpec<R>[];
  /** Its FrontDoor has serveStream: another front door's tunnel may carry this protocol. */
  readonly servesStreams?: boolean;
  /** Alerts (src/alerts): whether an action's journal block (renderObject's output) is of the programming class, allowed or not. */
  isProgramming?(block: Record<string, unknown>, verb: string): boolean;
  /** Alerts: the numbers a write puts at each point it names (a stable point key per value), for the usual-band baseline. */
  writtenValues?(block: Record<string, unknown>, verb: string): { point: string; value: number }[];
  /** The front door, loaded on first use. */
  load(): Promise<FrontDoor>;
}

/** The registered protocols, by name. */
export type ProtocolTable = ReadonlyMap<string, ProtocolModule>;

/** Per-protocol config schemas, as config/load.ts needs them (it must not import adapters). */
export type ProtocolSchemas = ReadonlyMap<string, { listenerSchema: z.ZodType; targetSchema: z.ZodType }>;
