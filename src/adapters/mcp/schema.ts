// Config schemas of MCP listeners, what a principal's token names, and the rule and target schemas MCP
// does not have yet (each refuses with a sentence saying why, so the rule union stays total).
import { z } from 'zod';
import { listenerBaseSchema, nonEmpty, targetBaseSchema } from '../../config/schema-parts.ts';

/** The resource URI this door answers for (RFC 8707, RFC 9728): https, no query or fragment. */
const resourceUri = z.string().refine((s) => {
  if (!URL.canParse(s)) return false;
  const u = new URL(s);
  return u.protocol === 'https:' && u.search === '' && u.hash === '' && u.username === '' && u.password === '';
}, 'must be an https URL without query, fragment or user info, e.g. https://gw.example:8443/mcp');

/**
 * An MCP front door: Streamable HTTP over TLS. Agents present bearer JWTs (OIDC access tokens, SPIFFE
 * JWT-SVIDs) from one of `issuers`, verified against the issuer's JWKS file, with the audience bound to
 * `resource` unless the issuer names another.
 */
export const mcpListenerSchema = listenerBaseSchema.extend({
  protocol: z.literal('mcp'),
  tls: z.strictObject({ cert: nonEmpty, key: nonEmpty }),
  resource: resourceUri,
  issuers: z.array(z.strictObject({
    /** The `iss` claim, exactly as the issuer writes it. */
    issuer: nonEmpty,
    /** A JSON Web Key Set file (`{ "keys": [...] }`): keys pinned by plant staff, read at listener start. */
    jwks_file: nonEmpty.optional(),
    /** The issuer's JWKS endpoint: fetched when the link allows, the last good answer cached in the state directory. */
    jwks_uri: z.string().refine((u) => URL.canParse(u) && new URL(u).protocol === 'https:', 'must be an https URL').optional(),
    /** CA certificates (PEM) the JWKS endpoint's certificate must chain to; default: the system's. */
    jwks_ca_file: nonEmpty.optional(),
    /** How often the JWKS endpoint is asked again (and at once, at most once a minute, when a token names an unknown key). */
    jwks_refresh_seconds: z.number().int().min(60).max(7 * 86_400).default(3600),
    /** The `aud` the issuer writes for this gateway; default: `resource`. */
    audience: nonEmpty.optional(),
  }).refine((i) => i.jwks_file !== undefined || i.jwks_uri !== undefined, { message: 'give jwks_file (keys pinned on the gateway), jwks_uri (fetched from the issuer), or both', path: ['jwks_file'] })).min(1),
  /** Tolerated clock difference with the issuer for `exp` and `nbf`. */
  clock_skew_seconds: z.number().int().min(0).max(300).default(60),
  /** The JWT claim that names the agent's task (a work order, a ticket): grants that require a task claim match on it. */
  task_claim: nonEmpty.default('task'),
  /**
   * Mutual TLS with X.509-SVIDs (or other client certificates): clients presenting a certificate that
   * chains to this CA are identified by it (principal `credentials.x509`: fingerprint, SPIFFE ID, CN) and
   * need no bearer token. Without it, the door asks for no certificate.
   */
  client_ca: nonEmpty.optional(),
  /** MCP sessions open at once on this door; beyond it an initialize gets 503. */
  max_sessions: z.number().int().min(1).max(100_000).default(256),
  /**
   * MCP sessions one principal may hold open; opening one more ends its least recently used one (a client
   * that never deletes its sessions cannot pile them up until their tokens expire).
   */
  max_sessions_per_principal: z.number().int().min(1).max(10_000).default(8),
  /** Tool calls per second on one session (a burst of one second's worth); beyond it a call is refused `rate_limited`. */
  calls_per_second: z.number().min(0.1).max(10_000).default(20),
  /** Tool calls one principal may make for one task (the token's task claim, or the session when it has none). */
  max_calls_per_task: z.number().int().min(1).max(10_000_000).default(10_000),
  /** A request body larger than this is refused (413) without being read. */
  max_body_bytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
}).strict().superRefine((l, ctx) => {
  const seen = new Set<string>();
  l.issuers.forEach((i, n) => {
    if (seen.has(i.issuer)) ctx.addIssue({ code: 'custom', path: ['issuers', n, 'issuer'], message: `issuer ${i.issuer} is listed twice` });
    seen.add(i.issuer);
  });
});
export type McpListenerConfig = z.output<typeof mcpListenerSchema>;

/** MCP fronts no targets of its own: its tools act on the targets of the other protocols. */
export const mcpTargetSchema = targetBaseSchema.extend({ protocol: z.literal('mcp') }).superRefine((_t, ctx) => {
  ctx.addIssue({ code: 'custom', path: ['protocol'], message: 'MCP has no targets: an agent\'s tools act on targets of the protocol they speak (give the target that protocol)' });
});

/** No MCP rules: a tool that acts on a target is granted by that target's protocol's rules. */
export const mcpRuleSchema: z.ZodType<never> = z.custom<never>(() => false, {
  message: 'MCP tools are granted by the rules of the protocol they act on; there is no mcp rule',
});

/** Keys MCP adds to a principal's `credentials`. */
export const mcpCredentialSchemas = {
  /** The `sub` values (OIDC subjects, SPIFFE IDs of JWT-SVIDs) of the tokens this principal presents. */
  token_subjects: z.array(nonEmpty).min(1),
};

/** A tool call that belongs to no other protocol (the gateway's own tools, such as `my_access`). */
export const mcpObjectSchema = z.strictObject({
  kind: z.literal('mcp'),
  tool: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/),
});
export type McpObject = z.output<typeof mcpObjectSchema>;
