// journal.* admin commands: read, verify, export and prove the evidence journal on the gateway.
// None changes state, so none is audited before it runs; all are bounded in size.
import { z } from 'zod';
import { isoTime } from '../config/schema-parts.ts';
import { PenstockError } from '../common/errors.ts';
import { verifyCheckpoint } from '../journal/checkpoint.ts';
import type { KeptCheckpoint, LmdbJournal } from '../journal/journal.ts';
import { defineCommand } from './commands.ts';
import type { AdminCommandTable, CommandContext } from './types.ts';

/** At most this many events per tail/export request; penstockctl pages through larger exports. */
export const MAX_EVENTS_PER_REQUEST = 2000;
/** At most this many journal events looked at per journal.observed request (the caller pages on with `next`). */
export const MAX_SCANNED_PER_REQUEST = 50_000;
/** Events an observation can come from: what was done or refused, and the reads folded per session. */
const OBSERVED_EVENTS = new Set(['action.allowed', 'action.denied', 'reads.aggregate']);
const SCAN_CHUNK = 1000;

function journalOf(ctx: CommandContext): LmdbJournal {
  const j = ctx.context.journal as LmdbJournal | undefined;
  if (!j) throw new PenstockError('PS_ADMIN_UNKNOWN_COMMAND', 'this daemon has no journal');
  return j;
}

const seq = z.number().int().min(0);

/** The kept checkpoint of a journal.verify request: a note signed by this appliance, or size and root. */
function keptCheckpoint(j: LmdbJournal, p: { checkpoint?: string | undefined; tree_size?: number | undefined; root?: string | undefined }): KeptCheckpoint | undefined {
  if (p.checkpoint !== undefined) {
    if (p.tree_size !== undefined || p.root !== undefined) throw new PenstockError('PS_ADMIN_BAD_REQUEST', 'give a kept checkpoint note, or a tree size and root, not both');
    const v = verifyCheckpoint(p.checkpoint, j.publicKeyVkey());
    if (!v.ok) throw new PenstockError('PS_ADMIN_BAD_REQUEST', `kept checkpoint: ${v.problem}`);
    return { size: v.checkpoint.size, rootHash: v.checkpoint.rootHash };
  }
  if ((p.tree_size === undefined) !== (p.root === undefined)) throw new PenstockError('PS_ADMIN_BAD_REQUEST', 'a kept tree size needs its root, and a root its tree size');
  return p.tree_size === undefined ? undefined : { size: p.tree_size, rootHash: new Uint8Array(Buffer.from(p.root!, 'base64')) };
}

export interface ObservedParams {
  principal: string;
  session?: string | undefined;
  target?: string | undefined;
  since?: string | undefined;
  from: number;
}

/**
 * One page of journal.observed: from `p.from`, at most `maxScanned` events looked at and
 * MAX_EVENTS_PER_REQUEST returned; `next` is where the following page starts.
 */
export function scanObserved(j: LmdbJournal, p: ObservedParams, maxScanned = MAX_SCANNED_PER_REQUEST): { events: Record<string, unknown>[]; targets: Set<string>; next: number } {
  const size = j.size();
  const sinceMs = p.since !== undefined ? Date.parse(p.since) : undefined;
  const needle = `"principal":${JSON.stringify(p.principal)}`;
  const events: Record<string, unknown>[] = [];
  const targets = new Set<string>();
  let next = Math.max(p.from, j.firstRetained());
  const end = Math.min(size, next + maxScanned);
  while (next < end && events.length < MAX_EVENTS_PER_REQUEST) {
    const chunk = j.readEvents(next, Math.min(SCAN_CHUNK, end - next));
    if (chunk.length === 0) break;
    for (const { seq: at, bytes } of chunk) {
      next = at + 1;
      // Most events are someone else's: a substring test before parsing keeps the scan cheap.
      if (!bytes.includes(needle)) continue;
      const e = JSON.parse(bytes) as { time: string; event: string; principal?: string; session?: string; target?: string; action?: { target?: string }; decision?: { effect?: string; reason?: string }; detail?: { reads?: { target: string }[] } };
      if (e.principal !== p.principal || !OBSERVED_EVENTS.has(e.event)) continue;
      if (p.session !== undefined && e.session !== p.session) continue;
      if (sinceMs !== undefined && Date.parse(e.time) < sinceMs) continue;
      const row: Record<string, unknown> = { seq: at, time: e.time, event: e.event, session: e.session };
      if (e.event === 'reads.aggregate') {
        const reads = (e.detail?.reads ?? []).filter((r) => p.target === undefined || r.target === p.target);
        if (reads.length === 0) continue;
        for (const r of reads) targets.add(r.target);
        row.reads = reads;
      } else {
        const target = e.action?.target ?? e.target;
        if (target === undefined || (p.target !== undefined && target !== p.target)) continue;
        targets.add(target);
        Object.assign(row, { target, action: e.action, decision: { effect: e.decision?.effect, reason: e.decision?.reason } });
      }
      events.push(row);
      if (events.length >= MAX_EVENTS_PER_REQUEST) break;
    }
  }
  return { events, targets, next };
}

export const journalCommands: AdminCommandTable = {
  'journal.status': defineCommand({
    mutates: false,
    params: z.strictObject({}),
    handler: async (_p, ctx) => {
      const j = journalOf(ctx);
      return { health: j.health(), size: j.size(), first_retained: j.firstRetained(), acknowledged: j.acknowledged(), checkpoint: j.latestCheckpoint(), vkey: j.publicKeyVkey() };
    },
  }),
  'journal.tail': defineCommand({
    mutates: false,
    params: z.strictObject({ count: z.number().int().min(1).max(MAX_EVENTS_PER_REQUEST).default(20) }),
    handler: async ({ count }, ctx) => {
      const j = journalOf(ctx);
      const from = Math.max(j.firstRetained(), j.size() - count);
      return { events: j.readEvents(from, count).map((e) => ({ seq: e.seq, event: JSON.parse(e.bytes) as unknown })), size: j.size() };
    },
  }),
  'journal.show': defineCommand({
    mutates: false,
    params: z.strictObject({ seq }),
    handler: async (p, ctx) => {
      const j = journalOf(ctx);
      const [e] = j.readEvents(p.seq, 1);
      if (!e || e.seq !== p.seq) throw new PenstockError('PS_ADMIN_BAD_REQUEST', `no event ${p.seq} (journal holds ${j.firstRetained()}..${j.size() - 1})`);
      return { seq: e.seq, event: JSON.parse(e.bytes) as unknown, leaf_hash: Buffer.from(j.leafHash(e.seq)).toString('base64') };
    },
  }),
  'journal.verify': defineCommand({
    mutates: false,
    // Optionally against a checkpoint the operator kept elsewhere: its signed note, or a tree size and root.
    params: z.strictObject({
      checkpoint: z.string().min(1).max(8192).optional(),
      tree_size: seq.optional(),
      root: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'base64 of 32 bytes').optional(),
    }),
    handler: async (p, ctx) => {
      const j = journalOf(ctx);
      const kept = keptCheckpoint(j, p);
      const started = performance.now();
      // In a worker thread: a large journal takes seconds, and the front doors go on meanwhile.
      const result = await j.verify(kept);
      return {
        ...result,
        ...(kept ? { kept: { size: kept.size, root: Buffer.from(kept.rootHash).toString('base64') } } : {}),
        checkpoint: j.latestCheckpoint(),
        seconds: (performance.now() - started) / 1000,
      };
    },
  }),
  'journal.export': defineCommand({
    mutates: false,
    params: z.strictObject({ from: seq.default(0), count: z.number().int().min(1).max(MAX_EVENTS_PER_REQUEST).default(MAX_EVENTS_PER_REQUEST) }),
    handler: async ({ from, count }, ctx) => {
      const j = journalOf(ctx);
      const lines: string[] = [];
      const r = j.exportJsonLines(from, from + count - 1, (line) => lines.push(line));
      return { first: r.first, lines, checkpoint: r.checkpoint, size: j.size() };
    },
  }),
  'journal.observed': defineCommand({
    mutates: false,
    // What one principal did and was refused (grants suggest): action events and read aggregates, filtered
    // here so only that principal's events cross the socket. Bounded per request in events looked at
    // and returned; the caller goes on from `next` until it reaches `size`.
    params: z.strictObject({
      principal: z.string().min(1).max(128),
      session: z.string().min(1).max(128).optional(),
      target: z.string().min(1).max(128).optional(),
      since: isoTime.optional(),
      from: seq.default(0),
    }),
    handler: async (p, ctx) => {
      const j = journalOf(ctx);
      const { events, targets, next } = scanObserved(j, p);
      // What a suggestion needs of each target named: its protocol, zone and firmware profile.
      const cfg = ctx.context.core.config?.();
      const described = Object.fromEntries([...targets].flatMap((id) => {
        const t = cfg?.targets.get(id);
        if (!t) return [];
        const profile = t.profile !== undefined ? cfg?.profiles.get(t.profile) : undefined;
        return [[id, { protocol: t.protocol, zone: t.zone, ...(profile ? { profile } : {}) }]];
      }));
      return { events, next, size: j.size(), first_retained: j.firstRetained(), targets: described };
    },
  }),
  'journal.prove': defineCommand({
    mutates: false,
    params: z.strictObject({ seq }),
    handler: async (p, ctx) => journalOf(ctx).proveBundle(p.seq),
  }),
};
