// The collector's own YAML config (not the gateway's): where the evidence stream is, where PostgreSQL is,
// and the pinned verifier key of every appliance it accepts evidence from. Read once at start; every
// problem is reported with FILE:LINE:COL as the gateway's loader does (config/yaml-issues.ts).
//
// Secrets (NATS creds or nkey seed, TLS key, the PostgreSQL password) are never in this file: it names
// the files that hold them, read when connecting.
import { resolve } from 'node:path';
import { z } from 'zod';
import { siemSchema } from '../config/siem.ts';
import { PenstockError } from '../common/errors.ts';
import { parseVkey } from '../journal/checkpoint.ts';
import { DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX } from '../fleet/wire.ts';
import { MAX_CONFIG_BYTES } from '../config/limits.ts';
import { dedupe, issueAt, readYaml, sortIssues, throwIfErrors, zodToIssues } from '../config/yaml-issues.ts';
import type { ConfigIssue } from '../config/types.ts';

const file = z.string().min(1);
/** A C2SP key name: no whitespace, no '+'; it is the appliance id and the checkpoints' origin. */
const applianceId = z.string().min(1).max(128).regex(/^[^\s+]+$/, 'must be the appliance id: no spaces and no +');
const subjectPrefix = z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be NATS subject tokens separated by dots (no wildcards)');

const natsSchema = z.strictObject({
  servers: z.array(z.string().regex(/^(nats|tls):\/\/\S+$/, 'must be nats://HOST:PORT or tls://HOST:PORT')).min(1),
  /** A user JWT + nkey seed .creds file (decentralised auth). */
  creds_file: file.optional(),
  /** An nkey seed file (SU…): the user nkey the server's authorization names. */
  nkey_seed_file: file.optional(),
  /** TLS to the servers; cert and key together for mTLS. */
  tls: z.strictObject({ ca: file.optional(), cert: file.optional(), key: file.optional() })
    .refine((t) => (t.cert === undefined) === (t.key === undefined), 'cert and key go together')
    .optional(),
}).refine((n) => !(n.creds_file && n.nkey_seed_file), 'use creds_file or nkey_seed_file, not both');

const streamSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, _ or -').default(DEFAULT_STREAM),
  subject_prefix: subjectPrefix.default(DEFAULT_SUBJECT_PREFIX),
  /** Create the stream, or bring its settings to these, at start (else it must exist). */
  create: z.boolean().default(true),
  replicas: z.union([z.literal(1), z.literal(3), z.literal(5)]).default(1),
  /** How long JetStream keeps evidence (0: until the file store limit). */
  max_age_days: z.number().min(0).default(30),
  /** Publishes with the same Nats-Msg-Id within this window are dropped by JetStream. */
  duplicate_window_seconds: z.number().int().min(1).max(86_400).default(120),
});

const postgresSchema = z.strictObject({
  /** postgres://USER@HOST:PORT/DB without a password. */
  url: z.string().optional(),
  /** The password for `url`, alone in a file. */
  password_file: file.optional(),
  /** A file holding the whole URL, password included. */
  url_file: file.optional(),
  /** Connections for writing verified batches (besides one per collector for its locks). */
  pool: z.number().int().min(1).max(100).default(10),
}).superRefine((p, ctx) => {
  if ((p.url === undefined) === (p.url_file === undefined)) ctx.addIssue({ code: 'custom', message: 'set url (with password_file if the server asks for one) or url_file' });
  if (p.url_file !== undefined && p.password_file !== undefined) ctx.addIssue({ code: 'custom', path: ['password_file'], message: 'url_file holds the password itself' });
  if (p.url !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(p.url);
    } catch {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'must be a postgres:// URL' });
    }
    if (u && !/^postgres(ql)?:$/.test(u.protocol)) ctx.addIssue({ code: 'custom', path: ['url'], message: 'must be a postgres:// URL' });
    // A password here would sit in a readable file and in every diagnostic that prints the URL.
    if (u && (u.password !== '' || u.searchParams.has('password'))) ctx.addIssue({ code: 'custom', path: ['url'], message: 'must not hold a password: put it in password_file' });
  }
});

const applianceSchema = z.strictObject({
  id: applianceId,
  /** The appliance's checkpoint verifier key (C2SP vkey, `penstockctl journal key`), pinned out of band. */
  vkey: z.string().superRefine((v, ctx) => {
    try {
      parseVkey(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `not a C2SP Ed25519 verifier key: ${(err as Error).message}` });
    }
  }),
});

export const collectorConfigSchema = z.strictObject({
  collector: z.strictObject({
    /** Names this collector in alerts and logs. */
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'must be 1-64 letters, digits, dot, dash, colon or underscore'),
    /** Events held per appliance after its last verified checkpoint; past it the appliance is stopped. */
    max_pending_events: z.number().int().min(100).default(200_000),
    /** How often a collector tries to take appliances no live collector holds. */
    lock_retry_seconds: z.number().min(0.1).max(600).default(5),
  }),
  nats: natsSchema,
  stream: streamSchema.default({ name: DEFAULT_STREAM, subject_prefix: DEFAULT_SUBJECT_PREFIX, create: true, replicas: 1, max_age_days: 30, duplicate_window_seconds: 120 }),
  postgres: postgresSchema,
  appliances: z.array(applianceSchema).min(1, 'list at least one appliance'),
  // SIEM export from the collector's events table: the gateway's siem: entries (src/config/siem.ts), each
  // run by one collector at a time (src/collector/collector.ts).
  siem: siemSchema.default([]),
});

export type CollectorConfig = z.infer<typeof collectorConfigSchema> & { file?: string };
export type ApplianceConfig = CollectorConfig['appliances'][number];

const KNOWN_KEYS = Object.keys(collectorConfigSchema.shape);

/** Every problem in a collector config (empty when it loads), and the config when it does. */
export function checkCollectorConfig(path: string, text?: string): { config?: CollectorConfig; issues: ConfigIssue[] } {
  const file = resolve(path);
  const { source, issues } = readYaml(file, text, { maxBytes: MAX_CONFIG_BYTES, knownKeys: KNOWN_KEYS });
  if (!source) return { issues };
  const all = [...issues];
  const parsed = collectorConfigSchema.safeParse(source.data);
  if (!parsed.success) all.push(...zodToIssues(source, parsed.error.issues));
  else {
    const seen = new Map<string, number>();
    parsed.data.appliances.forEach((a, i) => {
      if (seen.has(a.id)) all.push(issueAt(source, ['appliances', i, 'id'], `appliance ${a.id} is listed twice (first at appliances[${seen.get(a.id)}])`));
      seen.set(a.id, i);
      // The checkpoint origin is the key name, and the collector checks origin = appliance id.
      const name = parseVkey(a.vkey).name;
      if (name !== a.id) all.push(issueAt(source, ['appliances', i, 'vkey'], `the key is named ${name}, not the appliance id ${a.id}`));
    });
  }
  const sorted = sortIssues(dedupe(all), file);
  if (!parsed.success || sorted.some((i) => i.severity === 'error')) return { issues: sorted };
  return { config: { ...parsed.data, file }, issues: sorted };
}

/** Loads a collector config or throws PS_CONFIG_INVALID / PS_CONFIG_READ with `details.issues`. */
export function loadCollectorConfig(path: string, text?: string): CollectorConfig {
  const { config, issues } = checkCollectorConfig(path, text);
  if (!config && issues.some((i) => i.code === 'PS_CONFIG_READ' || i.code === 'PS_CONFIG_TOO_LARGE') && issues.length === 1) {
    throw new PenstockError(issues[0]!.code === 'PS_CONFIG_TOO_LARGE' ? 'PS_CONFIG_TOO_LARGE' : 'PS_CONFIG_READ', issues[0]!.message, { file: resolve(path), issues });
  }
  throwIfErrors(`invalid collector configuration ${resolve(path)}`, issues);
  return config!;
}
