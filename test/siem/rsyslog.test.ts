// The gateway's SIEM export against the real rsyslog (imtcp over TLS, octet-counted framing): what rsyslog
// wrote to disk is parsed as OCSF JSON and every journal event is found in it; rsyslog stopped and started
// again mid-stream loses nothing; the cursor survives a restart of the journal; a receiver the pinned CA
// did not sign is refused, and status says so.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { systemClock } from '../../src/common/clock.ts';
import { LmdbJournal } from '../../src/journal/journal.ts';
import type { JournalEventInput } from '../../src/journal/types.ts';
import { siemExportSchema, startSiemExports, journalSource, type SiemExports } from '../../src/siem/exporter.ts';
import { generateSigningKeyPem } from '../../src/journal/checkpoint.ts';
import { makeTestPki, type TestPki } from '../sync/certs.ts';
import { startRsyslog, type Rsyslog } from '../peers/rsyslog.ts';
import { tempDir, until } from '../support.ts';

const APPLIANCE = 'penstock/gw-siem-01';
const KEY = generateSigningKeyPem();
const log = pino({ level: process.env.PENSTOCK_TEST_LOG ?? 'silent' });
let pki: TestPki;

before(() => {
  pki = makeTestPki();
});
after(() => pki.cleanup());

function openJournal(path: string): Promise<LmdbJournal> {
  return LmdbJournal.open({ path, mapSizeMiB: 256, appliance: APPLIANCE, signingKeyPem: KEY, clock: systemClock, checkpointEvery: 1000, checkpointSeconds: 3600 });
}

function exportConfig(rs: Rsyslog, extra: Record<string, unknown> = {}) {
  return siemExportSchema.parse({ id: 'soc', host: '127.0.0.1', port: rs.port, tls: { ca: pki.ca.certPath }, ...extra });
}

async function startRs(): Promise<Rsyslog> {
  return startRsyslog({ ca: pki.ca.certPath, cert: pki.server.certPath, key: pki.server.keyPath });
}

/** The OCSF records rsyslog wrote, by metadata.uid, with how many times each came. */
function received(rs: Rsyslog): { records: Map<string, Record<string, any>>; copies: Map<string, number>; total: number } {
  const records = new Map<string, Record<string, any>>();
  const copies = new Map<string, number>();
  const lines = rs.messages();
  for (const line of lines) {
    const r = JSON.parse(line) as Record<string, any>;
    records.set(r.metadata.uid, r);
    copies.set(r.metadata.uid, (copies.get(r.metadata.uid) ?? 0) + 1);
  }
  return { records, copies, total: lines.length };
}

const uid = (seq: number) => `${APPLIANCE}:${seq}`;

/** A mix of what a gateway journals: sessions, actions on two doors, a failed login, an agent's call, an alert. */
function sampleEvents(i: number): JournalEventInput[] {
  return [
    { event: 'session.opened', session: `s${i}`, principal: 'vendor-acme', chain: ['vendor-acme', 'work-order:WO-4411'], target: 'plc-1', listener: 'modbus-tls', detail: { protocol: 'modbus', remote: '127.0.0.1:40122', attributes: { task: 'WO-4411' } } },
    {
      event: 'action.allowed', session: `s${i}`, principal: 'vendor-acme', target: 'plc-1', listener: 'modbus-tls',
      action: { target: 'plc-1', verb: 'write', object: { kind: 'modbus', unit: 1, functionCode: 6, table: 'holding_register', address: 100 + i, quantity: 1, values: [i] } },
      decision: { effect: 'allow', reason: 'rule_allows', grant: 'g-acme', rule: 'g-acme#0', explanation: 'rule g-acme#0 allows writes to 100-199' },
    },
    {
      event: 'action.denied', session: `t${i}`, principal: 'tech-ssh', target: 'hmi-1', listener: 'ssh',
      action: { target: 'hmi-1', verb: 'exec', object: { kind: 'ssh', channel: 'exec', commandLine: 'rm -rf /', argv: ['rm', '-rf', '/'], metacharacters: false } },
      decision: { effect: 'deny', reason: 'object_not_granted', grant: 'g-ssh', explanation: 'no rule names rm' },
    },
    { event: 'auth.failed', listener: 'ssh', detail: { protocol: 'ssh', remote: '[::1]:50022', reason: 'unknown_key', note: `line one\nline two ü 🙂 "quoted" ] \\ end ${i}` } },
    { event: 'mcp.tool_called', session: `m${i}`, principal: 'agent-7', chain: ['agent-7', 'vendor-acme'], listener: 'mcp', detail: { tool: 'modbus_write', correlation: `c-${i}` } },
    { event: 'alert.probing', principal: 'tech-ssh', target: 'hmi-1', detail: { denials: 12 } },
  ];
}

async function appendSamples(j: LmdbJournal, rounds: number, from = 0): Promise<void> {
  for (let i = from; i < from + rounds; i++) await Promise.all(sampleEvents(i).map((e) => j.append(e)));
}

test('every journal event reaches rsyslog as OCSF JSON, with the RFC 5424 header and structured data', async () => {
  const { dir, cleanup } = tempDir('penstock-siem-');
  const rs = await startRs();
  const journal = await openJournal(dir);
  let exports: SiemExports | undefined;
  try {
    await appendSamples(journal, 20);
    exports = await startSiemExports([exportConfig(rs, { settle_ms: 0 })], journalSource(journal), log, { productVersion: '0.1.0' });
    await appendSamples(journal, 20, 20);
    const size = journal.size();
    await until(() => received(rs).records.size >= size, `rsyslog to write ${size} records`, 30_000);
    const { records } = received(rs);
    for (let seq = 0; seq < size; seq++) assert.ok(records.has(uid(seq)), `seq ${seq} in rsyslog's file`);
    const stored = journal.readEvents(0, size).map((r) => JSON.parse(r.bytes));
    for (const e of stored) {
      const r = records.get(uid(e.seq))!;
      assert.equal(r.metadata.event_code, e.code);
      assert.equal(r.metadata.original_time, e.time);
      assert.equal(r.time, Date.parse(e.time));
      assert.equal(r.type_uid, r.class_uid * 100 + r.activity_id);
      assert.equal(r.metadata.product.name, 'Penstock');
      assert.deepEqual(r.unmapped.penstock.detail, e.detail, `seq ${e.seq}: the journal's detail, byte for byte through syslog`);
      const want = { 'session.opened': 3003, 'action.allowed': 6003, 'action.denied': 4007, 'auth.failed': 3002, 'mcp.tool_called': 6003, 'alert.probing': 2004, 'daemon.started': 6002 }[e.event as string];
      assert.equal(r.class_uid, want, `${e.event} → class ${want}`);
    }
    const denied = [...records.values()].find((r) => r.unmapped.penstock.event === 'action.denied')!;
    assert.equal(denied.status_id, 2);
    assert.equal(denied.activity_id, 5, 'an SSH exec refused is SSH Activity: Refuse');
    assert.equal(denied.actor.user.uid, 'tech-ssh');
    const allowed = [...records.values()].find((r) => r.unmapped.penstock.event === 'action.allowed')!;
    assert.equal(allowed.status_id, 1);
    assert.equal(allowed.activity_id, 3, 'a Modbus write is API Activity: Update');
    assert.equal(allowed.api.service.name, 'modbus');
    assert.equal(allowed.actor.authorizations[0].policy.uid, 'g-acme#0');
    const opened = [...records.values()].find((r) => r.unmapped.penstock.event === 'session.opened')!;
    assert.deepEqual(opened.src_endpoint, { ip: '127.0.0.1', port: 40122 });
    assert.deepEqual(opened.unmapped.penstock.chain, ['vendor-acme', 'work-order:WO-4411']);
    const agent = [...records.values()].find((r) => r.unmapped.penstock.event === 'mcp.tool_called')!;
    assert.deepEqual(agent.metadata.profiles, ['ai_operation']);
    const failed = [...records.values()].find((r) => r.unmapped.penstock.event === 'auth.failed')!;
    assert.match(failed.unmapped.penstock.detail.note, /^line one\nline two ü 🙂 "quoted" \] \\ end \d+$/);

    // Headers: PRI (facility audit 13 × 8 + severity), HOSTNAME = appliance, MSGID = code, SD with seq.
    const headers = rs.headers();
    const first = headers.find((h) => h.includes('seq="1"'))!;
    assert.match(first, new RegExp(`^\\d+ ${APPLIANCE.replace('/', '\\/')} penstock \\d+ PS\\d{4}[IWE] \\[penstock@32473 appliance="penstock/gw-siem-01" seq="1" event="[a-z_.]+"\\]$`));
    const warning = headers.find((h) => h.includes('event="action.denied"'))!;
    assert.equal(warning.split(' ')[0], String(13 * 8 + 4));

    await until(() => journal.cursor('siem:soc') === size - 1, 'the cursor to reach the last event');
    const s = exports.status()[0]!;
    assert.equal(s.lag, 0);
    assert.equal(s.state, 'connected');
    console.log(`example line rsyslog wrote: ${rs.messages().find((l) => l.includes('"action.allowed"'))}`);
  } finally {
    await exports?.stop();
    await journal.close();
    await rs.close();
    cleanup();
  }
});

test('rsyslog stopped and started again mid-stream: every event arrives (duplicates counted, none lost)', async () => {
  const { dir, cleanup } = tempDir('penstock-siem-');
  const rs = await startRs();
  const journal = await openJournal(dir);
  const exports = await startSiemExports([exportConfig(rs, { settle_ms: 1000, batch: 200 })], journalSource(journal), log);
  try {
    const rounds = 200;
    for (let i = 0; i < rounds; i++) {
      await Promise.all(sampleEvents(i).map((e) => journal.append(e)));
      if (i === 60) await rs.stop();
      if (i === 60) await until(() => exports.status()[0]!.last_error !== undefined, 'the export to notice rsyslog went away');
      if (i === 120) await rs.start();
      if (i % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    const size = journal.size();
    await until(() => received(rs).records.size >= size, `rsyslog to hold all ${size} events`, 60_000);
    const { records, total } = received(rs);
    for (let seq = 0; seq < size; seq++) assert.ok(records.has(uid(seq)), `seq ${seq} arrived`);
    const s = exports.status()[0]!;
    assert.ok(s.connects >= 2, 'reconnected');
    assert.ok(['connection_lost', 'connect_failed'].includes(s.last_error!.code), `last error ${s.last_error!.code}`);
    await until(() => journal.cursor('siem:soc') === size - 1, 'the cursor to reach the end');
    console.log(`restart mid-stream: ${size} events, ${total} messages received, ${total - size} duplicates`);
  } finally {
    await exports.stop();
    await journal.close();
    await rs.close();
    cleanup();
  }
});

test('the cursor survives a restart: the export resumes after what it delivered, a clean stop leaves no duplicates', async () => {
  const { dir, cleanup } = tempDir('penstock-siem-');
  const rs = await startRs();
  try {
    let journal = await openJournal(dir);
    await appendSamples(journal, 10);
    let exports = await startSiemExports([exportConfig(rs)], journalSource(journal), log);
    await until(() => received(rs).records.size >= journal.size(), 'the first export');
    await exports.stop();
    assert.equal(journal.cursor('siem:soc'), journal.size() - 1, 'a clean stop (the receiver closed after reading) moves the cursor over everything written');
    await journal.close();

    journal = await openJournal(dir);
    await appendSamples(journal, 10, 10);
    exports = await startSiemExports([exportConfig(rs)], journalSource(journal), log);
    await until(() => received(rs).records.size >= journal.size(), 'the rest after the restart');
    await exports.stop();
    const { records, total } = received(rs);
    assert.equal(records.size, journal.size());
    assert.equal(total, journal.size(), 'nothing sent twice');
    await journal.close();
  } finally {
    await rs.close();
    cleanup();
  }
});

test('a receiver whose certificate the pinned CA did not sign is refused, and status says why', async () => {
  const { dir, cleanup } = tempDir('penstock-siem-');
  const rs = await startRs();
  const journal = await openJournal(dir);
  await appendSamples(journal, 2);
  const wrongCa = siemExportSchema.parse({ id: 'wrong-ca', host: '127.0.0.1', port: rs.port, tls: { ca: pki.otherCa.certPath } });
  const wrongName = siemExportSchema.parse({ id: 'wrong-name', host: '127.0.0.1', port: rs.port, tls: { ca: pki.ca.certPath, server_name: 'siem.example.org' } });
  const exports = await startSiemExports([wrongCa, wrongName], journalSource(journal), log);
  try {
    const [a, b] = await until(() => {
      const [x, y] = exports.status();
      return x!.last_error && y!.last_error ? [x!, y!] : undefined;
    }, 'both exports to fail');
    assert.equal(a.last_error!.code, 'tls_untrusted');
    assert.equal(b.last_error!.code, 'tls_name_mismatch');
    assert.equal(a.cursor, -1);
    assert.equal(a.exported, 0);
    assert.equal(journal.cursor('siem:wrong-ca'), -1);
    assert.deepEqual(rs.messages(), [], 'rsyslog received nothing');
  } finally {
    await exports.stop();
    await journal.close();
    await rs.close();
    cleanup();
  }
});

test('the rsyslog fixture fails at once, with rsyslog\'s own words, when rsyslog cannot start', async () => {
  const t0 = Date.now();
  await assert.rejects(startRsyslog({ ca: '/nonexistent/ca.pem', cert: pki.server.certPath, key: pki.server.keyPath }), /defaultnetstreamdrivercafile file '\/nonexistent\/ca\.pem' could not be accessed/i);
  assert.ok(Date.now() - t0 < 5000);
});
