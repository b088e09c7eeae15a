// penstockctl watch against the real daemon: mbpoll and pymodbus (the vendor's tools) make allowed and
// denied requests through the Modbus front door to a pymodbus PLC; the watchers are the real CLI (as a
// process, and in a real terminal under tmux) and a raw socket client that stops reading.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Plc, freePort, mbpoll, runPython } from '../adapters/modbus/fixtures/harness.ts';
import { NODE, ROOT, startDaemon, tempDir, until, type DaemonProcess } from './daemon-harness.ts';
import { modbusDoorYaml } from './modbus-site.ts';

const tmp = tempDir('penstock-watch-');
/** Starting Node processes (several at once) on a loaded 2-core machine takes seconds each. */
const STARTUP_MS = 60_000;
let daemon: DaemonProcess;
let plc: Plc;
let modbusPort: number;

/** The test site's Modbus door, with vendor-1 acting for a work order (the chain the view shows). */
function config(plcPort: number): string {
  const door = modbusDoorYaml(modbusPort, plcPort).replace('purpose: Maintenance }', 'purpose: Maintenance, acting_for: work-order:WO-7 }');
  assert.match(door, /acting_for/);
  return `appliance: { id: watch-gw, site: Test, zone: dmz, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
journal: { path: ${tmp.dir}/journal, aggregate_reads_seconds: 1 }
# The bursts below go as fast as pymodbus can: above the default 200 actions/s a session is throttled.
sessions: { actions_per_second: 100000 }
${door}grants:
  - id: g-maint
    principal: vendor-1
    targets: [plc-1]
    task: { ticket: WO-7 }
    rules:
      - modbus: { preset: readonly }
      - modbus: { access: write, tables: [holding_register], addresses: ["10-19"], max: 1000 }
`;
}

before(async () => {
  const plcPort = await freePort();
  modbusPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  daemon = await startDaemon(tmp.dir, config(plcPort));
});

after(async () => {
  await daemon?.stop();
  await plc?.stop();
  tmp.cleanup();
});

interface Line {
  type: string;
  kind?: string;
  severity?: string;
  dropped?: number;
  first_seq?: number;
  last_seq?: number;
  sessions?: { id: string; principal: string; chain: string[]; target?: string }[];
  event?: { seq: number; event: string; principal?: string; chain?: string[]; target?: string; action?: Record<string, unknown>; decision?: { effect?: string } };
}

interface Watching<T> {
  child: ChildProcess;
  lines: T[];
  stderr: () => string;
  exited: Promise<number | null>;
}

/** penstockctl --json watch ARGS as a process, its stdout lines parsed as they come. */
function watchJson(args: string[]): Watching<Line> {
  return watchProcess(['--json', 'watch', ...args], (l) => JSON.parse(l) as Line);
}

/** penstockctl watch, piped (not a terminal): its plain lines. */
function watchPlain(args: string[]): Watching<string> {
  return watchProcess(['watch', ...args], (l) => l);
}

function watchProcess<T>(args: string[], parse: (line: string) => T): Watching<T> {
  const child = spawn(NODE, [join(ROOT, 'src/cli/penstockctl.ts'), '--socket', daemon.socket, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: T[] = [];
  let buf = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, lines, stderr: () => stderr, exited };
}

const events = (lines: Line[]) => lines.filter((l) => l.type === 'event').map((l) => l.event!);
const write = (address: number, value: number) => mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-t', '4', '-r', String(address), '127.0.0.1', String(value)]);

test('--json: allowed and denied requests arrive in order with their seq, filters apply, the follow is one counted read', async () => {
  const all = watchJson([]);
  const warnings = watchJson(['--severity', 'warning']);
  const stranger = watchJson(['--principal', 'nobody']);
  const chain = watchJson(['--principal', 'work-order:WO-7', '--events', 'decision']);
  const plain = watchPlain(['--target', 'plc-1']);
  try {
    // Each begins with the live sessions (none yet).
    for (const w of [all, warnings, stranger, chain]) await until(() => w.lines.find((l) => l.type === 'sessions'), 'first snapshot', STARTUP_MS);
    await until(() => plain.lines.find((l) => /^-- following target plc-1 from seq \d+ --$/.test(l)), 'the piped watcher following', STARTUP_MS);
    assert.equal((await write(12, 300)).code, 0, 'allowed write');
    assert.notEqual((await write(50, 1)).code, 0, 'denied write');
    const denied = await until(() => events(all.lines).find((e) => e.event === 'action.denied'), 'the denial on the stream');
    await until(() => events(all.lines).filter((e) => e.event === 'session.closed').length >= 2 || undefined, 'both sessions closed');

    const seen = events(all.lines);
    const seqs = seen.map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'in journal order');
    assert.equal(new Set(seqs).size, seqs.length, 'each once');
    const allowed = seen.find((e) => e.event === 'action.allowed')!;
    assert.ok(allowed, 'the allowed write');
    assert.equal(allowed.principal, 'vendor-1');
    assert.deepEqual(allowed.chain, ['vendor-1', 'work-order:WO-7']);
    assert.equal(allowed.target, 'plc-1');
    assert.equal(allowed.action?.verb, 'write');
    assert.ok(allowed.seq < denied.seq);
    // The line is the journal's event as stored: the same as journal show SEQ prints.
    const stored = await daemon.json<{ event: unknown }>(['journal', 'show', String(denied.seq)]);
    assert.deepEqual(denied, (stored as { event?: unknown }).event ?? stored);
    const deniedLine = all.lines.find((l) => l.event?.seq === denied.seq)!;
    assert.equal(deniedLine.kind, 'decision');
    assert.equal(deniedLine.severity, 'warning');
    assert.ok(seen.every((e) => !e.event.startsWith('admin.')), 'the broker\'s own housekeeping is not shown by default');

    // --severity warning: the denial, not the allowed write nor the sessions opening.
    await until(() => events(warnings.lines).find((e) => e.seq === denied.seq), 'the denial for the warnings watcher');
    assert.ok(events(warnings.lines).every((e) => e.event !== 'action.allowed' && e.event !== 'session.opened'));
    // --principal names the principal or anyone it acts for; --events narrows the kinds.
    await until(() => events(chain.lines).find((e) => e.seq === denied.seq), 'the denial for the chain watcher');
    assert.ok(events(chain.lines).every((e) => e.event.startsWith('action.')));
    assert.deepEqual(events(stranger.lines), [], 'nothing of vendor-1 for a watcher of another principal');
    // Piped: one readable line per event.
    const plainDenial = await until(() => plain.lines.find((l) => l.includes(`#${denied.seq} `)), 'the denial, piped');
    assert.match(plainDenial, /^\d\d:\d\d:\d\d #\d+ WARN DENIED \(\w+\) vendor-1 \(for work-order:WO-7\) → plc-1: write /);
  } finally {
    for (const w of [all, warnings, stranger, chain, plain]) w.child.kill('SIGINT');
  }
  for (const w of [all, warnings, stranger, chain, plain]) assert.equal(await w.exited, 0, w.stderr());
  // Journaled as reads: aggregates naming events.follow, counting 5 follows in all, whatever they streamed.
  const follows = await until(async () => {
    const tail = await daemon.json<{ events: { event: { event: string; detail?: { command?: string; count?: number } } }[] }>(['journal', 'tail', '-n', '200']);
    const rows = tail.events.map((r) => r.event).filter((e) => e.event === 'admin.request' && e.detail?.command === 'events.follow');
    const count = rows.reduce((n, e) => n + (e.detail?.count ?? 0), 0);
    return count >= 5 ? count : undefined;
  }, 'the follows audited', STARTUP_MS);
  assert.equal(follows, 5);
});

test('bad filters are refused in the protocol with a code; the daemon stays up', async () => {
  const r = await daemon.ctl(['watch', '--severity', 'loud']);
  assert.equal(r.code, 3, r.stderr);
  const raw = await rawFollow({ severity: 'loud' });
  const header = await raw.next();
  assert.equal((header as { ok: boolean }).ok, false);
  assert.equal((header as { error: { code: string } }).error.code, 'PS_ADMIN_BAD_REQUEST');
  raw.socket.destroy();
  assert.equal((await daemon.ctl(['status'])).code, 0);
});

/** A raw admin client: sends events.follow, reads lines only when asked. */
async function rawFollow(params: Record<string, unknown>): Promise<{ socket: Socket; next: () => Promise<unknown>; nextMatching: (pred: (l: Line) => boolean, what: string) => Promise<Line> }> {
  const socket = connect(daemon.socket);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.write(`${JSON.stringify({ id: 1, command: 'events.follow', params })}\n`);
  const lines: string[] = [];
  let buf = '';
  let wake: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    wake?.();
  });
  let closed = false;
  socket.once('close', () => {
    closed = true;
    wake?.();
  });
  const next = async (): Promise<unknown> => {
    while (lines.length === 0) {
      if (closed) throw new Error('the daemon closed the stream');
      await new Promise<void>((r) => (wake = r));
    }
    return JSON.parse(lines.shift()!) as unknown;
  };
  return {
    socket,
    next,
    /** The first line (from here on) that `pred` accepts; fails after 30 s. */
    nextMatching: async (pred, what) => {
      const timer = setTimeout(() => socket.destroy(new Error(`timed out waiting for ${what}`)), 30_000);
      try {
        for (;;) {
          const l = (await next()) as Line;
          if (pred(l)) return l;
        }
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** pymodbus writes N registers one request at a time through the front door; how long it took (ms). */
async function burst(n: number): Promise<number> {
  const started = performance.now();
  const out = await runPython(`
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port=${modbusPort})
assert c.connect()
bad = 0
for i in range(${n}):
    r = c.write_register(10 + i % 10, i % 1000, slave=1)
    if r.isError():
        if bad == 0: print("first error at", i, repr(r))
        bad += 1
c.close()
print("bad", bad)
`);
  assert.match(out, /bad 0/, out);
  return performance.now() - started;
}

test('a watcher that stops reading slows no front door, loses its place and is told so when it reads again', async (t) => {
  const n = 800; // two events each (allowed, outcome): more than a stuck watcher holds (socket buffers, 1000 queued lines)
  const quiet = await burst(n);

  // Every kind, so that each seq of the journal is either on the stream or inside a lost notice.
  const slow = await rawFollow({ kinds: ['session', 'decision', 'alert', 'grant', 'admin', 'other'] });
  const header = (await slow.next()) as { ok: boolean; result: { next_seq: number } };
  assert.equal(header.ok, true);
  slow.socket.pause(); // reads nothing more: the daemon's socket buffers fill, then its queue
  await plc.logged(); // the first burst's log lines can come after its answers
  const before = plc.writes().length;
  const watched = await burst(n);
  // Every write reached the PLC while the watcher read nothing: nothing waited for it.
  await until(() => plc.writes().length - before >= n || undefined, 'all writes at the PLC');
  // How much slower is for `npm run bench`, not a test's assertion: the times are only reported.
  t.diagnostic(`burst of ${n} writes: ${Math.round(quiet)} ms unwatched, ${Math.round(watched)} ms with a stuck watcher`);

  slow.socket.resume();
  // Read on until a request made after resuming is on the stream: the watcher has its place again.
  const got: Line[] = [];
  const collect = (l: Line): boolean => (got.push(l), false);
  const lost = await slow.nextMatching((l) => (collect(l), l.type === 'lost'), 'the lost notice');
  assert.equal((await write(11, 7)).code, 0);
  const next = await slow.nextMatching((l) => (collect(l), l.type === 'event' && l.event!.event === 'action.allowed'), 'a new event after the gap');
  t.diagnostic(`lost ${lost.dropped} events (seq ${lost.first_seq}-${lost.last_seq}) after ${got.indexOf(lost)} lines`);
  assert.ok(lost.dropped! > 0);
  assert.equal(lost.last_seq! - lost.first_seq! + 1, lost.dropped, 'one run of seqs, told once');
  assert.ok(next.event!.seq > lost.last_seq!);

  // Accounting: from the first streamed seq to the last, each seq once, on the stream or in a gap, in order.
  const told: number[] = [];
  for (const l of got) {
    if (l.type === 'event') told.push(l.event!.seq);
    if (l.type === 'lost') for (let s = l.first_seq!; s <= l.last_seq!; s++) told.push(s);
  }
  assert.equal(told[0], header.result.next_seq, 'from the seq the answer named, nothing missed');
  assert.deepEqual(told, Array.from({ length: told.length }, (_, i) => told[0]! + i));
  assert.equal(got.filter((l) => l.type === 'lost').length, 1);
  slow.socket.destroy();
});

function tmux(...args: string[]): string {
  const r = spawnSync('tmux', ['-L', socketName, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const socketName = `penstock-watch-${process.pid}`;

test('in a real terminal (tmux): the vendor\'s session and a denial appear; q quits and gives the shell back', async (t) => {
  const probe = spawnSync('tmux', ['-V'], { encoding: 'utf8' });
  assert.equal(probe.status, 0, 'tmux is not installed: apt-get install tmux (scripts/install-deps.sh lists it)');
  const cli = `${NODE} ${join(ROOT, 'src/cli/penstockctl.ts')} --socket ${daemon.socket} watch`;
  tmux('new-session', '-d', '-s', 'w', '-x', '120', '-y', '40', 'env PS1=READY$ HOME=/tmp bash --norc --noprofile');
  t.after(() => spawnSync('tmux', ['-L', socketName, 'kill-server']));
  const pane = () => tmux('capture-pane', '-p', '-t', 'w');
  await until(() => pane().includes('READY$') || undefined, 'the shell prompt');
  tmux('send-keys', '-t', 'w', cli, 'Enter');
  await until(() => pane().includes('q or Ctrl-C: quit') || undefined, 'the watch screen', STARTUP_MS);

  // A vendor session that stays open: pymodbus connects, writes, denied, and waits.
  const vendor = spawn('/usr/bin/python3', ['-c', `
import sys, time
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port=${modbusPort})
assert c.connect()
c.write_register(13, 42, slave=1)
c.write_register(77, 1, slave=1)
print("done", flush=True)
sys.stdin.read()
`], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    const screen = await until(() => {
      const p = pane();
      return /vendor-1 \(for work-order:WO-7\)\s+plc-1/.test(p) && p.includes('DENIED (') ? p : undefined;
    }, 'the session row and the denial on screen', 15_000);
    t.diagnostic(screen);
    assert.match(screen, /SESSION\s+WHO \(FOR WHOM\)\s+TARGET/);
    assert.match(screen, /#\d+ WARN DENIED \(\w+\) vendor-1 \(for work-order:WO-7\) → plc-1: write/);
    for (const line of screen.split('\n')) assert.ok(line.length <= 120, `a line wider than the pane: ${line}`);
    // Resized (SIGWINCH): redrawn to the new size, still whole.
    tmux('resize-window', '-t', 'w', '-x', '80', '-y', '20');
    const small = await until(() => {
      const p = pane().replace(/\n$/, '').split('\n');
      return p.length === 20 && p[19]!.includes('q or Ctrl-C: quit') && p[3]!.startsWith('─'.repeat(80)) ? p : undefined;
    }, 'the screen redrawn at 80x20');
    for (const line of small) assert.ok(line.length <= 80, `a line wider than the resized pane: ${line}`);
  } finally {
    vendor.stdin!.end();
  }
  tmux('send-keys', '-t', 'w', 'q');
  tmux('send-keys', '-t', 'w', 'echo "exit=$?"', 'Enter');
  const after = await until(() => (pane().includes('exit=0') ? pane() : undefined), 'the shell after q');
  assert.ok(!after.includes('q or Ctrl-C: quit'), 'the watch screen is gone: the normal screen is back');
  assert.ok(after.includes(cli.slice(0, 40)), 'the command line typed before the watch is on the normal screen again');
});

test('when the daemon stops, a watch ends with status 4 and says so', async () => {
  const w = watchJson([]);
  await until(() => w.lines.find((l) => l.type === 'sessions'), 'following', STARTUP_MS);
  await daemon.stop();
  assert.equal(await w.exited, 4, w.stderr());
  assert.match(w.stderr(), /closed the event stream/);
});
