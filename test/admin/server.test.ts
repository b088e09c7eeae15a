// The admin server over raw sockets: permissions, bounds, the allowlist, audit-before-change, error
// rendering, operator identity, and a server that keeps serving after bad input.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { PenstockError } from '../../src/common/errors.ts';
import { adminCommands, defineCommand } from '../../src/admin/commands.ts';
import { MAX_REQUEST_BYTES } from '../../src/admin/protocol.ts';
import { startAdminServer } from '../../src/admin/server.ts';
import { NODE, makeContext, rawExchange, request, sampleGrant, startHarness, type Harness } from './fixture.ts';

const uid = process.getuid!();
const quietLog = { debug() {}, info() {}, warn() {}, error() {} };

/** A group to hand the socket to: one that is not our primary group when we may chown to it. */
function pickGroup(): { name: string; gid: number } {
  const groups = readFileSync('/etc/group', 'utf8').split('\n').map((l) => l.split(':')).filter((f) => f.length >= 3 && f[0]).map((f) => ({ name: f[0]!, gid: Number(f[2]) }));
  const mine = uid === 0 ? groups.map((g) => g.gid) : process.getgroups!();
  const found = groups.find((g) => mine.includes(g.gid) && g.gid !== process.getgid!()) ?? groups.find((g) => g.gid === process.getgid!());
  assert.ok(found, 'no usable group in /etc/group');
  return found;
}

describe('admin socket: files and permissions', () => {
  it('is owner-only (0600) by default, in a directory it creates 0750', async () => {
    const base = mkdtempSync(join(tmpdir(), 'penstock-admin-'));
    const path = join(base, 'run', 'penstock', 'admin.sock');
    const { context } = makeContext();
    const server = await startAdminServer({ socketPath: path, commands: adminCommands, context, log: quietLog, audit: async () => {} });
    try {
      const st = statSync(path);
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o600);
      assert.equal(statSync(join(base, 'run', 'penstock')).mode & 0o777, 0o750);
    } finally {
      await server.close();
      rmSync(base, { recursive: true, force: true });
    }
    assert.throws(() => statSync(path), { code: 'ENOENT' }, 'close removes the socket file');
  });

  it('is 0660 and owned by the admin group when a group is set', async () => {
    const group = pickGroup();
    const h = await startHarness({ server: { group: group.name } });
    try {
      const st = statSync(h.path);
      assert.equal(st.mode & 0o777, 0o660);
      assert.equal(st.gid, group.gid);
    } finally {
      await h.close();
    }
  });

  it('refuses a relative path, an unknown group, a live socket and a path that is not a socket', async () => {
    const { context } = makeContext();
    const base = mkdtempSync(join(tmpdir(), 'penstock-admin-'));
    const opts = { commands: adminCommands, context, log: quietLog, audit: async () => {} };
    try {
      await assert.rejects(startAdminServer({ ...opts, socketPath: 'run/admin.sock' }), { code: 'PS_CONFIG_INVALID' });
      await assert.rejects(startAdminServer({ ...opts, socketPath: join(base, 'a.sock'), group: 'no-such-group-penstock' }), { code: 'PS_CONFIG_INVALID' });

      const file = join(base, 'not-a-socket');
      writeFileSync(file, 'precious');
      await assert.rejects(startAdminServer({ ...opts, socketPath: file }), { code: 'PS_CONFIG_INVALID' });
      assert.equal(readFileSync(file, 'utf8'), 'precious', 'a regular file is never removed');

      const live = join(base, 'live.sock');
      const other = createServer().listen(live);
      await new Promise((r) => other.once('listening', r));
      await assert.rejects(startAdminServer({ ...opts, socketPath: live }), { code: 'PS_CONFIG_INVALID' });
      assert.ok(statSync(live).isSocket(), 'a live socket is left alone');
      await new Promise((r) => other.close(r));
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('replaces a stale socket left by a process that died', async () => {
    const base = mkdtempSync(join(tmpdir(), 'penstock-admin-'));
    const path = join(base, 'admin.sock');
    // A process that binds the socket and is then SIGKILLed leaves the file behind with nobody listening.
    const child = spawn(NODE, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => child.stdout.once('data', r));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.ok(statSync(path).isSocket(), 'the dead process left its socket file');
    const { context } = makeContext();
    const server = await startAdminServer({ socketPath: path, commands: adminCommands, context, log: quietLog, audit: async () => {} });
    try {
      const { responses } = await rawExchange(path, request(1, 'status'), 1);
      assert.equal(responses[0]!.ok, true);
    } finally {
      await server.close();
      rmSync(base, { recursive: true, force: true });
    }
  });
});

describe('admin socket: requests', () => {
  let explode = 0;
  const commands = {
    ...adminCommands,
    'test.explode': defineCommand({
      mutates: false,
      params: z.strictObject({}),
      handler: async () => {
        explode++;
        throw new Error('connection string postgres://admin:hunter2@db/prod failed');
      },
    }),
    'test.internal': defineCommand({
      mutates: false,
      params: z.strictObject({}),
      handler: async () => {
        throw new PenstockError('PS_INTERNAL', 'lmdb env at /var/lib/penstock/journal: MDB_CORRUPTED');
      },
    }),
    'test.whoami': defineCommand({ mutates: true, params: z.strictObject({}), handler: async (_p, { operator }) => operator }),
  };
  let h: Harness;
  before(async () => {
    h = await startHarness({ commands });
  });
  after(() => h.close());

  it('answers pipelined requests in order, echoing each id', async () => {
    const { responses } = await rawExchange(h.path, request(1, 'status') + request(2, 'grants.list') + request(3, 'approvals.list'), 3);
    assert.deepEqual(responses.map((r) => r.id), [1, 2, 3]);
    assert.ok(responses.every((r) => r.ok === true));
    assert.equal((responses[0]!.result as Record<string, unknown>).appliance, 'gw-test-1');
    const grants = responses[1]!.result as { id: string; active: boolean }[];
    assert.deepEqual(grants.map((g) => [g.id, g.active]), [['g-config', true]]);
  });

  it('refuses a request line over MAX_REQUEST_BYTES, closes the connection, and counts the refusal', async () => {
    const before = h.audits.length;
    // Never a newline: the server must refuse once the bound is passed, not wait for the end of the line.
    const { responses, closedByServer } = await rawExchange(h.path, Buffer.alloc(MAX_REQUEST_BYTES + 4096, 0x20), 2);
    assert.equal(responses.length, 1);
    assert.equal(responses[0]!.id, null);
    assert.equal((responses[0]!.error as { code: string }).code, 'PS_ADMIN_TOO_LARGE');
    assert.equal(closedByServer, true, 'the connection is closed after the refusal');
    await h.server.flushAudit();
    assert.ok(h.audits.slice(before).some((a) => a.command === '(too large)' && a.error === 'PS_ADMIN_TOO_LARGE' && a.phase === 'aggregate'));
  });

  it('accepts a line of exactly MAX_REQUEST_BYTES (the bound is inclusive)', async () => {
    const head = '{"id":5,"command":"status","params":{},"pad":"';
    const line = head + 'x'.repeat(MAX_REQUEST_BYTES - head.length - 2) + '"}';
    assert.equal(Buffer.byteLength(line), MAX_REQUEST_BYTES);
    const { responses, closedByServer } = await rawExchange(h.path, `${line}\n${request(6, 'status')}`, 2);
    assert.equal(closedByServer, false);
    // Answered on its merits (an unknown envelope key), not refused for size; the next request is served.
    assert.equal((responses[0]!.error as { code: string; message: string }).code, 'PS_ADMIN_BAD_REQUEST');
    assert.match((responses[0]!.error as { message: string }).message, /pad/);
    assert.equal(responses[1]!.ok, true);
  });

  it('refuses an unknown command, including inherited object keys, and audits it', async () => {
    for (const command of ['journal.truncate', 'constructor', 'tostring']) {
      const { responses } = await rawExchange(h.path, request(9, command, {}), 1);
      assert.equal((responses[0]!.error as { code: string }).code, 'PS_ADMIN_UNKNOWN_COMMAND', command);
      await h.server.flushAudit();
      const audit = h.audits.at(-1)!;
      assert.equal(audit.command, command);
      assert.equal(audit.ok, false);
      assert.equal(audit.error, 'PS_ADMIN_UNKNOWN_COMMAND');
    }
    const { responses } = await rawExchange(h.path, request(10, '__proto__', {}), 1);
    assert.equal((responses[0]!.error as { code: string }).code, 'PS_ADMIN_BAD_REQUEST', 'not a command name at all');
  });

  it('names the field when params are wrong', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['grants.revoke', { id: 'g-config' }, /reason/],
      ['grants.revoke', { id: 'g-config', reason: 'x', force: true }, /force/],
      ['sessions.kill', { id: 42 }, /\bid\b/],
      ['grants.issue', { grant: { ...sampleGrant('g-bad'), window: { from: '2026-11-25T12:00:00Z', to: '2026-11-25T08:00:00Z' } } }, /grant\.window\.to/],
      ['grants.issue', { grant: { ...sampleGrant('g-bad'), rules: [{ modbus: { preset: 'readonly', colour: 'red' } }] } }, /grant\.rules\[0\]\.modbus/],
      ['policy.check', { principal: 'p', target: 't', action: { verb: 'write', object: { kind: 'modbus', unit: 1, functionCode: 6, table: 'holding_register', address: 70000, quantity: 1 } } }, /action\.object\.address/],
    ];
    for (const [command, params, field] of cases) {
      const { responses } = await rawExchange(h.path, request(1, command, params), 1);
      const error = responses[0]!.error as { code: string; message: string };
      assert.equal(error.code, 'PS_ADMIN_BAD_REQUEST', command);
      assert.match(error.message, field);
    }
    assert.equal(h.calls.revoked.length + h.calls.issued.length + h.calls.explained.length, 0, 'no handler ran');
  });

  it('keeps the code of a PenstockError from a handler', async () => {
    const { responses } = await rawExchange(h.path, request(1, 'sessions.kill', { id: 's-nope' }) + request(2, 'grants.revoke', { id: 'g-nope', reason: 'x' }), 2);
    assert.equal((responses[0]!.error as { code: string }).code, 'PS_SESSION_UNKNOWN');
    assert.equal((responses[1]!.error as { code: string }).code, 'PS_GRANT_UNKNOWN');
    const failed = h.audits.filter((a) => a.command === 'grants.revoke' && a.phase === 'after');
    assert.equal(failed.at(-1)!.error, 'PS_GRANT_UNKNOWN', 'a failed change is recorded after the attempt too');
  });

  it('hides internal error text from the peer and logs it', async () => {
    const { responses } = await rawExchange(h.path, request(1, 'test.explode') + request(2, 'test.internal'), 2);
    for (const r of responses) {
      const error = r.error as { code: string; message: string };
      assert.equal(error.code, 'PS_INTERNAL');
      assert.equal(error.message, 'internal error');
    }
    assert.equal(explode, 1);
    assert.ok(!JSON.stringify(responses).includes('hunter2'));
    assert.ok(!JSON.stringify(responses).includes('MDB_CORRUPTED'));
    assert.ok(h.logText().includes('hunter2'), 'the detail goes to the log');
    assert.ok(h.logText().includes('MDB_CORRUPTED'));
  });

  it('answers malformed JSON and bad envelopes, and keeps serving this and the next client', async () => {
    const { responses, closedByServer } = await rawExchange(h.path, '{"id": 1, "command": \n[1,2]\n{"id":-1,"command":"status"}\n' + request(4, 'status'), 4);
    assert.equal(closedByServer, false);
    assert.deepEqual(responses.map((r) => (r.ok ? 'ok' : (r.error as { code: string }).code)), ['PS_ADMIN_BAD_REQUEST', 'PS_ADMIN_BAD_REQUEST', 'PS_ADMIN_BAD_REQUEST', 'ok']);
    assert.equal(responses[0]!.id, null);
    assert.equal(responses[3]!.id, 4);
    const next = await rawExchange(h.path, request(7, 'status'), 1);
    assert.equal(next.responses[0]!.ok, true);
    await h.server.flushAudit();
    assert.ok(h.audits.some((a) => a.command === '(malformed)' && a.error === 'PS_ADMIN_BAD_REQUEST'));
  });

  it('identifies the operator by the kernel, not by what the client claims', async () => {
    const { responses } = await rawExchange(h.path, request(1, 'test.whoami', {}, { uid: 4242, user: 'mallory' }), 1);
    const op = responses[0]!.result as { uid: number; user?: string; verified: boolean };
    assert.equal(op.verified, true);
    assert.equal(op.uid, uid);
    assert.notEqual(op.user, 'mallory');
  });

  it('closes a connection that stays idle', async () => {
    const quick = await startHarness({ server: { firstRequestTimeoutMs: 20 } });
    try {
      const closed = await new Promise<boolean>((resolve) => {
        const s = createConnection(quick.path);
        s.on('close', () => resolve(true));
        s.on('error', () => {});
      });
      assert.equal(closed, true);
    } finally {
      await quick.close();
    }
  });
});

describe('admin socket: audit before change', () => {
  it('audits a state-changing request before its handler runs', async () => {
    let handlerRunsAtAudit = -1;
    const h = await startHarness({
      audit: async (e, calls) => {
        if (e.phase === 'before') handlerRunsAtAudit = calls.revoked.length;
      },
    });
    try {
      const { responses } = await rawExchange(h.path, request(1, 'grants.revoke', { id: 'g-config', reason: 'work done' }), 1);
      assert.equal(responses[0]!.ok, true);
      assert.equal(handlerRunsAtAudit, 0, 'the handler had not run when the audit record was written');
      assert.deepEqual(h.calls.log, ['audit:before:grants.revoke', 'handler:grants.revoke:g-config']);
      const rec = h.audits[0]!;
      assert.deepEqual(rec.params, { id: 'g-config', reason: 'work done' });
      assert.equal(rec.operator.uid, uid);
      assert.equal(rec.operator.verified, true);
      assert.equal(h.calls.revoked[0]!.by.uid, uid);
    } finally {
      await h.close();
    }
  });

  it('refuses every state-changing command when the audit record cannot be written, and runs no handler', async () => {
    const h = await startHarness({
      audit: async (e) => {
        if (e.phase === 'before') throw new PenstockError('PS_JOURNAL_UNAVAILABLE', 'journal map full');
        throw new Error('journal down for after-records too');
      },
    });
    try {
      const sessionId = h.core.sessions.open({ principal: { id: 'vendor-ana', kind: 'vendor', owner: 'Acme', purpose: 'x', credentials: {} }, chain: ['vendor-ana'], listener: 'modbus-main', protocol: 'modbus', remote: '127.0.0.1:5555' }, () => {}).id;
      const mutating = [
        request(1, 'grants.revoke', { id: 'g-config', reason: 'x' }),
        request(2, 'grants.issue', { grant: sampleGrant('g-new') }),
        request(3, 'sessions.kill', { id: sessionId }),
        request(4, 'approvals.approve', { id: 'ap-1' }),
        request(5, 'approvals.deny', { id: 'ap-1' }),
        request(6, 'config.reload', {}),
      ];
      const { responses } = await rawExchange(h.path, mutating.join('') + request(7, 'status'), 7);
      for (const r of responses.slice(0, 6)) assert.equal((r.error as { code: string }).code, 'PS_JOURNAL_UNAVAILABLE', String(r.id));
      assert.equal(responses[6]!.ok, true, 'read-only commands still answer');
      assert.deepEqual(h.calls.log.filter((l) => l.startsWith('handler:')), [], 'no handler ran');
      assert.equal(h.calls.reloads, 0);
      assert.equal(h.grants.find((g) => g.id === 'g-config')!.revoked, undefined);
      assert.ok(h.core.sessions.get(sessionId), 'the session is still live');
    } finally {
      await h.close();
    }
  });
});
