// events.follow: the live stream behind `penstockctl watch`. After its reply (the header: where the
// journal stands, how often sessions come) the connection carries one JSON line per committed event
// that passes the filter, a `sessions` snapshot now and then, and `lost` notices, until the client
// closes. It changes nothing: one follow is one counted read (server.ts), never one record per event.
import { z } from 'zod';
import { PenstockError } from '../common/errors.ts';
import { defineCommand } from './commands.ts';
import { EVENT_KINDS, EventHub, SEVERITIES, type CommittedSource } from './event-stream.ts';
import { DeferredSink, StreamReply } from './stream.ts';
import type { AdminCommandTable, AdminContext } from './types.ts';

/** One hub per daemon context, made when the first watcher comes. */
const hubs = new WeakMap<AdminContext, EventHub>();

function hubOf(context: AdminContext): EventHub {
  let hub = hubs.get(context);
  if (hub) return hub;
  const journal = context.journal as Partial<CommittedSource> | undefined;
  if (!journal || typeof journal.onCommitted !== 'function') throw new PenstockError('PS_ADMIN_UNKNOWN_COMMAND', 'this daemon has no journal to follow');
  hub = new EventHub({
    journal: journal as CommittedSource,
    sessions: () => context.core.sessions.list().map((s) => s.view()),
    now: () => context.core.clock.now(),
  });
  hubs.set(context, hub);
  return hub;
}

const id = z.string().min(1).max(128);

export const eventCommands: AdminCommandTable = {
  'events.follow': defineCommand({
    mutates: false,
    params: z.strictObject({
      principal: id.optional(),
      target: id.optional(),
      severity: z.enum(SEVERITIES).optional(),
      kinds: z.array(z.enum(EVENT_KINDS)).min(1).max(EVENT_KINDS.length).optional(),
    }),
    handler: async (p, { context }) => {
      const hub = hubOf(context);
      // Follow now, in the same turn as the journal's size is read: every event from next_seq on is
      // streamed (or told lost), held until the server has written the header.
      const size = (context.journal as { size?: () => number }).size?.();
      const sink = new DeferredSink();
      const stop = hub.follow(sink, p);
      const header = { following: 'events', ...(size !== undefined ? { next_seq: size } : {}), sessions_every_ms: hub.sessionsEveryMs };
      return new StreamReply(header, (socket) => (sink.attach(socket), stop), stop);
    },
  }),
};
