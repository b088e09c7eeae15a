// journal.* admin commands: read, verify, export and prove the evidence journal on the gateway.
// None changes state, so none is audited before it runs; all are bounded in size.
import { z } from 'zod';
import { PenstockError } from '../common/errors.ts';
import type { LmdbJournal } from '../journal/journal.ts';
import { defineCommand } from './commands.ts';
import type { AdminCommandTable, CommandContext } from './types.ts';

/** At most this many events per tail/export request; penstockctl pages through larger exports. */
export const MAX_EVENTS_PER_REQUEST = 2000;

function journalOf(ctx: CommandContext): LmdbJournal {
  const j = ctx.context.journal as LmdbJournal | undefined;
  if (!j) throw new PenstockError('PS_ADMIN_UNKNOWN_COMMAND', 'this daemon has no journal');
  return j;
}

const seq = z.number().int().min(0);

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
    params: z.strictObject({}),
    handler: async (_p, ctx) => {
      const j = journalOf(ctx);
      const started = performance.now();
      const result = j.verifyAll();
      return { ...result, checkpoint: j.latestCheckpoint(), seconds: (performance.now() - started) / 1000 };
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
  'journal.prove': defineCommand({
    mutates: false,
    params: z.strictObject({ seq }),
    handler: async (p, ctx) => journalOf(ctx).proveBundle(p.seq),
  }),
};
