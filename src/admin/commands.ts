// The allowlist of admin commands. Each declares whether it changes state (then the server journals the
// request before the handler runs) and a strict schema of its params. Handlers are thin: the core's
// parts validate and act; this file only maps requests to them.
import { z } from 'zod';
import { PenstockError } from '../common/errors.ts';
import { grantSchema, modbusTables } from '../config/schema.ts';
import { MAX_CONFIG_BYTES } from '../config/limits.ts';
import type { Action } from '../policy/types.ts';
import type { AdminCommand, AdminCommandTable, CommandContext } from './types.ts';
import { findRecordings, readRecordingChunk, type JournalReader } from './recordings.ts';

/** Build a table entry with the handler's params typed by its schema. */
export function defineCommand<S extends z.ZodType>(def: {
  mutates: boolean;
  params: S;
  handler: (params: z.output<S>, ctx: CommandContext) => Promise<unknown>;
}): AdminCommand {
  return def as unknown as AdminCommand;
}

const noParams = z.strictObject({});
/** How issues name config text sent without a name. */
const CHECKED_TEXT_NAME = 'config.yaml';
const id = z.string().min(1).max(128);
const note = z.string().max(1000).optional();

const modbusObjectSchema = z.strictObject({
  kind: z.literal('modbus'),
  unit: z.number().int().min(0).max(255),
  functionCode: z.number().int().min(1).max(127),
  table: z.enum(modbusTables).nullable(),
  address: z.number().int().min(0).max(65535),
  quantity: z.number().int().min(1).max(2000),
  values: z.array(z.number().int().min(0).max(65535)).max(2000).optional(),
});

const opcuaObjectSchema = z.strictObject({
  kind: z.literal('opcua'),
  nodeId: z.string().min(1).max(4096),
  browsePath: z.string().min(1).max(4096).optional(),
  attribute: z.string().min(1).max(64).optional(),
  value: z.number().optional(),
  objectId: z.string().min(1).max(4096).optional(),
});

const sshObjectSchema = z.strictObject({
  kind: z.literal('ssh'),
  channel: z.enum(['exec', 'shell', 'tunnel', 'sftp']),
  commandLine: z.string().max(16384).optional(),
  argv: z.array(z.string().max(16384)).max(4096).optional(),
  metacharacters: z.boolean().optional(),
  tunnel: z.enum(['modbus', 'raw']).optional(),
  path: z.string().min(1).max(4096).optional(),
  direction: z.enum(['download', 'upload']).optional(),
  bytes: z.number().int().min(0).optional(),
});

const verbs = ['read', 'write', 'call', 'browse', 'subscribe', 'history', 'exec', 'shell', 'tunnel', 'upload', 'download', 'diagnostic', 'program', 'other'] as const satisfies readonly Action['verb'][];

/** An action for a dry run, without its target (given beside it). */
export const dryRunActionSchema = z.strictObject({
  verb: z.enum(verbs),
  object: z.discriminatedUnion('kind', [modbusObjectSchema, opcuaObjectSchema, sshObjectSchema]),
});

export const adminCommands: AdminCommandTable = {
  status: defineCommand({
    mutates: false,
    params: noParams,
    handler: async (_p, { context }) => context.status(),
  }),

  'sessions.list': defineCommand({
    mutates: false,
    params: noParams,
    handler: async (_p, { context }) => context.core.sessions.list().map((s) => s.view()),
  }),

  'sessions.kill': defineCommand({
    mutates: true,
    params: z.strictObject({ id, reason: z.string().min(1).max(1000).optional() }),
    handler: async (p, { context, operator }) =>
      context.core.sessions.kill(p.id, { reason: 'killed', ...(p.reason !== undefined ? { detail: p.reason } : {}), by: operator }),
  }),

  'sessions.replay': defineCommand({
    mutates: false,
    // A session id (its recordings, oldest first) or a recording's SHA-256.
    params: z.strictObject({ id }),
    handler: async (p, { context }) => ({ recordings: await findRecordings(journalReader(context.journal), p.id) }),
  }),

  'sessions.recording': defineCommand({
    mutates: false,
    params: z.strictObject({ sha256: z.string().length(64), offset: z.number().int().min(0).default(0) }),
    handler: async (p, { context }) => readRecordingChunk(journalReader(context.journal), p.sha256, p.offset),
  }),

  'grants.list': defineCommand({
    mutates: false,
    params: noParams,
    handler: async (_p, { context }) => {
      const { grants, clock } = context.core;
      const now = clock.now();
      return grants.list().map((g) => ({ ...g, active: grants.isActive(g, now) }));
    },
  }),

  'grants.issue': defineCommand({
    mutates: true,
    // The same shape as a grant in the config file; the store checks it against the running config.
    params: z.strictObject({ grant: grantSchema }),
    handler: async (p, { context, operator }) => await context.core.grants.issue(p.grant, operator),
  }),

  'grants.revoke': defineCommand({
    mutates: true,
    params: z.strictObject({ id, reason: z.string().min(1).max(1000) }),
    handler: async (p, { context, operator }) => await context.core.grants.revoke(p.id, operator, p.reason),
  }),

  'approvals.list': defineCommand({
    mutates: false,
    params: noParams,
    handler: async (_p, { context }) => context.core.approvals.list(),
  }),

  'approvals.approve': defineCommand({
    mutates: true,
    params: z.strictObject({ id, note }),
    handler: async (p, { context, operator }) => await context.core.approvals.approve(p.id, operator, p.note),
  }),

  'approvals.deny': defineCommand({
    mutates: true,
    params: z.strictObject({ id, note }),
    handler: async (p, { context, operator }) => await context.core.approvals.deny(p.id, operator, p.note),
  }),

  'policy.check': defineCommand({
    mutates: false,
    params: z.strictObject({ principal: id, target: id, action: dryRunActionSchema }),
    handler: async (p, { context }) => {
      const action = { target: p.target, ...p.action } as Action;
      const decision = context.core.explain(p.principal, action);
      return { principal: p.principal, action, at: new Date(context.core.clock.now()).toISOString(), decision };
    },
  }),

  'config.check': defineCommand({
    mutates: false,
    // The text, read by penstockctl with the operator's own rights: a path would be opened with the
    // daemon's, and so let the admin group read the vault key. `name` only labels the issues.
    params: z.strictObject({ text: z.string(), name: z.string().min(1).max(4096).optional() }),
    handler: async (p, { context }) => {
      if (Buffer.byteLength(p.text, 'utf8') > MAX_CONFIG_BYTES) throw new PenstockError('PS_CONFIG_TOO_LARGE', `config text is larger than ${MAX_CONFIG_BYTES} bytes, the most a config file may be`);
      const { issues } = context.checkConfig(p.text, p.name ?? CHECKED_TEXT_NAME);
      return { ok: !issues.some((i) => i.severity === 'error'), issues };
    },
  }),

  'config.reload': defineCommand({
    mutates: true,
    params: noParams,
    handler: async (_p, { context }) => await context.reload(),
  }),
};

function journalReader(journal: unknown): JournalReader {
  const j = journal as Partial<JournalReader> | undefined;
  if (!j || typeof j.readEvents !== 'function') throw new PenstockError('PS_ADMIN_UNKNOWN_COMMAND', 'this daemon has no journal');
  return j as JournalReader;
}
