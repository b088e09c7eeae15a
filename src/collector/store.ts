// What the collector keeps in PostgreSQL (schema.ts): verified events and checkpoints, the verifier's
// position per appliance, and alerts. The rule that makes a SIGKILL at any moment harmless: a batch's
// events, its checkpoint and the new position are one transaction, guarded by the position it started
// from, and the JetStream consumer is always recreated from that stored position.
import type pg from 'pg';
import type { Hash } from '../journal/merkle.ts';
import type { Batch, Position, Violation } from './verifier.ts';

export interface ApplianceRow {
  appliance: string;
  position: Position;
  checkpointSize: number;
  state: 'running' | 'stopped';
  stopReason: string | null;
  stopDetail: Record<string, unknown> | null;
  updatedAt: Date;
}

/** Why a commit did not happen (nothing was written). */
export type CommitRefusal =
  /** The stored position is not the one the batch started from: another collector moved it, or a stop. */
  | { kind: 'moved' }
  /** A row already stored under this key holds other bytes. */
  | { kind: 'conflict'; seq?: number; checkpointSize?: number };

const bytes = (h: Buffer | Uint8Array | null): Hash | null => (h ? new Uint8Array(h) : null);

export class CollectorStore {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /** The appliance's row, created at the start of its tree when it has none. */
  async load(appliance: string): Promise<ApplianceRow> {
    await this.#pool.query('INSERT INTO appliances (appliance) VALUES ($1) ON CONFLICT DO NOTHING', [appliance]);
    const r = await this.#pool.query('SELECT * FROM appliances WHERE appliance = $1', [appliance]);
    return toRow(r.rows[0]);
  }

  async rows(): Promise<ApplianceRow[]> {
    const r = await this.#pool.query('SELECT * FROM appliances ORDER BY appliance');
    return r.rows.map(toRow);
  }

  /** Bodies stored for these seqs (to compare a resend with). */
  async bodies(appliance: string, seqs: readonly number[]): Promise<Map<number, string>> {
    const r = await this.#pool.query<{ seq: string; body: string }>('SELECT seq, body FROM events WHERE appliance = $1 AND seq = ANY($2::bigint[])', [appliance, seqs]);
    return new Map(r.rows.map((row) => [Number(row.seq), row.body]));
  }

  async checkpointNote(appliance: string, size: number): Promise<string | undefined> {
    const r = await this.#pool.query<{ note: string }>('SELECT note FROM checkpoints WHERE appliance = $1 AND size = $2', [appliance, size]);
    return r.rows[0]?.note;
  }

  /** Events, checkpoint and position in one transaction, or nothing. */
  async commit(appliance: string, batch: Batch): Promise<{ ok: true } | CommitRefusal> {
    const client = await this.#pool.connect();
    let done = false;
    try {
      await client.query('BEGIN');
      const cur = await client.query<{ next_seq: string; stream_seq: string; state: string }>('SELECT next_seq, stream_seq, state FROM appliances WHERE appliance = $1 FOR UPDATE', [appliance]);
      const row = cur.rows[0];
      if (!row || row.state !== 'running' || Number(row.next_seq) !== batch.from.next || Number(row.stream_seq) !== batch.from.streamSeq) {
        await client.query('ROLLBACK');
        done = true;
        return { kind: 'moved' };
      }
      const ev = batch.events;
      if (ev.length > 0) {
        const inserted = await client.query<{ seq: string }>(
          `INSERT INTO events (appliance, seq, time, code, event, principal, target, session, body)
           SELECT $1, * FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
           ON CONFLICT (appliance, seq) DO NOTHING RETURNING seq`,
          [appliance, ev.map((e) => e.seq), ev.map((e) => e.time), ev.map((e) => e.code), ev.map((e) => e.event), ev.map((e) => e.principal), ev.map((e) => e.target), ev.map((e) => e.session), ev.map((e) => e.text)],
        );
        if (inserted.rowCount !== ev.length) {
          // Rows already there (written outside this position's history): only byte-identical ones pass.
          const fresh = new Set(inserted.rows.map((r) => Number(r.seq)));
          const existing = ev.filter((e) => !fresh.has(e.seq));
          const stored = await client.query<{ seq: string; body: string }>('SELECT seq, body FROM events WHERE appliance = $1 AND seq = ANY($2::bigint[])', [appliance, existing.map((e) => e.seq)]);
          const bodies = new Map(stored.rows.map((r) => [Number(r.seq), r.body]));
          const differing = existing.find((e) => bodies.get(e.seq) !== e.text);
          if (differing) {
            await client.query('ROLLBACK');
            done = true;
            return { kind: 'conflict', seq: differing.seq };
          }
        }
      }
      const cp = batch.checkpoint;
      const cpIns = await client.query('INSERT INTO checkpoints (appliance, size, root_hash, note) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [appliance, cp.size, Buffer.from(cp.rootHash), cp.note]);
      if (cpIns.rowCount === 0) {
        const stored = await client.query<{ root_hash: Buffer }>('SELECT root_hash FROM checkpoints WHERE appliance = $1 AND size = $2', [appliance, cp.size]);
        if (!Buffer.from(cp.rootHash).equals(stored.rows[0]!.root_hash)) {
          await client.query('ROLLBACK');
          done = true;
          return { kind: 'conflict', checkpointSize: cp.size };
        }
      }
      const to = batch.to;
      await client.query(
        `UPDATE appliances SET next_seq = $2, frontier = $3, checkpoint_size = $2, root_hash = $4, stream_seq = $5, updated_at = now() WHERE appliance = $1`,
        [appliance, to.next, to.frontier.map((h) => Buffer.from(h)), to.rootHash ? Buffer.from(to.rootHash) : null, to.streamSeq],
      );
      await client.query('COMMIT');
      done = true;
      return { ok: true };
    } finally {
      // A failure mid-transaction (connection lost): the pool must not hand this client out again.
      client.release(done ? undefined : true);
    }
  }

  /** Stops the appliance and raises the alert, in one transaction. */
  async stop(violation: Violation, collector: string): Promise<void> {
    const d = violation.details;
    const client = await this.#pool.connect();
    let done = false;
    try {
      await client.query('BEGIN');
      await client.query(`UPDATE appliances SET state = 'stopped', stop_reason = $2, stop_detail = $3, updated_at = now() WHERE appliance = $1`, [d.appliance, violation.code, { ...d, message: violation.message }]);
      await client.query('INSERT INTO collector_alerts (appliance, code, detail, collector) VALUES ($1, $2, $3, $4)', [d.appliance, violation.code, { ...d, message: violation.message }, collector]);
      await client.query('COMMIT');
      done = true;
    } finally {
      client.release(done ? undefined : true);
    }
  }

  /** Clears a stop: verification retries from the stored position. False when it was not stopped. */
  async resume(appliance: string, collector: string, by: string): Promise<boolean> {
    const client = await this.#pool.connect();
    let done = false;
    try {
      await client.query('BEGIN');
      const r = await client.query<{ stop_reason: string; stop_detail: unknown }>(`SELECT stop_reason, stop_detail FROM appliances WHERE appliance = $1 AND state = 'stopped' FOR UPDATE`, [appliance]);
      const was = r.rows[0];
      if (was) {
        await client.query(`UPDATE appliances SET state = 'running', stop_reason = NULL, stop_detail = NULL, updated_at = now() WHERE appliance = $1`, [appliance]);
        await client.query('INSERT INTO collector_alerts (appliance, code, detail, collector) VALUES ($1, $2, $3, $4)', [appliance, 'resumed', { by, was: { reason: was.stop_reason, detail: was.stop_detail } }, collector]);
      }
      await client.query('COMMIT');
      done = true;
      return was !== undefined;
    } finally {
      client.release(done ? undefined : true);
    }
  }
}

function toRow(r: Record<string, unknown>): ApplianceRow {
  return {
    appliance: r.appliance as string,
    position: {
      next: Number(r.next_seq),
      frontier: (r.frontier as Buffer[]).map((h) => new Uint8Array(h)),
      rootHash: bytes(r.root_hash as Buffer | null),
      streamSeq: Number(r.stream_seq),
    },
    checkpointSize: Number(r.checkpoint_size),
    state: r.state as 'running' | 'stopped',
    stopReason: (r.stop_reason as string | null) ?? null,
    stopDetail: (r.stop_detail as Record<string, unknown> | null) ?? null,
    updatedAt: r.updated_at as Date,
  };
}
