// The allowlist of admin commands. Each declares whether it changes state (then the server journals the
// request before the handler runs) and a strict schema of its params. Handlers are thin: the core's
// parts validate and act; this file only maps requests to them.
import { z } from 'zod';
import { PenstockError } from '../common/errors.ts';
import { grantSchema } from '../config/schema.ts';
import { protocols } from '../adapters/registry.ts';
import { MAX_CONFIG_BYTES } from '../config/limits.ts';
import { MAX_ENVELOPE_BYTES } from '../grants/envelope.ts';
import type { Action, ActionObject } from '../policy/types.ts';
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

const verbs = ['read', 'write', 'call', 'browse', 'subscribe', 'history', 'exec', 'shell', 'tunnel', 'upload', 'download', 'diagnostic', 'program', 'other'] as const satisfies readonly Action['verb'][];

/** An action object, checked by the schema of the protocol its `kind` names (its module's objectSchema). */
const actionObjectSchema = z.unknown().transform((value, ctx): ActionObject => {
  const kind = (value as { kind?: unknown } | null)?.kind;
  const m = typeof kind === 'string' ? protocols.get(kind) : undefined;
  if (!m) {
    ctx.addIssue({ code: 'custom', path: ['kind'], message: `must be one of ${[...protocols.keys()].join(', ')}` });
    return z.NEVER;
  }
  const r = m.objectSchema.safeParse(value);
  if (!r.success) {
    for (const i of r.error.issues) ctx.addIssue({ code: 'custom', path: i.path, message: i.message });
    return z.NEVER;
  }
  return r.data;
});

/** An action for a dry run, without its target (given beside it). */
export const dryRunActionSchema = z.strictObject({
  verb: z.enum(verbs),
  object: actionObjectSchema,
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

  'sessions.resume': defineCommand({
    mutates: true,
    // Lift a suspension containment put on a live session: its actions are decided as before again.
    params: z.strictObject({ id }),
    handler: async (p, { context: { core }, operator }) => {
      if (!core.resumeSession) throw noContainment();
      return await core.resumeSession(p.id, operator);
    },
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
      const holds = new Map(context.core.grantHolds?.().map((h) => [h.grant, h]));
      return grants.list().map((g) => {
        const hold = holds.get(g.id);
        return { ...g, active: grants.isActive(g, now), ...(hold ? { approval_required: { alert: hold.alert, since: hold.since } } : {}) };
      });
    },
  }),

  'grants.release': defineCommand({
    mutates: true,
    // Lift the approval requirement containment put on a grant: its allow rules allow again.
    params: z.strictObject({ id }),
    handler: async (p, { context: { core }, operator }) => {
      if (!core.releaseGrant) throw noContainment();
      return await core.releaseGrant(p.id, operator);
    },
  }),

  'grants.issue': defineCommand({
    mutates: true,
    // The same shape as a grant in the config file; the store checks it against the running config.
    params: z.strictObject({ grant: grantSchema }),
    handler: async (p, { context, operator }) => await context.core.grants.issue(p.grant, operator),
  }),

  'grants.import': defineCommand({
    mutates: true,
    // The envelope's text, read by penstockctl with the operator's rights (the daemon opens no path).
    params: z.strictObject({ envelope: z.string().min(1).max(MAX_ENVELOPE_BYTES) }),
    handler: async (p, { context, operator }) => {
      if (!context.importEnvelope) throw new PenstockError('PS_ENVELOPE_DISABLED', 'this daemon cannot import envelopes');
      return await context.importEnvelope(p.envelope, operator);
    },
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

function noContainment(): PenstockError {
  return new PenstockError('PS_ADMIN_UNKNOWN_COMMAND', 'this daemon has no containment');
}

function journalReader(journal: unknown): JournalReader {
  const j = journal as Partial<JournalReader> | undefined;
  if (!j || typeof j.readEvents !== 'function') throw new PenstockError('PS_ADMIN_UNKNOWN_COMMAND', 'this daemon has no journal');
  return j as JournalReader;
}
