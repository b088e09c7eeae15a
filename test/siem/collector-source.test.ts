// The collector's side of SIEM export against a real PostgreSQL and the real rsyslog: rows of the events
// table (the brief's columns, created here as the collector creates them) go out in id order across
// appliances, the cursor in siem_cursors lets a new exporter resume, and a row whose transaction commits
// after a later id was visible is not skipped.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { pino } from 'pino';
import { collectorSource } from '../../src/siem/collector-source.ts';
import { siemExportSchema, startSiemExports } from '../../src/siem/exporter.ts';
import { EVENT_CODES } from '../../src/journal/codes.ts';
import { canonicalJson } from '../../src/journal/canonical.ts';
import { makeTestPki, type TestPki } from '../sync/certs.ts';
import { startPostgres, type Postgres } from '../peers/postgres.ts';
import { startRsyslog, type Rsyslog } from '../peers/rsyslog.ts';
import { until } from '../support.ts';

const log = pino({ level: process.env.PENSTOCK_TEST_LOG ?? 'silent' });
let pki: TestPki;
let postgres: Postgres;
let rs: Rsyslog;

before(async () => {
  pki = makeTestPki();
  postgres = await startPostgres();
  rs = await startRsyslog({ ca: pki.ca.certPath, cert: pki.server.certPath, key: pki.server.keyPath });
});
after(async () => {
  await rs?.close();
  await postgres?.stop();
  pki?.cleanup();
});

const EVENTS_DDL = `CREATE TABLE events (
  id bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  appliance text NOT NULL, seq bigint NOT NULL, time timestamptz NOT NULL, code text NOT NULL, event text NOT NULL,
  principal text, target text, session text, body text NOT NULL,
  PRIMARY KEY (appliance, seq))`;

function row(appliance: string, seq: number) {
  const e = { seq, time: new Date(Date.UTC(2026, 11, 5, 10, 0, 0, seq)).toISOString(), mono: String(seq), code: EVENT_CODES['action.allowed']!, event: 'action.allowed', appliance, principal: 'vendor-acme', target: 'plc-1', session: 's1', detail: { n: seq } };
  return [appliance, seq, e.time, e.code, e.event, e.principal, e.target, e.session, canonicalJson(e)];
}
const INSERT = 'INSERT INTO events (appliance, seq, time, code, event, principal, target, session, body) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)';

function uids(): string[] {
  return rs.messages().map((l) => (JSON.parse(l) as { metadata: { uid: string } }).metadata.uid);
}

test('rows go out in id order across appliances, and a new exporter resumes from siem_cursors', async () => {
  const url = await postgres.createDatabase('collector_order');
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const base = rs.messages().length;
  try {
    await pool.query(EVENTS_DDL);
    const order: string[] = [];
    for (let i = 0; i < 30; i++) {
      for (const a of ['gw-a', 'gw-b']) {
        await pool.query(INSERT, row(a, i));
        order.push(`${a}:${i}`);
      }
    }
    // A rolled-back insert leaves a hole in the ids; it must not stop the export. On one connection:
    // each pool.query may take any idle client, and a transaction is a connection's.
    const tx = await pool.connect();
    try {
      await tx.query('BEGIN');
      await tx.query(INSERT, row('gw-c', 0));
      await tx.query('ROLLBACK');
    } finally {
      tx.release();
    }
    await pool.query(INSERT, row('gw-c', 1));
    order.push('gw-c:1');
    const cfg = siemExportSchema.parse({ id: 'central-soc', host: '127.0.0.1', port: rs.port, tls: { ca: pki.ca.certPath }, batch: 7 });
    let exports = await startSiemExports([cfg], await collectorSource(pool, { pollMs: 50 }), log);
    await until(() => uids().length - base >= order.length, 'every row in rsyslog');
    assert.deepEqual(uids().slice(base), order, 'in id order, each once');
    const r0 = JSON.parse(rs.messages()[base]!);
    assert.equal(r0.metadata.log_name, 'collector');
    assert.equal(r0.class_uid, 6003);
    await exports.stop();
    const cursor = await pool.query('SELECT last_id FROM siem_cursors WHERE name = $1', ['central-soc']);
    const maxId = await pool.query('SELECT max(id) AS m FROM events');
    assert.equal(cursor.rows[0].last_id, maxId.rows[0].m);

    for (let i = 30; i < 35; i++) {
      await pool.query(INSERT, row('gw-a', i));
      order.push(`gw-a:${i}`);
    }
    exports = await startSiemExports([cfg], await collectorSource(pool, { pollMs: 50 }), log);
    await until(() => uids().length - base >= order.length, 'the new rows');
    await exports.stop();
    assert.deepEqual(uids().slice(base), order, 'resumed after the cursor: nothing again, nothing missing');
  } finally {
    await pool.end();
  }
});

test('a row whose transaction commits after a later id is visible is still exported, before it', async () => {
  const url = await postgres.createDatabase('collector_holes');
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const base = rs.messages().length;
  const slow = new pg.Client({ connectionString: url });
  await slow.connect();
  try {
    await pool.query(EVENTS_DDL);
    await slow.query('BEGIN');
    await slow.query(INSERT, row('gw-slow', 0)); // takes id 1, not committed yet
    await pool.query(INSERT, row('gw-fast', 0)); // takes id 2, committed
    const cfg = siemExportSchema.parse({ id: 'holes', host: '127.0.0.1', port: rs.port, tls: { ca: pki.ca.certPath } });
    // Count the reads, to know the exporter has looked at the hole several times.
    const source = await collectorSource(pool, { pollMs: 50, holeWaitMs: 100 });
    let reads = 0;
    const read = source.read;
    source.read = (a, l) => (reads++, read(a, l));
    const exports = await startSiemExports([cfg], source, log);
    try {
      await until(() => reads >= 5, 'the exporter to read past the hole a few times');
      assert.deepEqual(uids().slice(base), [], 'id 2 is held back while id 1 may still come');
      await slow.query('COMMIT');
      await until(() => uids().length - base >= 2, 'both rows');
      assert.deepEqual(uids().slice(base), ['gw-slow:0', 'gw-fast:0']);
    } finally {
      await exports.stop();
    }
  } finally {
    await slow.end();
    await pool.end();
  }
});

test('PostgreSQL going away stops the export with source_failed in status; it resumes where it was when the database returns', async () => {
  const url = await postgres.createDatabase('collector_outage');
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {}); // idle clients die with the server; the exporter reports the failure itself
  const base = rs.messages().length;
  try {
    await pool.query(EVENTS_DDL);
    const order: string[] = [];
    for (let i = 0; i < 5; i++) {
      await pool.query(INSERT, row('gw-o', i));
      order.push(`gw-o:${i}`);
    }
    const cfg = siemExportSchema.parse({ id: 'outage', host: '127.0.0.1', port: rs.port, tls: { ca: pki.ca.certPath }, settle_ms: 0 });
    const exports = await startSiemExports([cfg], await collectorSource(pool, { pollMs: 50 }), log);
    try {
      await until(() => uids().length - base >= order.length, 'the first rows');
      await postgres.kill();
      await until(() => exports.status()[0]!.last_error?.code === 'source_failed', 'status to say the source failed', 60_000);
      await postgres.start();
      for (let i = 5; i < 10; i++) {
        // A killed PostgreSQL recovers before it takes writes again: slow on a loaded machine.
        await until(async () => pool.query(INSERT, row('gw-o', i)).then(() => true, () => false), 'an insert after the restart', 60_000);
        order.push(`gw-o:${i}`);
      }
      await until(() => uids().length - base >= order.length, 'the rows written after the outage', 60_000);
      assert.deepEqual(uids().slice(base), order, 'nothing lost, nothing twice, in order');
      assert.equal(exports.status()[0]!.connects, 1, 'the syslog connection stayed up through the database outage');
    } finally {
      await exports.stop();
    }
  } finally {
    await pool.end();
  }
});

test('a read whose connection is cut mid-transaction fails that read, and the pool does not hand the dead client out again', async () => {
  const url = await postgres.createDatabase('collector_cut');
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {}); // the pool hears the dead client once it is back; the read reports the failure itself
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await pool.query(EVENTS_DDL);
    await pool.query(INSERT, row('gw-cut', 0));
    const source = await collectorSource(pool, { pollMs: 50 });
    // Hold the table so the read waits inside its transaction, then cut that backend: the server's FATAL
    // fails the SELECT, and the socket's end fails the ROLLBACK and is emitted on the still-checked-out
    // client. Unheard, that 'error' is an uncaught exception (this test fails with it).
    await admin.query('BEGIN');
    await admin.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
    const read = source.read(-1, 10);
    let reader: number | undefined;
    await until(async () => {
      // Asked on a pooled connection outside any transaction: inside admin's, pg_stat_activity would stay
      // the snapshot its first look took.
      const r = await pool.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT id, body FROM events%'");
      reader = r.rows[0]?.pid;
      return reader !== undefined;
    }, 'the read to wait for the lock');
    await admin.query('SELECT pg_terminate_backend($1)', [reader]);
    await assert.rejects(read, /terminat/i);
    await admin.query('COMMIT');
    const again = await source.read(-1, 10);
    assert.deepEqual(again.items.map((i) => i.event.appliance), ['gw-cut'], 'the next read gets a live connection');
  } finally {
    await admin.end();
    await pool.end();
  }
});
