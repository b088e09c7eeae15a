import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open as openLmdb } from 'lmdb';
import { isPenstockError } from '../../src/common/errors.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { Secret } from '../../src/common/secret.ts';
import { verifyBundle, verifyExport } from '../../src/journal/verify.ts';
import { leafHash, verifyConsistency, verifyInclusion } from '../../src/journal/merkle.ts';
import { verifyCheckpoint, NoteSigner, generateSigningKeyPem, parseNote } from '../../src/journal/checkpoint.ts';
import { isCanonicalJson } from '../../src/journal/canonical.ts';
import { APPLIANCE, appendMany, openJournal, tempDir } from './helpers.ts';

test('concurrent appends share commits, get seqs in call order, and survive a reopen', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(dir);
  const seqs = await appendMany(j, 450);
  assert.deepEqual(seqs, Array.from({ length: 450 }, (_, i) => i));
  const events = j.readEvents(0, 1000);
  assert.equal(events.length, 450);
  for (const { seq, bytes } of events) {
    const e = JSON.parse(bytes) as Record<string, unknown>;
    assert.equal(e.seq, seq);
    assert.equal(e.session, `s-${seq}`, 'seq follows call order');
    assert.equal(e.code, 'PS3001I');
    assert.equal(e.appliance, APPLIANCE);
    assert.equal(e.time, '2026-11-22T08:00:00.000Z');
    assert.ok(isCanonicalJson(bytes));
    assert.deepEqual(j.leafHash(seq), leafHash(Buffer.from(bytes)));
  }
  assert.deepEqual(j.checkpoints().map((c) => c.size), [450], 'one checkpoint: the 450 appends went into one commit');
  assert.deepEqual(j.verifyAll(), { ok: true, size: 450 });
  await j.append({ event: 'session.closed', session: 'x' });
  await j.close(); // signs a final checkpoint
  const again = await openJournal(dir);
  t.after(() => again.close());
  assert.equal(again.size(), 451);
  assert.deepEqual(again.checkpoints().map((c) => c.size), [450, 451]);
  assert.equal((await again.append({ event: 'session.opened' })).seq, 451);
  assert.deepEqual(again.verifyAll(), { ok: true, size: 452 });
  assert.equal(again.health().writable, true);
});

test('events render protocol fields with Zeek names, drop secrets and refuse what JSON cannot hold', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(dir);
  t.after(() => j.close());
  await j.append({
    event: 'action.allowed',
    session: 'sess-1',
    principal: 'agent-7',
    chain: ['agent-7', 'vendor-acme', 'work-order:WO-4411'],
    target: 'plc-boiler-1',
    listener: 'modbus-main',
    action: { target: 'plc-boiler-1', verb: 'write', object: { kind: 'modbus', unit: 1, functionCode: 6, table: 'holding_register', address: 40010, quantity: 1, values: [123] } },
    decision: { effect: 'allow', reason: 'rule_allows', grant: 'g1', rule: 'g1#0', explanation: 'ok' },
    outcome: { old_values: [100], new_values: [123] },
    detail: { password: new Secret('hunter2'), note: 'x', list: [new Secret('a'), 'b'] },
  });
  const [{ bytes }] = j.readEvents(0, 1) as [{ seq: number; bytes: string }];
  assert.ok(!bytes.includes('hunter2') && !bytes.includes('<secret>'), 'no secret in the journal');
  const e = JSON.parse(bytes);
  assert.deepEqual(e.action, { verb: 'write', target: 'plc-boiler-1', modbus: { unit: 1, func: 'WRITE_SINGLE_REGISTER', func_code: 6, table: 'holding_register', address: 40010, quantity: 1, values: [123] } });
  assert.deepEqual(e.detail, { note: 'x', list: ['b'] });
  assert.deepEqual(e.redacted, ['$.detail.password', '$.detail.list[0]']);
  assert.deepEqual(e.decision, { effect: 'allow', reason: 'rule_allows', grant: 'g1', rule: 'g1#0', explanation: 'ok' });
  assert.equal(
    bytes,
    '{"action":{"modbus":{"address":40010,"func":"WRITE_SINGLE_REGISTER","func_code":6,"quantity":1,"table":"holding_register","unit":1,"values":[123]},"target":"plc-boiler-1","verb":"write"},"appliance":"penstock/gw-test-01","chain":["agent-7","vendor-acme","work-order:WO-4411"],"code":"PS3001I","decision":{"effect":"allow","explanation":"ok","grant":"g1","reason":"rule_allows","rule":"g1#0"},"detail":{"list":["b"],"note":"x"},"event":"action.allowed","listener":"modbus-main","mono":"0","outcome":{"new_values":[123],"old_values":[100]},"principal":"agent-7","redacted":["$.detail.password","$.detail.list[0]"],"seq":0,"session":"sess-1","target":"plc-boiler-1","time":"2026-11-22T08:00:00.000Z"}',
  );
  await j.append({ event: 'action.allowed', action: { target: 'ua', verb: 'write', object: { kind: 'opcua', nodeId: 'ns=1;s=Drum/Level', attribute: 'Value', value: 4.5 } } });
  await j.append({ event: 'action.allowed', action: { target: 'h', verb: 'exec', object: { kind: 'ssh', channel: 'exec', commandLine: 'ls -l', argv: ['ls', '-l'] } } });
  const [ua, ssh] = j.readEvents(1, 2).map((r) => JSON.parse(r.bytes));
  assert.deepEqual(ua.action.opcua, { node_id: 'ns=1;s=Drum/Level', attribute: 'Value', value: 4.5 });
  // A write decided with a scale factor read from the device carries it: how its value was judged.
  const scaled = await j.append({ event: 'action.allowed', action: { target: 'inv', verb: 'write', object: { kind: 'modbus', unit: 1, functionCode: 6, table: 'holding_register', address: 40232, quantity: 1, values: [5000], scaleFactors: { 'controls.WMaxLimPct_SF': -2 } } } });
  assert.deepEqual(JSON.parse(j.readEvents(scaled.seq, 1)[0]!.bytes).action.modbus.scale_factors, { 'controls.WMaxLimPct_SF': -2 });
  assert.deepEqual(ssh.action.ssh, { channel: 'exec', command: 'ls -l', argv: ['ls', '-l'] });
  await assert.rejects(j.append({ event: 'action.outcome', outcome: { ratio: Number.NaN } }), (err) => isPenstockError(err, 'PS_INTERNAL'));
  await assert.rejects(j.append({ event: 'no.such' as 'action.outcome' }), (err) => isPenstockError(err, 'PS_INTERNAL'));
  assert.equal(j.size(), 4, 'refused events leave nothing behind');
});

test('proofs from the reader API verify against signed checkpoints; bundles verify offline', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(dir, { checkpointEvery: 37 });
  t.after(() => j.close());
  for (let i = 0; i < 10; i++) await appendMany(j, 20 + i);
  const vkey = j.publicKeyVkey();
  const cps = j.checkpoints();
  assert.ok(cps.length >= 5);
  for (const cp of cps) {
    const v = verifyCheckpoint(cp.note, vkey);
    assert.ok(v.ok);
    assert.equal(Buffer.from(j.rootAt(cp.size)).toString('base64'), cp.rootHash);
    assert.deepEqual(j.checkpointFor(cp.size), cp);
  }
  for (let i = 1; i < cps.length; i++) {
    const [a, b] = [cps[i - 1]!, cps[i]!];
    assert.ok(verifyConsistency(a.size, b.size, Buffer.from(a.rootHash, 'base64'), Buffer.from(b.rootHash, 'base64'), j.consistencyProof(a.size, b.size)));
  }
  const latest = j.latestCheckpoint()!;
  for (const seq of [0, 1, 100, latest.size - 1]) {
    const ev = j.readEvents(seq, 1)[0]!;
    assert.ok(verifyInclusion(seq, latest.size, leafHash(Buffer.from(ev.bytes)), j.inclusionProof(seq, latest.size), Buffer.from(latest.rootHash, 'base64')));
  }
  const bundle = JSON.parse(JSON.stringify(j.proveBundle(123)));
  assert.deepEqual(verifyBundle(bundle, vkey), { ok: true, seq: 123, treeSize: j.latestCheckpoint()!.size });
  const altered = { ...bundle, event: bundle.event.replace('"s-', '"S-') };
  assert.equal(verifyBundle(altered, vkey).ok, false);
  assert.equal(verifyBundle({ ...bundle, seq: 124 }, vkey).ok, false);
  assert.equal(verifyBundle(bundle, new NoteSigner(APPLIANCE, generateSigningKeyPem()).vkey).ok, false, 'another key');
  assert.throws(() => j.inclusionProof(5, j.size() + 1), (err) => isPenstockError(err, 'PS_JOURNAL_BAD_REQUEST'));
});

test('cosignatures are stored only for checkpoints this journal issued', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(dir, { checkpointEvery: 10 });
  t.after(() => j.close());
  await appendMany(j, 10);
  const cp = j.latestCheckpoint()!;
  const witness = new NoteSigner('witness.example/w1', generateSigningKeyPem());
  const cosigned = cp.note + witness.sign(parseNote(cp.note).body).split('\n\n')[1];
  assert.deepEqual(await j.addCosignature(cosigned), { size: 10 });
  assert.deepEqual(j.cosignatures(10), [cosigned]);
  const forged = witness.sign(parseNote(cp.note).body.replace('\n10\n', '\n11\n'));
  await assert.rejects(j.addCosignature(forged), (err) => isPenstockError(err, 'PS_JOURNAL_BAD_REQUEST'));
  await assert.rejects(j.addCosignature('garbage'), (err) => isPenstockError(err, 'PS_JOURNAL_BAD_REQUEST'));
});

test('retention prunes bodies only up to the acknowledged cursor, and the tree stays provable', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const clock = new ManualClock(Date.parse('2026-11-22T08:00:00Z'));
  const j = await openJournal(dir, { clock, checkpointEvery: 25 });
  t.after(() => j.close());
  await appendMany(j, 100);
  clock.advance(3_600_000);
  await appendMany(j, 100);
  assert.equal(j.prune({ maxBytes: 0 }).removed, 0, 'nothing acknowledged: nothing pruned');
  await j.acknowledge(59, 'central-pam');
  assert.equal(j.acknowledged(), 59);
  await j.acknowledge(10, 'central-pam');
  assert.equal(j.acknowledged(), 59, 'the cursor never moves back');
  await assert.rejects(j.acknowledge(200, 'x'), (err) => isPenstockError(err, 'PS_JOURNAL_BAD_REQUEST'));
  assert.deepEqual(j.prune({ maxAgeMs: 7_200_000 }), { removed: 0, first: 0, bytes: j.health().bytes }, 'nothing old enough');
  const byAge = j.prune({ maxAgeMs: 1_800_000 });
  assert.equal(byAge.removed, 60, 'old events up to the cursor, not beyond');
  assert.equal(j.firstRetained(), 60);
  await j.acknowledge(150, 'central-pam');
  const bySize = j.prune({ maxBytes: j.health().bytes - 1 });
  assert.equal(bySize.removed, 1, 'just enough to get under the limit');
  assert.equal(j.prune({ maxBytes: 0 }).first, 151);
  assert.equal(j.readEvents(0, 5)[0]!.seq, 151);
  assert.deepEqual(j.verifyAll(), { ok: true, size: 200 });
  const cp = j.latestCheckpoint()!;
  const ev = j.readEvents(170, 1)[0]!;
  assert.ok(verifyInclusion(170, cp.size, leafHash(Buffer.from(ev.bytes)), j.inclusionProof(170, cp.size), Buffer.from(cp.rootHash, 'base64')));
  const firstCp = j.checkpoints()[0]!;
  assert.ok(firstCp.size <= 151);
  assert.ok(verifyConsistency(firstCp.size, cp.size, Buffer.from(firstCp.rootHash, 'base64'), Buffer.from(cp.rootHash, 'base64'), j.consistencyProof(firstCp.size, cp.size)));
  // Export from the first retained event verifies with the frontier of the pruned prefix.
  const lines: string[] = [];
  const exp = j.exportJsonLines(151, 199, (l) => lines.push(l));
  assert.equal(exp.lines, 49);
  assert.deepEqual(verifyExport({ lines, checkpointNote: exp.checkpoint, vkey: j.publicKeyVkey(), startSeq: 151, prefix: j.frontier(151) }), { ok: true, size: 200, rootHash: j.latestCheckpoint()!.rootHash });
  assert.equal(j.health().acknowledgedUpTo, 150);
});

test('retention counting push (or both) moves only past what that upstream holds; cursors survive a reopen', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const clock = new ManualClock(Date.parse('2026-11-22T08:00:00Z'));
  let j = await openJournal(dir, { clock, checkpointEvery: 25 });
  await appendMany(j, 100);
  await j.acknowledge(79, 'central-pam');
  assert.equal(j.prune({ maxBytes: 0, acknowledgedBy: ['push'] }).removed, 0, 'JetStream acknowledged nothing: nothing pruned');
  j.advanceCursor('push', 29);
  j.advanceCursor('push', 5);
  assert.equal(j.cursor('push'), 29, 'the cursor never moves back');
  assert.throws(() => j.advanceCursor('push', 100), (err) => isPenstockError(err, 'PS_JOURNAL_BAD_REQUEST'));
  assert.equal(j.prune({ maxBytes: 0, acknowledgedBy: ['pull', 'push'] }).first, 30, 'both count: the lower cursor bounds');
  j.advanceCursor('push', 89);
  assert.equal(j.prune({ maxBytes: 0, acknowledgedBy: ['pull', 'push'] }).first, 80);
  assert.equal(j.prune({ maxBytes: 0, acknowledgedBy: ['push'] }).first, 90);
  assert.deepEqual(j.health().cursors, { push: 89 });
  await j.close();
  j = await openJournal(dir, { clock, checkpointEvery: 25 });
  t.after(() => j.close());
  assert.equal(j.cursor('push'), 89);
  assert.equal(j.cursor('pull'), 79);
  assert.equal(j.cursor('siem:soc'), -1);
});

/** Edits the closed journal's LMDB directly, as an attacker with disk access would. */
async function tamper(dir: string, fn: (events: { get(k: number): Buffer | undefined; put(k: number, v: Buffer): void; remove(k: number): void }) => void): Promise<void> {
  const env = openLmdb({ path: dir, maxDbs: 8, overlappingSync: false });
  const events = env.openDB<Buffer, number>({ name: 'events', encoding: 'binary' });
  env.transactionSync(() =>
    fn({ get: (k) => events.getBinary(k) as Buffer | undefined, put: (k, v) => events.putSync(k, v), remove: (k) => events.removeSync(k) }),
  );
  await env.close();
}

test('verifyAll names the first bad spot: a changed byte, a deleted event, a reordered pair, a truncation', async (t) => {
  const cases: [string, (e: Parameters<Parameters<typeof tamper>[1]>[0]) => void, number, RegExp][] = [
    ['changed byte', (e) => { const b = Buffer.from(e.get(41)!); b[b.indexOf('s-41') + 2] = 0x39; e.put(41, b); }, 41, /seq 41: event bytes do not match/],
    ['deleted event', (e) => e.remove(17), 17, /seq 17: event missing/],
    ['reordered pair', (e) => { const a = e.get(30)!; const b = e.get(31)!; e.put(30, b); e.put(31, a); }, 30, /seq 30: event body says seq 31/],
    ['truncation', (e) => { for (let k = 95; k < 120; k++) e.remove(k); }, 95, /seq 95: event missing/],
  ];
  for (const [name, edit, seq, problem] of cases) {
    const { dir, cleanup } = tempDir();
    t.after(cleanup);
    const j = await openJournal(dir, { checkpointEvery: 50 });
    await appendMany(j, 120);
    await j.close();
    await tamper(dir, edit);
    const again = await openJournal(dir).catch((err: unknown) => err);
    if (name === 'truncation') {
      // The last stored key no longer matches the state: refused at open.
      assert.ok(isPenstockError(again, 'PS_JOURNAL_CORRUPT'), name);
      assert.match((again as Error).message, /seq 95: event missing/);
      continue;
    }
    assert.ok(!(again instanceof Error));
    const r = (again as Awaited<ReturnType<typeof openJournal>>).verifyAll();
    await (again as Awaited<ReturnType<typeof openJournal>>).close();
    assert.equal(r.ok, false, name);
    assert.equal(!r.ok && r.seq, seq, `${name}: ${JSON.stringify(r)}`);
    assert.match(!r.ok ? r.problem : '', problem, name);
  }
});

test('verifyExport names the first bad spot in an exported stream and refuses a rollback or fork', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(dir, { checkpointEvery: 40 });
  t.after(() => j.close());
  await appendMany(j, 60);
  const older = j.checkpoint()!;
  await appendMany(j, 60);
  const lines: string[] = [];
  const exp = j.exportJsonLines(0, 10_000, (l) => lines.push(l));
  const vkey = j.publicKeyVkey();
  assert.equal(exp.lines, 120);
  const check = (ls: string[], extra: object = {}) => verifyExport({ lines: ls, checkpointNote: exp.checkpoint, vkey, ...extra });
  assert.equal(check(lines).ok, true);
  const changed = [...lines];
  changed[41] = changed[41]!.replace('"s-41"', '"s-49"');
  assert.deepEqual(pick(check(changed)), { seq: 41, line: 42 });
  const garbled = [...lines];
  garbled[12] = garbled[12]!.replace('{"appliance"', '{"appliancf"');
  assert.equal(pick(check(garbled)).seq, 12);
  const deleted = lines.filter((_, i) => i !== 17);
  assert.deepEqual(pick(check(deleted)), { seq: 17, line: 18 });
  const reordered = [...lines];
  [reordered[30], reordered[31]] = [reordered[31]!, reordered[30]!];
  assert.deepEqual(pick(check(reordered)), { seq: 30, line: 31 });
  const truncated = lines.slice(0, 100);
  const tr = check(truncated);
  assert.ok(!tr.ok && tr.seq === 100 && /truncated/.test(tr.problem));
  // Rollback: an older checkpoint (with the matching shorter stream) offered to a verifier that holds the newer one.
  const rb = verifyExport({ lines: lines.slice(0, older.size), checkpointNote: older.note, vkey, known: exp.checkpoint });
  assert.ok(!rb.ok && /rollback/.test(rb.problem) && rb.seq === older.size, JSON.stringify(rb));
  // Holding the older one, the newer stream verifies and extends it.
  assert.equal(verifyExport({ lines, checkpointNote: exp.checkpoint, vkey, known: older.note }).ok, true);
  // Fork: a different history signed by another key under the same name is refused by signature;
  // a held checkpoint whose root the stream does not reproduce is a fork.
  const forkNote = new NoteSigner(APPLIANCE, generateSigningKeyPem()).checkpoint(older.size, new Uint8Array(32));
  assert.equal(verifyExport({ lines, checkpointNote: forkNote, vkey }).ok, false);
  const raw = lines.map((l) => { const { leaf_hash: _, ...e } = JSON.parse(l); return JSON.stringify(Object.fromEntries(Object.entries(e).sort(([a], [b]) => (a < b ? -1 : 1)))); });
  assert.equal(check(raw).ok, true, 'pulled raw event bytes (no leaf_hash) verify too');
});

function pick(r: ReturnType<typeof verifyExport>): { seq?: number; line?: number } {
  assert.equal(r.ok, false);
  return r.ok ? {} : { seq: r.seq, ...(r.line === undefined ? {} : { line: r.line }) };
}

test('a lazy append rides with the next commit, or commits on its own within a few milliseconds', async () => {
  const { dir, cleanup } = tempDir();
  const journal = await openJournal(dir);
  try {
    // Alone, a lazy append still resolves: it is committed by its own timer.
    const alone = await journal.append({ event: 'action.outcome', detail: { n: 1 } }, { lazy: true });
    assert.equal(alone.seq, 0);
    assert.equal(journal.readEvents(0, 10).length, 1);
    // Queued before an eager append, it commits with it, in order.
    const lazy = journal.append({ event: 'action.outcome', detail: { n: 2 } }, { lazy: true });
    const eager = journal.append({ event: 'action.allowed', detail: { n: 3 } });
    assert.deepEqual([(await lazy).seq, (await eager).seq], [1, 2]);
    assert.equal(journal.verifyAll().ok, true);
  } finally {
    await journal.close();
    cleanup();
  }
});
