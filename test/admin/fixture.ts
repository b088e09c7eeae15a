// A real admin server on a temp socket, over a small in-test AdminContext: the real session registry
// with a manual clock, and in-test grant and approval stores that record who did what. Not the daemon
// (the daemon's end-to-end test lives elsewhere).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { PendingApproval } from '../../src/approvals/approvals.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { PenstockError } from '../../src/common/errors.ts';
import type { GrantConfig, PrincipalConfig } from '../../src/config/schema.ts';
import type { HeldGrant, Operator } from '../../src/grants/types.ts';
import type { Action, Decision } from '../../src/policy/types.ts';
import { SessionRegistry, type SessionEnd } from '../../src/sessions/registry.ts';
import { adminCommands } from '../../src/admin/commands.ts';
import { startAdminServer, type AdminServer, type AdminServerOptions } from '../../src/admin/server.ts';
import type { AdminAuditEntry, AdminCommandTable, AdminContext, AdminCore } from '../../src/admin/types.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
export const NODE = join(ROOT, 'node_modules/.bin/node');
export const CTL = join(ROOT, 'src/cli/penstockctl.ts');

export const NOW = Date.parse('2026-11-25T09:00:00Z');

export const principal: PrincipalConfig = { id: 'vendor-ana', kind: 'vendor', owner: 'Acme', purpose: 'inverter service', credentials: {} };

export function sampleGrant(id: string, over: Partial<GrantConfig> = {}): GrantConfig {
  return {
    id,
    principal: 'vendor-ana',
    targets: ['inverter-1'],
    task: { ticket: 'WO-4411' },
    window: { from: '2026-11-25T08:00:00Z', to: '2026-11-25T12:00:00Z' },
    rules: [{ modbus: { effect: 'allow', preset: 'readonly' } }],
    ...over,
  };
}

/** What the in-test core was asked to do, in order. */
export interface Calls {
  log: string[];
  issued: { grant: GrantConfig; by: Operator }[];
  revoked: { id: string; by: Operator; reason: string }[];
  resolved: { id: string; by: Operator; note?: string; approved: boolean }[];
  explained: { principal: string; action: Action }[];
  killed: { id: string; end: SessionEnd }[];
  reloads: number;
}

export interface TestCore extends AdminCore {
  readonly sessions: SessionRegistry;
}

export function makeContext(clock = new ManualClock(NOW)): { context: AdminContext; core: TestCore; calls: Calls; grants: HeldGrant[] } {
  const calls: Calls = { log: [], issued: [], revoked: [], resolved: [], explained: [], killed: [], reloads: 0 };
  const sessions = new SessionRegistry({ clock, onEnd: (s, end) => calls.killed.push({ id: s.id, end }) });
  const grants: HeldGrant[] = [{ ...sampleGrant('g-config'), source: 'config' }];
  const pending: PendingApproval[] = [{ id: 'ap-1', session: 's-x', principal: 'agent-7', chain: ['agent-7', 'vendor-ana'], target: 'inverter-1', grant: 'g-config', rule: 'g-config#0', since: new Date(NOW - 60_000).toISOString(), expiresAt: new Date(NOW + 240_000).toISOString(), action: { target: 'inverter-1', verb: 'write', object: { kind: 'modbus', unit: 1, functionCode: 6, table: 'holding_register', address: 40, quantity: 1, values: [7] } } }];

  const core: TestCore = {
    clock,
    sessions,
    grants: {
      list: () => grants,
      isActive: (g, now) => !g.revoked && (!g.window || (Date.parse(g.window.from) <= now && now < Date.parse(g.window.to))),
      issue: (grant, by) => {
        calls.log.push(`handler:grants.issue:${grant.id}`);
        if (grants.some((g) => g.id === grant.id)) throw new PenstockError('PS_GRANT_INVALID', `grant ${grant.id} already exists`);
        const held: HeldGrant = { ...grant, source: 'runtime', issued: { by, at: new Date(clock.now()).toISOString() } };
        grants.push(held);
        calls.issued.push({ grant, by });
        return held;
      },
      revoke: (id, by, reason) => {
        calls.log.push(`handler:grants.revoke:${id}`);
        const g = grants.find((x) => x.id === id);
        if (!g) throw new PenstockError('PS_GRANT_UNKNOWN', `no grant ${id}`);
        g.revoked = { by, at: new Date(clock.now()).toISOString(), reason };
        calls.revoked.push({ id, by, reason });
        return g;
      },
    },
    approvals: {
      list: () => pending,
      approve: (id, by, note) => resolveApproval(id, by, note, true),
      deny: (id, by, note) => resolveApproval(id, by, note, false),
    },
    explain: (p: string, action: Action): Decision => {
      calls.explained.push({ principal: p, action });
      const o = action.object;
      if (o.kind === 'modbus' && (o.functionCode as number) <= 4) return { effect: 'allow', reason: 'rule_allows', grant: 'g-config', rule: 'g-config#0', explanation: 'readonly preset allows reads' };
      if (o.kind === 'modbus' && o.table === 'holding_register') return { effect: 'approve', reason: 'rule_requires_approval', grant: 'g-config', rule: 'g-config#1', explanation: 'writes need a person' };
      return { effect: 'deny', reason: 'function_not_granted', explanation: 'no rule grants this' };
    },
  };

  function resolveApproval(id: string, by: Operator, note: string | undefined, approved: boolean): unknown {
    calls.log.push(`handler:approvals.${approved ? 'approve' : 'deny'}:${id}`);
    const i = pending.findIndex((a) => a.id === id);
    if (i < 0) throw new PenstockError('PS_APPROVAL_UNKNOWN', `no pending approval ${id}`);
    pending.splice(i, 1);
    calls.resolved.push({ id, by, ...(note !== undefined ? { note } : {}), approved });
    return { id, approved };
  }

  const context: AdminContext = {
    core,
    reload: async () => {
      calls.reloads++;
      calls.log.push('handler:config.reload');
      return { ok: true, issues: [] };
    },
    checkConfig: (file) => ({ issues: [{ file, line: 3, column: 5, field: 'appliance.colour', message: 'unknown field `colour`', severity: 'error' }] }),
    status: () => ({ appliance: 'gw-test-1', version: '0.1.0', uptime_seconds: 3725, listeners: [{ id: 'modbus-main', protocol: 'modbus', host: '127.0.0.1', port: 15020 }], sessions: sessions.list().length }),
  };
  return { context, core, calls, grants };
}

export interface Harness {
  server: AdminServer;
  dir: string;
  path: string;
  audits: AdminAuditEntry[];
  logText(): string;
  calls: Calls;
  core: TestCore;
  grants: HeldGrant[];
  close(): Promise<void>;
}

export interface HarnessOptions {
  commands?: AdminCommandTable;
  audit?: (e: AdminAuditEntry, calls: Calls) => Promise<void>;
  server?: Partial<AdminServerOptions>;
  socketName?: string;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'penstock-admin-'));
  const path = join(dir, opts.socketName ?? 'admin.sock');
  const { context, core, calls, grants } = makeContext();
  const audits: AdminAuditEntry[] = [];
  let logged = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logged += chunk.toString();
      cb();
    },
  });
  const server = await startAdminServer({
    socketPath: path,
    commands: opts.commands ?? adminCommands,
    context,
    log: pino({ level: 'debug' }, sink),
    audit: async (e) => {
      audits.push(e);
      calls.log.push(`audit:${e.phase}:${e.command}`);
      await opts.audit?.(e, calls);
    },
    ...opts.server,
  });
  return {
    server,
    dir,
    path: server.path,
    audits,
    logText: () => logged,
    calls,
    core,
    grants,
    async close() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A raw client: writes `data`, collects every response line until the server closes or `expect` lines arrived. */
export function rawExchange(path: string, data: string | Buffer, expect: number): Promise<{ responses: Record<string, unknown>[]; closedByServer: boolean }> {
  return new Promise((resolvePromise, reject) => {
    const socket = createConnection(path);
    let buf = '';
    const responses: Record<string, unknown>[] = [];
    let done = false;
    const finish = (closedByServer: boolean): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolvePromise({ responses, closedByServer });
    };
    socket.on('connect', () => socket.write(data));
    socket.on('data', (chunk) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        responses.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
        buf = buf.slice(nl + 1);
      }
      if (responses.length >= expect) {
        // Give the server no chance to be mistaken for closing: we close.
        finish(false);
      }
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // The server may reset a connection it refused while we were still writing.
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET') finish(true);
      else if (!done) reject(err);
    });
  });
}

export function request(id: number, command: string, params?: unknown, operator?: { uid: number; user?: string }): string {
  return `${JSON.stringify({ id, command, ...(params !== undefined ? { params } : {}), ...(operator ? { operator } : {}) })}\n`;
}

export interface CtlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the real penstockctl as a child process (optionally as another uid via setpriv). */
export function runCtl(args: string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv; asUid?: number; cwd?: string; viaBin?: boolean } = {}): Promise<CtlResult> {
  // Through bin/penstockctl (the installed wrapper) or the runtime on the script directly.
  const argv = opts.viaBin ? [join(ROOT, 'bin/penstockctl'), ...args] : [NODE, CTL, ...args];
  return runAs(opts.asUid === undefined ? argv : setprivArgv(opts.asUid, opts.asUid, argv), { cwd: opts.cwd ?? ROOT, env: { PATH: process.env.PATH, TZ: 'UTC', ...opts.env }, stdin: opts.stdin ?? '' });
}

/** Run a node script as another uid (and gid, default the same) through setpriv; needs root. */
export function nodeAs(asUid: number, script: string, args: string[], opts: { gid?: number } = {}): Promise<CtlResult> {
  return runAs(setprivArgv(asUid, opts.gid ?? asUid, [NODE, '-e', script, ...args]), { stdin: '' });
}

function setprivArgv(uid: number, gid: number, argv: string[]): string[] {
  return ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', ...argv];
}

/** Spawn argv, feed it stdin, collect its output until it closes. */
function runAs(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; stdin: string }): Promise<CtlResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.env ? { env: opts.env } : {}), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
    child.stdin.end(opts.stdin);
  });
}

/** A node -e script for nodeAs: sends argv[2] on a connection to argv[1], prints the first answer line. */
export const ONE_REQUEST_SCRIPT = `const s = require('node:net').createConnection(process.argv[1]);
let buf = '';
s.on('connect', () => s.write(process.argv[2]));
s.on('data', (d) => { buf += d; const nl = buf.indexOf('\\n'); if (nl >= 0) { process.stdout.write(buf.slice(0, nl)); s.destroy(); } });
s.on('error', (e) => { console.error(e.code); process.exit(2); });`;
