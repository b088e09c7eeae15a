// The OPC UA rule a grant holds and the action object a request becomes, as schemas; their TypeScript
// types are derived from them, so the config, the admin socket and the matcher read the same shape.
import { z } from 'zod';
import { effect, nonEmpty } from '../../config/schema-parts.ts';
import type { PrincipalConfig } from '../../config/schema.ts';

/** The services a rule grants, by their Penstock verb. */
export const opcuaVerbs = ['read', 'write', 'call', 'browse', 'subscribe', 'history'] as const;
export const opcuaVerbSchema = z.enum(opcuaVerbs);
export type OpcuaVerb = z.output<typeof opcuaVerbSchema>;

/** An OPC UA rule: node ids (exact, or a trailing `*` glob), browse-path prefixes, or profile points. */
export const opcuaRuleSchema = z.strictObject({
  effect,
  verbs: z.array(opcuaVerbSchema).min(1),
  nodes: z.array(nonEmpty).min(1).optional(),
  browse_paths: z.array(nonEmpty).min(1).optional(),
  points: z.array(nonEmpty).min(1).optional(),
  min: z.number().optional(),
  max: z.number().optional(),
}).superRefine((r, ctx) => {
  if (!r.nodes && !r.browse_paths && !r.points) ctx.addIssue({ code: 'custom', message: 'an opcua rule needs `nodes`, `browse_paths` or `points`' });
  if (r.min !== undefined && r.max !== undefined && r.min > r.max) ctx.addIssue({ code: 'custom', path: ['min'], message: `min ${r.min} exceeds max ${r.max}` });
});
export type OpcuaRuleConfig = z.output<typeof opcuaRuleSchema>;

/** The decimal text of an integer (at most 20 digits: every Int64 and UInt64 fits). */
export const INTEGER_TEXT = /^-?(0|[1-9][0-9]{0,19})$/;

const nodeIdText = z.string().min(1).max(4096);

/** What one item of an OPC UA request is to policy and the journal. */
export const opcuaObjectSchema = z.strictObject({
  kind: z.literal('opcua'),
  /** Gateway-side node id, e.g. `ns=1;s=boiler-1/Boiler/Drum/Level`. */
  nodeId: nodeIdText,
  /** Browse path below the target folder, e.g. `Objects/Boiler/Drum/Level`, when known. */
  browsePath: nodeIdText.optional(),
  /** Attribute name for reads (Value, DisplayName, …). */
  attribute: z.string().min(1).max(64).optional(),
  /**
   * Numeric value of a write, for bounds checks: a number, or the exact decimal text of a 64-bit
   * integer a double cannot hold (beyond ±2^53), compared exactly.
   */
  value: z.union([z.number(), z.string().regex(INTEGER_TEXT, 'must be a number or the decimal text of an integer')]).optional(),
  /** For calls: the object the method is called on. */
  objectId: nodeIdText.optional(),
});
export type OpcuaObject = z.output<typeof opcuaObjectSchema>;

/** A principal's OPC UA user: the password is a vault reference (`vault:NAME`) to its hash, never inline. */
export const opcuaUserCredentialSchema = z.strictObject({
  username: nonEmpty,
  password: z.string().regex(/^vault:/, 'must be a vault reference vault:NAME'),
});

/** What a principal's `credentials` hold for this protocol (config/schema.ts adds the key from credentialSchemas). */
export interface OpcuaCredentials {
  opcua_user?: z.output<typeof opcuaUserCredentialSchema>;
}
export function opcuaCredentials(p: PrincipalConfig): OpcuaCredentials {
  return p.credentials as OpcuaCredentials;
}
