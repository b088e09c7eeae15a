// Containment end to end over the Modbus/TCP front door, with peers no one here wrote: mbpoll and
// pymodbus's client as the vendor's tools, pymodbus as the PLC, the real penstockctl on a real admin
// socket. Probing (denied registers) raises an alert; config `alerts.probing.action` decides:
//   suspend → the same session's next allowed write waits for a person: nothing reaches the PLC until
//             `penstockctl approvals approve`; `penstockctl sessions resume` lifts it;
//   require_approval → every write by the grant, in any session, waits for a person until
//             `penstockctl grants release`;
//   kill    → the session ends: mbpoll's connection is closed;
//   revoke  → the grant is revoked: the vendor's next connection is refused, nothing reaches the PLC.
//
// STAND-IN: the detectors and their engine (src/alerts/engine.ts) are built on another branch. Until
// they merge, StandInProbing below plays the engine's part exactly as the brief names it: it follows the
// journal's committed events, raises `probing` after 3 denials of a principal, journals the alert (as the
// registered `alert.denial_burst`, with `stand_in_for: alert.probing`) and calls the engine's callback
// `onAlert(alert, seq)`, which is Containment.apply. Replace it with the real engine once merged.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { freePort, mbpoll, Plc, PYTHON, startGateway, tempDir, until, type Gateway } from '../adapters/modbus/fixtures/harness.ts';
import { Containment } from '../../src/alerts/containment.ts';
import type { Alert, ContainmentAction } from '../../src/alerts/types.ts';
import type { DaemonCore } from '../../src/core/daemon-core.ts';
import type { StoredEvent } from '../../src/journal/event.ts';
import { adminCommands } from '../../src/admin/commands.ts';
import { startAdminServer, type AdminServer } from '../../src/admin/server.ts';
import { runCtl } from '../admin/fixture.ts';

/** STAND-IN for the detectors engine (see the header): `probing` after every 3rd denial of a principal. */
class StandInProbing {
  readonly #denials = new Map<string, number[]>();
  readonly #stop: () => void;
  readonly #core: DaemonCore;
  readonly #onAlert: (alert: Alert, seq: number) => Promise<void>;

  constructor(core: DaemonCore, onAlert: (alert: Alert, seq: number) => Promise<void>) {
    this.#core = core;
    this.#onAlert = onAlert;
    this.#stop = core.journal.onCommitted((events) => events.forEach((e) => this.#observe(e)));
  }

  stop(): void {
    this.#stop();
  }

  #observe(e: StoredEvent): void {
    if (e.event !== 'action.denied' || !e.principal) return;
    const seqs = [...(this.#denials.get(e.principal) ?? []), e.seq];
    this.#denials.set(e.principal, seqs.length >= 3 ? [] : seqs);
    if (seqs.length < 3) return;
    // Like the real probing detector, it names the session and target, not a grant: `revoke` and
    // `require_approval` find the principal's one grant on that target.
    const alert: Alert = {
      kind: 'probing',
      severity: 'warning',
      summary: `${seqs.length} denied requests in a row`,
      principal: e.principal,
      ...(e.session ? { session: e.session } : {}),
      ...(e.chain ? { chain: e.chain } : {}),
      ...(e.target ? { target: e.target } : {}),
      triggers: seqs,
    };
    void this.#core.journal
      .append({ event: 'alert.denial_burst', principal: alert.principal, ...(alert.session ? { session: alert.session } : {}), detail: { stand_in_for: 'alert.probing', triggers: seqs } })
      .then(({ seq }) => this.#onAlert(alert, seq));
  }
}

let tmp: ReturnType<typeof tempDir>;
let plc: Plc;
let plcPort: number;

before(async () => {
  tmp = tempDir('penstock-contain-e2e-');
  plcPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
});

after(async () => {
  await plc?.stop();
  tmp?.cleanup();
});

function config(dir: string, action: ContainmentAction): string {
  return `
appliance: { id: gw-contain, site: Test bench, zone: lab, state_dir: ${dir}/state }
journal: { every_read: false, aggregate_reads_seconds: 3600 }
listeners:
  - id: mb-tcp
    protocol: modbus
    mode: tcp
    host: 127.0.0.1
    port: 0
    bindings: [{ source: 127.0.0.1, principal: vendor-a }]
    routes: [{ unit: 1, target: plc-1 }]
principals:
  - { id: vendor-a, kind: vendor, owner: Pump Service Ltd, purpose: Pump station tuning }
targets:
  - { id: plc-1, protocol: modbus, zone: pumps, host: 127.0.0.1, port: ${plcPort}, timeout_ms: 1000 }
grants:
  - id: g-pumps
    principal: vendor-a
    targets: [plc-1]
    task: { ticket: CHG-42 }
    rules:
      - modbus: { access: read, tables: [holding_register], addresses: ["0-49"] }
      - modbus: { access: write, tables: [holding_register], addresses: ["10-19"], min: 0, max: 500 }
alerts:
  probing: { action: ${action} }
`;
}

interface Site {
  gw: Gateway;
  admin: AdminServer;
  socket: string;
  port: string;
  ctl(args: string[]): ReturnType<typeof runCtl>;
  stop(): Promise<void>;
}

/** The gateway with its Modbus front door, containment driven by the stand-in engine, and an admin socket. */
async function startSite(action: ContainmentAction): Promise<Site> {
  const dir = join(tmp.dir, action);
  mkdirSync(dir);
  const gw = await startGateway(dir, config(dir, action));
  const containment = new Containment(gw.core);
  const engine = new StandInProbing(gw.core, (alert, seq) => containment.apply(alert, seq));
  const socket = join(dir, 'admin.sock');
  const admin = await startAdminServer({
    socketPath: socket,
    commands: adminCommands,
    context: { core: gw.core, reload: async () => ({ ok: false, issues: [] }), checkConfig: () => ({ issues: [] }), status: () => ({}) },
    log: pino({ level: 'silent' }),
    audit: async () => {},
  });
  return {
    gw,
    admin,
    socket,
    port: String(gw.port('mb-tcp')),
    ctl: (args) => runCtl(['--socket', socket, ...args]),
    stop: async () => {
      engine.stop();
      await admin.close();
      await gw.stop();
    },
  };
}

/**
 * pymodbus's synchronous TCP client on one connection (one Penstock session), driven one request at a
 * time: each request's answer comes back as a JSON line, so the test decides when the next one goes.
 */
class PymodbusSession {
  readonly #child: ChildProcess;
  readonly #answers = new Map<number, { error: boolean; exception?: number; failed?: string }>();
  #next = 0;
  readonly ready: Promise<void>;

  constructor(port: string) {
    this.#child = spawn(PYTHON, ['-c', `
import json, sys
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port=${port}, timeout=60, retries=0)
assert c.connect()
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    try:
        if cmd["op"] == "read":
            r = c.read_holding_registers(cmd["address"], 1, slave=1)
        else:
            r = c.write_register(cmd["address"], cmd["value"], slave=1)
        out = {"id": cmd["id"], "error": r.isError(), "exception": getattr(r, "exception_code", None)}
    except Exception as e:
        out = {"id": cmd["id"], "error": True, "failed": str(e)}
    print(json.dumps(out), flush=True)
c.close()
`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    this.#child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    this.ready = new Promise((resolve, reject) => {
      this.#child.once('close', (code) => reject(new Error(`pymodbus client exited (${code}): ${stderr}`)));
      createInterface({ input: this.#child.stdout! }).on('line', (line) => {
        const m = JSON.parse(line) as { ready?: boolean; id?: number; error: boolean; exception?: number; failed?: string };
        if (m.ready) resolve();
        else this.#answers.set(m.id!, { error: m.error, ...(m.exception != null ? { exception: m.exception } : {}), ...(m.failed ? { failed: m.failed } : {}) });
      });
    });
  }

  /** Send one request; returns its id (see answer()). */
  send(op: 'read' | 'write', address: number, value?: number): number {
    const id = ++this.#next;
    this.#child.stdin!.write(`${JSON.stringify({ id, op, address, value })}\n`);
    return id;
  }

  answer(id: number): { error: boolean; exception?: number; failed?: string } | undefined {
    return this.#answers.get(id);
  }

  async request(op: 'read' | 'write', address: number, value?: number): Promise<{ error: boolean; exception?: number; failed?: string }> {
    const id = this.send(op, address, value);
    return until(() => this.answer(id), `pymodbus answer to ${op} ${address}`);
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const closed = new Promise((r) => this.#child.once('close', r));
    this.#child.stdin!.end();
    await closed;
  }
}

const writesAt = (address: number) => plc.writes().filter((w) => w.fc === 6 && w.address === address);

/** The containment.applied record of `action`, once journaled; it must say the step was taken. */
async function appliedStep(site: Site, action: ContainmentAction): Promise<StoredEvent> {
  const e = await until(() => site.gw.events().find((x) => x.event === 'containment.applied' && x.detail?.action === action), `containment.applied (${action})`);
  assert.equal(e.detail!.applied, true, JSON.stringify(e.detail));
  return e;
}

/** Probing from mbpoll: three runs (three connections), each reading a register no grant covers. */
async function probeWithMbpoll(site: Site): Promise<void> {
  for (const address of [60, 61, 62]) {
    const r = await mbpoll(['-p', site.port, '-r', String(address), '127.0.0.1']);
    assert.match(r.stdout + r.stderr, /Illegal data address/i);
  }
}

describe('containment over the Modbus front door', () => {
  it('suspend: after probing, the same session\'s next allowed write waits for approvals approve; sessions resume lifts it', async () => {
    const site = await startSite('suspend');
    const client = new PymodbusSession(site.port);
    try {
      await client.ready;
      // Probing: three reads of registers no grant covers, each refused with Illegal data address.
      for (const address of [60, 61, 62]) assert.deepEqual(await client.request('read', address), { error: true, exception: 2 });
      const contained = await appliedStep(site, 'suspend');
      const session = contained.session!;
      const alertSeq = (contained.detail!.alert as { seq: number }).seq;
      assert.equal(site.gw.events().find((e) => e.seq === alertSeq)?.detail?.stand_in_for, 'alert.probing');

      // The next allowed write of that session is held for a person, naming the alert; nothing reaches the PLC.
      const write = client.send('write', 12, 250);
      const approval = await until(() => site.gw.core.approvals.list().find((a) => a.session === session), 'the approval request');
      assert.deepEqual(approval.alert, { kind: 'probing', seq: alertSeq });
      const listed = await site.ctl(['approvals', 'list']);
      assert.match(listed.stdout, new RegExp(`${approval.id}.*held by alert\\.probing #${alertSeq}`));
      // Another session of the same vendor is not suspended: its write arrives at once (and shows the PLC serves).
      const other = await mbpoll(['-p', site.port, '-r', '13', '127.0.0.1', '77']);
      assert.equal(other.code, 0, other.stdout + other.stderr);
      await until(() => writesAt(13).some((w) => w.value === 77), 'the other session\'s write at the PLC');
      assert.deepEqual(writesAt(12), [], 'the held write has not reached the PLC');
      assert.equal(client.answer(write), undefined, 'the client is still waiting');

      const approve = await site.ctl(['approvals', 'approve', approval.id, '--note', 'checked with the vendor']);
      assert.equal(approve.code, 0, approve.stderr);
      await until(() => writesAt(12).some((w) => w.value === 250), 'the approved write at the PLC');
      assert.deepEqual(await until(() => client.answer(write), 'the write\'s answer'), { error: false });

      // Still suspended until staff lift it; sessions list says so.
      const sessions = await site.ctl(['sessions', 'list']);
      assert.match(sessions.stdout, new RegExp(`${session} \\(suspended: alert\\.probing #${alertSeq}\\)`));
      const resume = await site.ctl(['sessions', 'resume', session]);
      assert.equal(resume.code, 0, resume.stderr);
      assert.match(resume.stdout, new RegExp(`resumed session ${session}`));
      const lifted = await until(() => site.gw.events().find((e) => e.event === 'containment.lifted'), 'containment.lifted');
      assert.equal(lifted.session, session);
      assert.equal((lifted.detail!.by as { uid: number }).uid, process.getuid!());
      // Lifted: the session's next write goes straight through, with no approval asked.
      assert.deepEqual(await client.request('write', 14, 99), { error: false });
      assert.ok(writesAt(14).some((w) => w.value === 99));
      assert.equal(site.gw.core.approvals.list().length, 0);
    } finally {
      await client.close();
      await site.stop();
    }
  });

  it('require_approval: after probing, every session\'s write by the grant waits for a person; grants release lifts it', async () => {
    const site = await startSite('require_approval');
    let client: PymodbusSession | undefined;
    try {
      await probeWithMbpoll(site);
      const contained = await appliedStep(site, 'require_approval');
      assert.equal(contained.detail!.grant, 'g-pumps');
      assert.equal(contained.detail!.grant_from, 'target');
      const alertSeq = (contained.detail!.alert as { seq: number }).seq;
      const grants = await site.ctl(['grants', 'list']);
      assert.match(grants.stdout, new RegExp(`g-pumps\\s+active, approval required \\(alert\\.probing #${alertSeq}\\)`));

      // A new connection (a new session) writing under the grant waits for a person. pymodbus's client,
      // which waits up to 60 s: mbpoll gives up after 10 s at most, less than a loaded machine may need.
      client = new PymodbusSession(site.port);
      await client.ready;
      const held = client.send('write', 16, 321);
      const approval = await until(() => site.gw.core.approvals.list()[0], 'the approval request');
      assert.deepEqual(approval.alert, { kind: 'probing', seq: alertSeq });
      assert.equal(approval.grant, 'g-pumps');
      assert.deepEqual(writesAt(16), [], 'nothing reached the PLC yet');
      const approve = await site.ctl(['approvals', 'approve', approval.id]);
      assert.equal(approve.code, 0, approve.stderr);
      assert.deepEqual(await until(() => client!.answer(held), 'the write\'s answer'), { error: false });
      assert.ok(writesAt(16).some((w) => w.value === 321), 'the approved write at the PLC');

      const release = await site.ctl(['grants', 'release', 'g-pumps']);
      assert.equal(release.code, 0, release.stderr);
      assert.match(release.stdout, new RegExp(`released grant g-pumps \\(held since alert\\.probing, journal seq ${alertSeq}\\)`));
      const again = await site.ctl(['grants', 'release', 'g-pumps']);
      assert.equal(again.code, 5);
      assert.match(again.stderr, /PS_NOT_CONTAINED/);
      const direct = await mbpoll(['-p', site.port, '-r', '17', '127.0.0.1', '322']);
      assert.equal(direct.code, 0, direct.stdout + direct.stderr);
      assert.ok(writesAt(17).some((w) => w.value === 322));
      assert.equal(site.gw.events().filter((e) => e.event === 'approval.requested').length, 1, 'released: no approval asked');
    } finally {
      await client?.close();
      await site.stop();
    }
  });

  it('kill: probing ends the session, and mbpoll\'s connection is closed under it', async () => {
    const site = await startSite('kill');
    // mbpoll polling a register no grant covers, every 100 ms on one connection (one session).
    const poller = spawn('mbpoll', ['-m', 'tcp', '-p', site.port, '-0', '-o', '1', '-l', '100', '-r', '60', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    poller.stdout.on('data', (d: Buffer) => (out += d.toString()));
    poller.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => poller.once('close', r));
    try {
      const contained = await appliedStep(site, 'kill');
      const session = contained.session!;
      const killed = await until(() => site.gw.events().find((e) => e.event === 'session.killed' && e.session === session), 'session.killed');
      assert.equal(killed.detail!.reason, 'killed');
      assert.match(String(killed.detail!.detail), new RegExp(`containment of alert\\.probing \\(journal seq ${(contained.detail!.alert as { seq: number }).seq}\\)`));
      assert.equal(site.gw.core.sessions.get(session), undefined);
      // The client side: its connection was closed by the gateway.
      await until(() => /Connection reset by peer/.test(out), 'mbpoll to see its connection closed');
      assert.match(out, /Illegal data address/, 'it was refused before');
    } finally {
      poller.kill('SIGTERM');
      await exited;
      await site.stop();
    }
  });

  it('revoke: probing revokes the grant; the vendor\'s next connection is refused and its write never reaches the PLC', async () => {
    const site = await startSite('revoke');
    try {
      await probeWithMbpoll(site);
      const contained = await appliedStep(site, 'revoke');
      assert.equal(contained.detail!.grant, 'g-pumps');
      const listed = await site.ctl(['--json', 'grants', 'list']);
      const grant = (JSON.parse(listed.stdout) as { id: string; active: boolean; revoked?: { by: { user: string }; reason: string } }[]).find((g) => g.id === 'g-pumps')!;
      assert.equal(grant.active, false);
      assert.equal(grant.revoked?.by.user, 'penstock-containment');
      assert.match(grant.revoked!.reason, /containment of alert\.probing/);
      // The vendor has no active grant left: the front door refuses the connection; nothing reaches the PLC.
      const w = await mbpoll(['-p', site.port, '-r', '15', '127.0.0.1', '5']);
      assert.notEqual(w.code, 0);
      assert.deepEqual(writesAt(15), []);
      await until(() => site.gw.events().find((e) => e.event === 'auth.failed' && e.detail?.reason === 'no_active_grant'), 'the refused connection in the journal');
    } finally {
      await site.stop();
    }
  });
});
