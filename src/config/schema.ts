// The configuration's shape: one YAML file for appliance, listeners, principals, targets and grants.
// Keys in the file are snake_case and stay snake_case here, so a message can name the field exactly as
// plant staff wrote it. Every object is strict: an unknown key is an error, never ignored.
//
// Cross-references (a grant naming a missing target, a rule naming a missing profile point) are checked
// by config/check.ts. What is a protocol's own (its rule bodies, its credentials, its listener and
// target options) comes from its module in the table (src/adapters/registry.ts); this file names none.
import { createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { ISSUE_CODES } from './issue-codes.ts';
import { id, isoTime, listenerBaseSchema, nonEmpty, port, targetBaseSchema } from './schema-parts.ts';
import type { Effect } from '../policy/types.ts';
import { protocols } from '../adapters/registry.ts';
export { effects, rangeListSchema, rangeSchema, type Range } from './schema-parts.ts';
import { parseVkey } from '../journal/checkpoint.ts';
import { FINGERPRINT_RE, normaliseFingerprint, SUBJECT_RE, SYNC_ROLES } from '../sync/clients.ts';
import { spiffeIdProblem } from '../common/spiffe.ts';
import { alertsSchema } from './alerts.ts';
import { pushSchema } from './push.ts';
import { siemSchema } from './siem.ts';

/** A SPIFFE ID (src/common/spiffe.ts says what the specification allows). */
const spiffeIdSchema = z.string().superRefine((v, ctx) => {
  const problem = spiffeIdProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem, params: { code: ISSUE_CODES.spiffeIdMalformed } });
});

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$|^24:00$/, 'must be HH:MM (24-hour), e.g. 08:00');

// ---------------------------------------------------------------- rules

/**
 * A rule names exactly one protocol, `- <protocol>: { … }`, whose module gives the body's schema
 * (src/adapters/<protocol>/rules.ts).
 */
function buildRuleSchema() {
  const options = [...protocols.values()].map((m) => z.strictObject({ [m.name]: m.ruleSchema }));
  if (options.length === 0) throw new Error('no protocol modules registered');
  return z.union(options as unknown as [z.ZodType, ...z.ZodType[]]);
}
export const ruleSchema = buildRuleSchema() as unknown as z.ZodType<RuleConfig>;
/** `{ <protocol>: { effect, …the protocol's own fields } }`; policy/matchers.ts splits it. */
export type RuleConfig = Readonly<Record<string, { effect: Effect; [field: string]: unknown }>>;

// ---------------------------------------------------------------- grants

export const weekdays = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
/** A recurring maintenance window: on these days, from..to local time in `tz` (IANA name). `to` before `from` spans midnight. */
export const scheduleSchema = z.strictObject({
  days: z.array(z.enum(weekdays)).min(1),
  from: hhmm,
  to: hhmm,
  tz: z.string().refine((tz) => {
    try {
      new Intl.DateTimeFormat('en', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  }, 'must be an IANA time zone such as Europe/Berlin or UTC'),
}).superRefine((s, ctx) => {
  if (s.from === s.to) ctx.addIssue({ code: 'custom', path: ['to'], message: 'an empty window: `from` equals `to`', params: { code: ISSUE_CODES.windowEmpty } });
});

export const grantSchema = z.strictObject({
  id,
  principal: id,
  targets: z.array(id).min(1),
  task: z.strictObject({
    ticket: nonEmpty,
    purpose: nonEmpty.optional(),
    /**
     * The grant holds only in sessions whose credential names this task (an agent's token's task claim,
     * e.g. a grant made by request_access): the same principal working on another task cannot use it.
     */
    require_claim: z.boolean().optional(),
  }),
  /** Absolute validity: the grant holds only between from and to. */
  window: z.strictObject({ from: isoTime, to: isoTime }).superRefine((w, ctx) => {
    if (Date.parse(w.from) >= Date.parse(w.to)) ctx.addIssue({ code: 'custom', path: ['to'], message: `window ends (${w.to}) before it starts (${w.from})`, params: { code: ISSUE_CODES.windowReversed } });
  }).optional(),
  /** Recurring windows: the grant holds only inside one of them (and inside `window` if both are given). */
  schedule: z.array(scheduleSchema).min(1).optional(),
  limits: z.strictObject({
    max_session_seconds: z.number().int().positive().optional(),
    actions_per_second: z.number().positive().optional(),
  }).optional(),
  rules: z.array(ruleSchema).min(1),
  /**
   * `observe`, for a first visit: what its rules allow is allowed only for reads (journaled as any read);
   * a write, call or any other action its rules allow waits for a person's approval, so a grant written
   * to learn from (`penstockctl grants suggest`) never opens a write path. Default: `enforce`.
   */
  mode: z.enum(['enforce', 'observe']).optional(),
});
export type GrantConfig = z.infer<typeof grantSchema>;

// ---------------------------------------------------------------- identities

export const principalKinds = ['human', 'vendor', 'agent', 'service'] as const;
export const principalSchema = z.strictObject({
  id,
  kind: z.enum(principalKinds),
  owner: nonEmpty,
  purpose: nonEmpty,
  expires: isoTime.optional(),
  /** Delegation: another principal's id, or an external reference `KIND:REF` such as `work-order:WO-4411`. */
  acting_for: nonEmpty.optional(),
  /**
   * How the principal proves who it is: X.509 client certificates (any front door that takes TLS
   * clients), and whatever each protocol's module adds (`credentialSchemas`).
   */
  credentials: z.strictObject({
    /**
     * X.509 client certificates: SHA-256 fingerprints (hex, colons allowed), the SPIFFE IDs of
     * X.509-SVIDs (the one `spiffe://trust-domain/path` URI SAN), or a subject CN.
     */
    x509: z.strictObject({
      fingerprints: z.array(nonEmpty).optional(),
      spiffe_ids: z.array(spiffeIdSchema).min(1).optional(),
      subject_cn: nonEmpty.optional(),
    }).optional(),
    // Each is optional: a principal has the credentials of the front doors it uses.
    ...Object.fromEntries([...protocols.values()].flatMap((m) => Object.entries(m.credentialSchemas ?? {})).map(([key, schema]) => [key, schema.optional()])) as Record<string, z.ZodType>,
  }).default({}),
});
export type PrincipalConfig = z.infer<typeof principalSchema>;

export { listenerBaseSchema, targetBaseSchema, type ListenerBase, type TargetBase } from './schema-parts.ts';

// ---------------------------------------------------------------- appliance and services

/** One pull API client: a certificate (by SHA-256 fingerprint, X.509-SVID SPIFFE ID or subject) and what it may do. */
const syncClientSchema = z.strictObject({
  name: id,
  fingerprint: z.string().regex(FINGERPRINT_RE, 'must be the certificate\'s SHA-256 fingerprint: 64 hex digits, colons allowed (openssl x509 -noout -fingerprint -sha256)').optional(),
  spiffe_id: spiffeIdSchema.optional(),
  subject: z.string().regex(SUBJECT_RE, 'must be ATTR=value pairs separated by commas, e.g. CN=central-pam,O=Plant').optional(),
  roles: z.array(z.enum(SYNC_ROLES)).min(1),
  /** The witness's C2SP verifier key (name+hash+key); required with the cosign role. */
  witness_key: z.string().refine((v) => {
    try {
      parseVkey(v);
      return true;
    } catch {
      return false;
    }
  }, 'must be an Ed25519 C2SP verifier key name+hash+base64key').optional(),
}).superRefine((c, ctx) => {
  if ([c.fingerprint, c.spiffe_id, c.subject].filter((v) => v !== undefined).length !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of fingerprint, spiffe_id or subject' });
  if (c.roles.includes('cosign') && c.witness_key === undefined) ctx.addIssue({ code: 'custom', path: ['witness_key'], message: 'the cosign role needs the witness\'s verifier key' });
  if (!c.roles.includes('cosign') && c.witness_key !== undefined) ctx.addIssue({ code: 'custom', path: ['witness_key'], message: 'only a client with the cosign role has a witness key' });
});

/**
 * One central PAM key that signs grant envelopes (src/grants/envelope.ts). The key is written inline
 * as an SPKI PEM, not as a path: it is public, and the config is then the one file that says whom the
 * gateway trusts (no second file to forget when copying the config to an air-gapped site).
 */
const envelopeKeySchema = z.strictObject({
  kid: nonEmpty.max(128),
  issuer: nonEmpty.max(256),
  public_key: z.string().refine((pem) => {
    try {
      return createPublicKey(pem).asymmetricKeyType === 'ed25519';
    } catch {
      return false;
    }
  }, 'must be an Ed25519 public key as SPKI PEM (-----BEGIN PUBLIC KEY-----; openssl pkey -pubout)'),
});

/** Most days an envelope may live, whatever the config says (an envelope is a bearer grant). */
export const ENVELOPE_LIFETIME_CAP_DAYS = 30;

export const envelopesSchema = z.strictObject({
  keys: z.array(envelopeKeySchema).min(1).superRefine((keys, ctx) => {
    const seen = new Map<string, number>();
    keys.forEach((k, i) => {
      const first = seen.get(k.kid);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: [i, 'kid'], message: `the same kid as keys[${first}]` });
      else seen.set(k.kid, i);
    });
  }),
  max_lifetime_days: z.number().positive().max(ENVELOPE_LIFETIME_CAP_DAYS).default(7),
});
export type EnvelopesConfig = z.infer<typeof envelopesSchema>;

export const configSchema = z.strictObject({
  appliance: z.strictObject({
    id,
    site: nonEmpty,
    zone: nonEmpty,
    hardware: id.optional(),
    state_dir: nonEmpty.default('/var/lib/penstock'),
    runtime_dir: nonEmpty.default('/run/penstock'),
  }),
  admin: z.strictObject({
    /** Default: RUNTIME_DIR/admin.sock. */
    socket: nonEmpty.optional(),
    /** Group whose members may use the socket (mode 0660); without it the socket is owner-only (0600). */
    group: nonEmpty.optional(),
  }).default({}),
  journal: z.strictObject({
    /** Default: STATE_DIR/journal. */
    path: nonEmpty.optional(),
    map_size_mib: z.number().int().min(1).default(1024),
    checkpoint_every: z.number().int().min(1).default(1000),
    checkpoint_seconds: z.number().int().min(1).default(60),
    /** When the journal cannot be written, reads may go on only if this is true. */
    reads_when_full: z.boolean().default(false),
    /** Journal every read one by one instead of per-session aggregates. */
    every_read: z.boolean().default(false),
    aggregate_reads_seconds: z.number().int().min(1).default(60),
    retention: z.strictObject({
      max_mib: z.number().int().min(1).optional(),
      max_age_days: z.number().int().min(1).optional(),
      /**
       * Whose acknowledgement lets an event be pruned: `pull` (central PAM's /v1/events), `push` (JetStream's
       * acknowledgement of the evidence push), `siem:<id>` (what that SIEM export delivered), or several (the
       * lowest of them). Default: pull.
       */
      acknowledged_by: z.array(z.string().regex(/^(pull|push|siem:[a-z0-9][a-z0-9_-]{0,47})$/, 'must be pull, push or siem:<export id>')).min(1).default(['pull']),
    }).default({ acknowledged_by: ['pull'] }),
    /** Ed25519 signing key (PKCS#8 PEM); generated at first start when missing. Default: STATE_DIR/keys/appliance-ed25519.pem. */
    signing_key: nonEmpty.optional(),
  }).default({ map_size_mib: 1024, checkpoint_every: 1000, checkpoint_seconds: 60, reads_when_full: false, every_read: false, aggregate_reads_seconds: 60, retention: { acknowledged_by: ['pull'] } }),
  vault: z.strictObject({
    /** Encrypted secrets file. Default: STATE_DIR/vault.json. */
    file: nonEmpty.optional(),
    /** Key file (32 random bytes, hex), kept outside the config. Default: /etc/penstock/vault.key. */
    key_file: nonEmpty.optional(),
  }).default({}),
  sync: z.strictObject({
    host: nonEmpty.default('127.0.0.1'),
    port,
    tls: z.strictObject({ cert: nonEmpty, key: nonEmpty, client_ca: nonEmpty }),
    page_size: z.number().int().min(1).max(10000).default(500),
    /** Required: a certificate under client_ca that no entry names is refused (see src/sync/clients.ts). */
    clients: z.array(syncClientSchema).min(1).superRefine((clients, ctx) => {
      const seen = new Map<string, number>();
      clients.forEach((c, i) => {
        const certificate = c.fingerprint ? `fingerprint ${normaliseFingerprint(c.fingerprint)}` : c.spiffe_id ? `spiffe_id ${c.spiffe_id}` : `subject ${c.subject}`;
        for (const key of [`name ${c.name}`, certificate]) {
          const first = seen.get(key);
          if (first !== undefined) ctx.addIssue({ code: 'custom', path: [i], message: `the same ${key.split(' ')[0]} as clients[${first}]` });
          else seen.set(key, i);
        }
      });
    }),
  }).optional(),
  /** Evidence pushed to NATS JetStream when the link allows (config/push.ts, docs/push.md). */
  push: pushSchema.optional(),
  /** Pre-authorised grants signed by central PAM, for sites without a live link (penstockctl grants import). */
  envelopes: envelopesSchema.optional(),
  approvals: z.strictObject({
    timeout_seconds: z.number().int().min(1).default(300),
  }).default({ timeout_seconds: 300 }),
  sessions: z.strictObject({
    max_duration_seconds: z.number().int().min(1).default(8 * 3600),
    actions_per_second: z.number().positive().default(200),
    idle_seconds: z.number().int().min(1).default(900),
  }).default({ max_duration_seconds: 8 * 3600, actions_per_second: 200, idle_seconds: 900 }),
  /** Detectors over the journal and what containment does per kind (config/alerts.ts). */
  alerts: alertsSchema,
  /** SIEM exports: syslog over TLS carrying OCSF JSON, each with its own journal cursor (config/siem.ts, docs/siem.md). */
  siem: siemSchema,
  listeners: z.array(listenerBaseSchema.passthrough()).default([]),
  principals: z.array(principalSchema).superRefine((principals, ctx) => {
    // One SPIFFE ID names one workload: two principals claiming it would make the certificate ambiguous.
    const first = new Map<string, number>();
    principals.forEach((p, i) => p.credentials.x509?.spiffe_ids?.forEach((sid, j) => {
      const at = first.get(sid);
      if (at === undefined) first.set(sid, i);
      else if (at !== i) ctx.addIssue({ code: 'custom', path: [i, 'credentials', 'x509', 'spiffe_ids', j], message: `${sid} is already principals[${at}]'s (${principals[at]!.id}); a SPIFFE ID names one principal`, params: { code: ISSUE_CODES.spiffeIdClaimedTwice } });
    }));
  }).default([]),
  targets: z.array(targetBaseSchema.passthrough()).default([]),
  grants: z.array(grantSchema).default([]),
});

export type RawConfig = z.infer<typeof configSchema>;
