// Containment end to end, on the real path: the shipped daemon (src/main.ts on a config file), whose
// AlertEngine runs the real detectors over the committed journal and hands each alert to Containment,
// as src/daemon/daemon.ts wires them. Peers no one here wrote: mbpoll and pymodbus's client as the
// vendor's tools, pymodbus as the PLCs, the real penstockctl on the daemon's admin socket. Asserted at
// the PLC (its request log) and in the journal (penstockctl watch --json: the events as stored).
//   probing (shipped thresholds: a denial, then 3 retries on the next registers; or 10 denials in 10 s):
//     suspend          → the same session's next allowed write waits for a person: nothing reaches the
//                        PLC until `penstockctl approvals approve`; `penstockctl sessions resume` lifts it;
//     require_approval → every write by the grant, in any session, waits until `penstockctl grants release`;
//     kill             → the session ends: mbpoll's connection is closed;
//     revoke           → the grant is revoked: the vendor's next connection is refused.
//   cross-zone (one principal, targets in zones office and cell-a behind one Modbus listener, routed by
//   unit id, no grant naming both), with `alerts.cross_zone.action: kill` → the session ends.
// mbpoll opens a new connection (a new session) per run, so where the test needs the same session to
// go on after probing (suspend), pymodbus's client probes on one connection.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort, mbpoll, Plc, PYTHON } from '../adapters/modbus/fixtures/harness.ts';
import { NODE, ROOT, startDaemon, tempDir, until, type DaemonProcess } from '../e2e/daemon-harness.ts';
import type { ContainmentAction } from '../../src/alerts/types.ts';
import type { StoredEvent } from '../../src/journal/event.ts';
import type { PendingApproval } from '../../src/approvals/approvals.ts';

/** Waits sized for a loaded 2-core machine: Node and Python processes take seconds to start there. */
const WAIT_MS = 30_000;

let tmp: ReturnType<typeof tempDir>;
/** The cell's PLC (zone cell-a): the probing tests' target, and the second zone of the cross-zone one. */
let plc: Plc;
/** The office PLC (zone office): the first zone of the cross-zone test. */
let officePlc: Plc;
let plcPort: number;
let officePort: number;

before(async () => {
  tmp = tempDir('penstock-contain-e2e-');
  plcPort = await freePort();
  officePort = await freePort();
  [plc, officePlc] = await Promise.all([Plc.start('tcp', plcPort), Plc.start('tcp', officePort)]);
});

after(async () => {
  await Promise.all([plc?.stop(), officePlc?.stop()]);
  tmp?.cleanup();
});

/**
 * Two front doors: `mb` binds loopback to vendor-a (one grant on plc-1); `mb-zones` binds it to
 * vendor-z, with unit 1 routed to the office PLC and unit 2 to the cell's PLC, and a grant on each
 * (none naming both). Probing's action is the test's; cross-zone movement is always killed.
 * `everyRead`: journal each allowed read. The detectors see only what is journaled one by one, and by
 * default allowed reads are folded into a per-session aggregate: a session bound to no single target
 * (a listener routing to several) that only reads is then not seen moving between zones.
 */
function config(dir: string, probing: ContainmentAction, modbusPort: number, zonesPort: number, everyRead: boolean): string {
  return `appliance: { id: gw-contain, site: Test bench, zone: dmz, state_dir: ${dir}/state, runtime_dir: ${dir}/run }
journal: { every_read: ${everyRead}, aggregate_reads_seconds: 3600 }
listeners:
  - { id: mb, protocol: modbus, mode: tcp, host: 127.0.0.1, port: ${modbusPort}, bindings: [{ source: 127.0.0.1, principal: vendor-a }], routes: [{ unit: 1, target: plc-1 }] }
  - id: mb-zones
    protocol: modbus
    mode: tcp
    host: 127.0.0.1
    port: ${zonesPort}
    bindings: [{ source: 127.0.0.1, principal: vendor-z }]
    routes: [{ unit: 1, target: office-1 }, { unit: 2, target: plc-1, target_unit: 1 }]
principals:
  - { id: vendor-a, kind: vendor, owner: Pump Service Ltd, purpose: Pump station tuning }
  - { id: vendor-z, kind: vendor, owner: Integrator Ltd, purpose: Office reporting }
targets:
  - { id: plc-1, protocol: modbus, zone: cell-a, host: 127.0.0.1, port: ${plcPort}, timeout_ms: 1000 }
  - { id: office-1, protocol: modbus, zone: office, host: 127.0.0.1, port: ${officePort}, timeout_ms: 1000 }
grants:
  - id: g-pumps
    principal: vendor-a
    targets: [plc-1]
    task: { ticket: CHG-42 }
    rules:
      - modbus: { access: read, tables: [holding_register], addresses: ["0-49"] }
      - modbus: { access: write, tables: [holding_register], addresses: ["10-19"], min: 0, max: 500 }
  - { id: g-office, principal: vendor-z, targets: [office-1], task: { ticket: RPT-1 }, rules: [{ modbus: { preset: readonly } }] }
  - { id: g-cell, principal: vendor-z, targets: [plc-1], task: { ticket: RPT-2 }, rules: [{ modbus: { preset: readonly } }] }
alerts:
  probing: { action: ${probing} }
  cross_zone: { action: kill }
`;
}

/** The journal as the daemon commits it: `penstockctl --json watch --events all`, one stored event per line. */
class JournalFollow {
  readonly #child: ChildProcess;
  readonly #events: StoredEvent[] = [];
  #following = false;
  readonly #closed: Promise<unknown>;

  constructor(socket: string) {
    this.#child = spawn(NODE, [join(ROOT, 'src/cli/penstockctl.ts'), '--socket', socket, '--json', 'watch', '--events', 'all'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.#closed = new Promise((r) => this.#child.once('close', r));
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      const l = JSON.parse(line) as { type: string; event?: StoredEvent };
      if (l.type === 'sessions') this.#following = true;
      if (l.type === 'event' && l.event) this.#events.push(l.event);
    });
  }

  /** Resolves once the stream has begun (its first line, the live sessions). */
  following(): Promise<boolean> {
    return until(() => this.#following, 'penstockctl watch following the journal', WAIT_MS);
  }

  events(): readonly StoredEvent[] {
    return this.#events;
  }

  /** The first event matching, once committed. */
  find(what: string, match: (e: StoredEvent) => boolean): Promise<StoredEvent> {
    return until(() => this.#events.find(match), what, WAIT_MS);
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null) this.#child.kill('SIGTERM');
    await this.#closed;
  }
}

interface Site {
  daemon: DaemonProcess;
  journal: JournalFollow;
  /** The `mb` door (vendor-a) and the `mb-zones` door (vendor-z). */
  port: string;
  zonesPort: string;
  ctl: DaemonProcess['ctl'];
  approvals(): Promise<PendingApproval[]>;
  stop(): Promise<void>;
}

/** The daemon on its config, and the journal followed before any traffic. */
async function startSite(action: ContainmentAction, everyRead = false): Promise<Site> {
  const dir = join(tmp.dir, action);
  mkdirSync(dir);
  const [modbusPort, zonesPort] = [await freePort(), await freePort()];
  const daemon = await startDaemon(dir, config(dir, action, modbusPort, zonesPort, everyRead));
  const journal = new JournalFollow(daemon.socket);
  try {
    await journal.following();
  } catch (err) {
    await journal.stop();
    await daemon.stop();
    throw err;
  }
  return {
    daemon,
    journal,
    port: String(modbusPort),
    zonesPort: String(zonesPort),
    ctl: (args, input) => daemon.ctl(args, input),
    approvals: () => daemon.json<PendingApproval[]>(['approvals', 'list']),
    stop: async () => {
      await journal.stop();
      await daemon.stop();
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
const alertSeqOf = (contained: StoredEvent) => (contained.detail!.alert as { seq: number }).seq;

/** The containment.applied record of `action`, once journaled; it must say the step was taken. */
async function appliedStep(site: Site, action: ContainmentAction): Promise<StoredEvent> {
  const e = await site.journal.find(`containment.applied (${action})`, (x) => x.event === 'containment.applied' && x.detail?.action === action);
  assert.equal(e.detail!.applied, true, JSON.stringify(e.detail));
  return e;
}

/**
 * The alert containment acted on is the real detector's, as journaled: `kind` from the engine, raised
 * by the journal events it names (`triggers`), each an event of `principal` matching `trigger`.
 */
function assertRealAlert(site: Site, contained: StoredEvent, kind: string, trigger: (e: StoredEvent) => boolean): StoredEvent {
  const alert = site.journal.events().find((e) => e.seq === alertSeqOf(contained))!;
  assert.equal(alert?.event, `alert.${kind}`);
  assert.equal(alert.principal, contained.principal);
  const triggers = alert.detail!.triggers as number[];
  assert.ok(triggers.length >= 2, `triggers ${triggers}`);
  for (const seq of triggers) {
    const e = site.journal.events().find((x) => x.seq === seq);
    assert.ok(e && e.principal === alert.principal && trigger(e), `trigger ${seq} is ${JSON.stringify(e)}`);
  }
  assert.ok(alert.seq < contained.seq);
  return alert;
}

const isDenial = (e: StoredEvent) => e.event === 'action.denied' && e.decision?.reason === 'object_not_granted';

/** Probing from mbpoll: four runs (four connections), each reading the next register no grant covers. */
async function probeWithMbpoll(site: Site): Promise<void> {
  for (const address of [60, 61, 62, 63]) {
    const r = await mbpoll(['-p', site.port, '-r', String(address), '127.0.0.1']);
    assert.match(r.stdout + r.stderr, /Illegal data address/i);
  }
}

/** mbpoll polling on one connection (one session) every 100 ms until stopped; its output so far. */
function pollWithMbpoll(args: string[]): { out(): string; stop(): Promise<void> } {
  const child = spawn('mbpoll', ['-m', 'tcp', '-0', '-o', '1', '-l', '100', ...args, '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => child.once('close', r));
  return {
    out: () => out,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('containment over the Modbus front door, driven by the real alert engine in the daemon', () => {
  it('suspend: after probing, the same session\'s next allowed write waits for approvals approve; sessions resume lifts it', async () => {
    const site = await startSite('suspend');
    const client = new PymodbusSession(site.port);
    try {
      await client.ready;
      // Probing: a denied register, then the next ones, each refused with Illegal data address.
      for (const address of [60, 61, 62, 63]) assert.deepEqual(await client.request('read', address), { error: true, exception: 2 });
      const contained = await appliedStep(site, 'suspend');
      const session = contained.session!;
      const alertSeq = alertSeqOf(contained);
      const alert = assertRealAlert(site, contained, 'probing', isDenial);
      assert.equal(alert.session, session);
      assert.equal(alert.detail!.sign, 'retries');

      // The next allowed write of that session is held for a person, naming the alert; nothing reaches the PLC.
      const write = client.send('write', 12, 250);
      await site.journal.find('approval.requested', (e) => e.event === 'approval.requested' && e.session === session);
      const approval = (await site.approvals()).find((a) => a.session === session)!;
      assert.deepEqual(approval.alert, { kind: 'probing', seq: alertSeq });
      const listed = await site.ctl(['approvals', 'list']);
      assert.match(listed.stdout, new RegExp(`${approval.id}.*held by alert\\.probing #${alertSeq}`));
      // Another session of the same vendor is not suspended: its write arrives at once (and shows the PLC serves).
      const other = await mbpoll(['-p', site.port, '-r', '13', '127.0.0.1', '77']);
      assert.equal(other.code, 0, other.stdout + other.stderr);
      await until(() => writesAt(13).some((w) => w.value === 77), 'the other session\'s write at the PLC', WAIT_MS);
      assert.deepEqual(writesAt(12), [], 'the held write has not reached the PLC');
      assert.equal(client.answer(write), undefined, 'the client is still waiting');

      const approve = await site.ctl(['approvals', 'approve', approval.id, '--note', 'checked with the vendor']);
      assert.equal(approve.code, 0, approve.stderr);
      await until(() => writesAt(12).some((w) => w.value === 250), 'the approved write at the PLC', WAIT_MS);
      assert.deepEqual(await until(() => client.answer(write), 'the write\'s answer', WAIT_MS), { error: false });
      await site.journal.find('approval.granted', (e) => e.event === 'approval.granted' && e.session === session);

      // Still suspended until staff lift it; sessions list says so.
      const sessions = await site.ctl(['sessions', 'list']);
      assert.match(sessions.stdout, new RegExp(`${session} \\(suspended: alert\\.probing #${alertSeq}\\)`));
      const resume = await site.ctl(['sessions', 'resume', session]);
      assert.equal(resume.code, 0, resume.stderr);
      assert.match(resume.stdout, new RegExp(`resumed session ${session}`));
      const lifted = await site.journal.find('containment.lifted', (e) => e.event === 'containment.lifted');
      assert.equal(lifted.session, session);
      assert.equal((lifted.detail!.by as { uid: number }).uid, process.getuid!());
      // Lifted: the session's next write goes straight through, with no approval asked.
      assert.deepEqual(await client.request('write', 14, 99), { error: false });
      // The PLC's log line can come after its answer.
      await until(() => writesAt(14).some((w) => w.value === 99), 'the lifted session\'s write at the PLC', WAIT_MS);
      assert.deepEqual(await site.approvals(), []);
      assert.equal(site.journal.events().filter((e) => e.event === 'approval.requested').length, 1);
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
      assertRealAlert(site, contained, 'probing', isDenial);
      assert.equal(contained.detail!.grant, 'g-pumps');
      assert.equal(contained.detail!.grant_from, 'target');
      const alertSeq = alertSeqOf(contained);
      const grants = await site.ctl(['grants', 'list']);
      assert.match(grants.stdout, new RegExp(`g-pumps\\s+active, approval required \\(alert\\.probing #${alertSeq}\\)`));

      // A new connection (a new session) writing under the grant waits for a person. pymodbus's client,
      // which waits up to 60 s: mbpoll gives up after 10 s at most, less than a loaded machine may need.
      client = new PymodbusSession(site.port);
      await client.ready;
      const held = client.send('write', 16, 321);
      await site.journal.find('approval.requested', (e) => e.event === 'approval.requested');
      const [approval] = await site.approvals();
      assert.ok(approval, 'the approval request');
      assert.deepEqual(approval.alert, { kind: 'probing', seq: alertSeq });
      assert.equal(approval.grant, 'g-pumps');
      await plc.logged();
      assert.deepEqual(writesAt(16), [], 'nothing reached the PLC yet');
      const approve = await site.ctl(['approvals', 'approve', approval.id]);
      assert.equal(approve.code, 0, approve.stderr);
      assert.deepEqual(await until(() => client!.answer(held), 'the write\'s answer', WAIT_MS), { error: false });
      // The PLC's log line can come after its answer.
      await until(() => writesAt(16).some((w) => w.value === 321), 'the approved write at the PLC', WAIT_MS);

      const release = await site.ctl(['grants', 'release', 'g-pumps']);
      assert.equal(release.code, 0, release.stderr);
      assert.match(release.stdout, new RegExp(`released grant g-pumps \\(held since alert\\.probing, journal seq ${alertSeq}\\)`));
      const again = await site.ctl(['grants', 'release', 'g-pumps']);
      assert.equal(again.code, 5);
      assert.match(again.stderr, /PS_NOT_CONTAINED/);
      const direct = await mbpoll(['-p', site.port, '-r', '17', '127.0.0.1', '322']);
      assert.equal(direct.code, 0, direct.stdout + direct.stderr);
      await until(() => writesAt(17).some((w) => w.value === 322), 'the released grant\'s write at the PLC', WAIT_MS);
      assert.equal(site.journal.events().filter((e) => e.event === 'approval.requested').length, 1, 'released: no approval asked');
    } finally {
      await client?.close();
      await site.stop();
    }
  });

  it('kill: probing (mbpoll polling a denied register) ends the session, and mbpoll\'s connection is closed under it', async () => {
    const site = await startSite('kill');
    // mbpoll polling a register no grant covers, every 100 ms on one connection (one session): a burst.
    const poller = pollWithMbpoll(['-p', site.port, '-r', '60']);
    try {
      const contained = await appliedStep(site, 'kill');
      const session = contained.session!;
      const alert = assertRealAlert(site, contained, 'probing', (e) => isDenial(e) && e.session === session);
      assert.equal(alert.detail!.sign, 'burst');
      const killed = await site.journal.find('session.killed', (e) => e.event === 'session.killed' && e.session === session);
      assert.equal(killed.detail!.reason, 'killed');
      assert.match(String(killed.detail!.detail), new RegExp(`containment of alert\\.probing \\(journal seq ${alert.seq}\\)`));
      // The client side: its connection was closed by the gateway.
      await until(() => /Connection reset by peer/.test(poller.out()), 'mbpoll to see its connection closed', WAIT_MS);
      assert.match(poller.out(), /Illegal data address/, 'it was refused before');
      const live = await site.daemon.json<{ id: string }[]>(['sessions', 'list']);
      assert.ok(!live.some((s) => s.id === session), 'the session is gone');
    } finally {
      await poller.stop();
      await site.stop();
    }
  });

  it('revoke: probing revokes the grant; the vendor\'s next connection is refused and its write never reaches the PLC', async () => {
    const site = await startSite('revoke');
    try {
      await probeWithMbpoll(site);
      const contained = await appliedStep(site, 'revoke');
      assertRealAlert(site, contained, 'probing', isDenial);
      assert.equal(contained.detail!.grant, 'g-pumps');
      const listed = await site.daemon.json<{ id: string; active: boolean; revoked?: { by: { user: string }; reason: string } }[]>(['grants', 'list']);
      const grant = listed.find((g) => g.id === 'g-pumps')!;
      assert.equal(grant.active, false);
      assert.equal(grant.revoked?.by.user, 'penstock-containment');
      assert.match(grant.revoked!.reason, /containment of alert\.probing/);
      // The vendor has no active grant left: the front door refuses the connection; nothing reaches the PLC.
      const w = await mbpoll(['-p', site.port, '-r', '15', '127.0.0.1', '5']);
      assert.notEqual(w.code, 0);
      await plc.logged();
      assert.deepEqual(writesAt(15), []);
      await site.journal.find('the refused connection', (e) => e.event === 'auth.failed' && e.detail?.reason === 'no_active_grant');
    } finally {
      await site.stop();
    }
  });

  it('cross-zone, kill: one session reading the office PLC, then the cell\'s, raises alert.cross_zone and is ended; mbpoll\'s connection is closed', async () => {
    const site = await startSite('log', true);
    // mbpoll on one connection polling unit 1 (office-1, zone office) then unit 2 (plc-1, zone cell-a),
    // register 3, every 100 ms. vendor-z holds a grant on each target, none naming both.
    const poller = pollWithMbpoll(['-p', site.zonesPort, '-a', '1,2', '-r', '3']);
    try {
      const contained = await appliedStep(site, 'kill');
      const session = contained.session!;
      const alert = assertRealAlert(site, contained, 'cross_zone', (e) => e.event === 'action.allowed' && e.session === session);
      assert.equal(alert.event, 'alert.cross_zone');
      assert.equal(alert.principal, 'vendor-z');
      assert.deepEqual([alert.detail!.from, alert.detail!.to], [{ target: 'office-1', zone: 'office' }, { target: 'plc-1', zone: 'cell-a' }]);
      assert.equal(alert.detail!.severity, 'critical');
      const killed = await site.journal.find('session.killed', (e) => e.event === 'session.killed' && e.session === session);
      assert.match(String(killed.detail!.detail), new RegExp(`containment of alert\\.cross_zone \\(journal seq ${alert.seq}\\)`));
      // Both PLCs saw the session's reads before it was ended (allowed: the alert follows the event).
      await Promise.all([officePlc.logged(), plc.logged()]);
      assert.ok(officePlc.requests.some((r) => r.fc === 3 && r.address === 3), 'the office PLC was read');
      assert.ok(plc.requests.some((r) => r.fc === 3 && r.address === 3), 'the cell\'s PLC was read');
      // The client side: its connection was closed by the gateway.
      await until(() => /Connection reset by peer/.test(poller.out()), 'mbpoll to see its connection closed', WAIT_MS);
      // Only that movement alerted: the same principal's two zones do not alert again within the quiet period.
      assert.equal(site.journal.events().filter((e) => e.event === 'alert.cross_zone').length, 1);
    } finally {
      await poller.stop();
      await site.stop();
    }
  });
});
