// The collector's PostgreSQL `events` table as a SIEM source: positions are `events.id` (an identity
// column: insertion order across appliances), each row's `body` is the event's canonical JSON, and each
// export's cursor is a row of `siem_cursors` (created here if missing).
//
// Ids are taken when a row is inserted but become visible when its transaction commits, so with several
// collectors writing, id 41 can appear after id 42 was read. A read that sees a hole in the ids while
// other transactions are in progress waits (briefly) for those transactions, then reads again: a row can
// only fill a hole if its transaction was running. If they do not finish in time, only the rows below the
// first hole go out, and the hole is looked at again next time. A hole left by a rolled-back insert stays
// a hole; it is passed once no transaction that could fill it is still running. Holes are not losses
// (identity values are used up by rollbacks), so they are not counted as skipped.
import type pg from 'pg';
import type { StoredEvent } from '../journal/event.ts';
import type { SiemSource, SourceItem } from './exporter.ts';

export interface CollectorSourceOptions {
  /** How often an idle export looks for new rows (ms). */
  pollMs?: number;
  /** How long a read waits for transactions that may fill a hole in the ids (ms). */
  holeWaitMs?: number;
}

const CURSORS_DDL = 'CREATE TABLE IF NOT EXISTS siem_cursors (name text PRIMARY KEY, last_id bigint NOT NULL)';

export async function collectorSource(pool: pg.Pool, opts: CollectorSourceOptions = {}): Promise<SiemSource> {
  await pool.query(CURSORS_DDL);
  const holeWaitMs = opts.holeWaitMs ?? 2000;
  return {
    name: 'collector',
    pollMs: opts.pollMs ?? 1000,
    cursor: async (id) => {
      const r = await pool.query<{ last_id: string }>('SELECT last_id FROM siem_cursors WHERE name = $1', [id]);
      return r.rows[0] ? Number(r.rows[0].last_id) : -1;
    },
    commit: async (id, pos) => {
      await pool.query('INSERT INTO siem_cursors (name, last_id) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET last_id = GREATEST(siem_cursors.last_id, EXCLUDED.last_id)', [id, pos]);
    },
    read: async (after, limit) => {
      const first = await snapshotRead(pool, after, limit);
      if (first.items.length === 0 || contiguous(first.items, after) || first.running.length === 0) return { items: first.items, skipped: 0 };
      // A hole, and transactions that may fill it: wait for them, then read the same range again.
      if (await finished(pool, first.running, holeWaitMs)) {
        const again = await snapshotRead(pool, after, limit);
        const upTo = first.items.at(-1)!.pos;
        return { items: again.items.filter((i) => i.pos <= upTo), skipped: 0 };
      }
      return { items: beforeFirstHole(first.items, after), skipped: 0 };
    },
    head: async () => {
      const r = await pool.query<{ max: string | null }>('SELECT max(id) AS max FROM events');
      return r.rows[0]?.max == null ? -1 : Number(r.rows[0].max);
    },
    onNew: () => () => {},
  };
}

/** Rows after `after` and the transactions in progress, from one snapshot. */
async function snapshotRead(pool: pg.Pool, after: number, limit: number): Promise<{ items: SourceItem[]; running: string[] }> {
  const client = await pool.connect();
  // A lost connection fails the query under way and is also emitted on the client; checked out, the
  // client has no listener of the pool's, and an unheard 'error' would take the process down.
  const lost = (): void => {};
  client.on('error', lost);
  let failed: Error | undefined;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const xip = await client.query<{ xid: string }>('SELECT pg_snapshot_xip(pg_current_snapshot())::text AS xid');
    const rows = await client.query<{ id: string; body: string }>('SELECT id, body FROM events WHERE id > $1 ORDER BY id LIMIT $2', [after, limit]);
    await client.query('COMMIT');
    return { items: rows.rows.map((r) => ({ pos: Number(r.id), event: JSON.parse(r.body) as StoredEvent })), running: xip.rows.map((r) => r.xid) };
  } catch (err) {
    failed = err as Error;
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.removeListener('error', lost);
    // A client that failed mid-transaction is not handed out again.
    client.release(failed);
  }
}

/** True once none of `xids` is still in progress (polled), false when `waitMs` ran out first. */
async function finished(pool: pg.Pool, xids: string[], waitMs: number): Promise<boolean> {
  const end = Date.now() + waitMs;
  for (;;) {
    const r = await pool.query<{ n: string }>("SELECT count(*) AS n FROM unnest($1::xid8[]) AS x WHERE pg_xact_status(x) = 'in progress'", [xids]);
    if (Number(r.rows[0]!.n) === 0) return true;
    if (Date.now() > end) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function contiguous(items: SourceItem[], after: number): boolean {
  return items.every((it, i) => it.pos === after + 1 + i);
}

function beforeFirstHole(items: SourceItem[], after: number): SourceItem[] {
  let n = 0;
  while (n < items.length && items[n]!.pos === after + 1 + n) n++;
  return items.slice(0, n);
}
