// Issue 10: every long scan ran on the event loop: `journal verify`, `sessions replay` and
// `sessions recording` over the admin socket stopped the daemon serving while they ran. Here the real
// admin server serves a big journal; while a scan runs, other admin requests over the socket and timers
// go on being answered, and the scan is still running when they are.
// PENSTOCK_TEST_JOURNAL_EVENTS sets the journal's size (default 200,000; the case is 1,000,000).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { adminCommands } from '../../src/admin/commands.ts';
import { journalCommands } from '../../src/admin/journal-commands.ts';
import type { LmdbJournal } from '../../src/journal/journal.ts';
import { makeContext, rawExchange, runCtl, startHarness, type Harness } from '../admin/fixture.ts';
import { openJournal, tempDir } from './helpers.ts';

const EVENTS = Number(process.env.PENSTOCK_TEST_JOURNAL_EVENTS ?? 200_000);
const tmp = tempDir();
let journal: LmdbJournal;
let h: Harness;

before(async () => {
  journal = await openJournal(tmp.dir, { checkpointEvery: 1000, mapSizeMiB: 4096 });
  for (let i = 0; i < EVENTS; i += 10_000) {
    await Promise.all(Array.from({ length: Math.min(10_000, EVENTS - i) }, (_, k) => journal.append({ event: 'action.allowed', session: `s-${(i + k) % 97}`, detail: { i: i + k } })));
  }
  const { context } = makeContext();
  h = await startHarness({ commands: { ...adminCommands, ...journalCommands }, server: { context: { ...context, journal } } });
});

after(async () => {
  await h?.close();
  await journal?.close();
  tmp.cleanup();
});

/**
 * Runs `scan` (resolving when its answer arrived) while sending `status` requests one after another over
 * the admin socket and counting timer ticks; counts what was answered while `running()` said the scan was
 * in progress on the server.
 */
async function whileScanning(scan: () => Promise<unknown>, running: () => boolean): Promise<{ answered: number; ticks: number; result: unknown }> {
  let done = false;
  let answered = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    if (running()) ticks++;
  }, 5);
  const pinger = (async () => {
    for (let id = 1; !done; id++) {
      const { responses } = await rawExchange(h.path, `${JSON.stringify({ id, command: 'status' })}\n`, 1);
      assert.equal(responses[0]?.ok, true);
      if (running()) answered++;
      await new Promise((r) => setTimeout(r, 20)); // pace the requests: answering them is not what is measured
    }
  })();
  try {
    const result = await scan();
    return { answered, ticks, result };
  } finally {
    done = true;
    clearInterval(timer);
    await pinger;
  }
}

/**
 * Wraps a journal method so the test knows when the server is inside the scan: from the first call until
 * the call `isLast` names has returned (or its promise settled).
 */
function watch<K extends 'verify' | 'verifyAll' | 'readEvents'>(name: K, isLast: (args: unknown[]) => boolean = () => true): { running: () => boolean; restore: () => void } {
  const j = journal as unknown as Record<string, (...args: unknown[]) => unknown>;
  const original = j[name]!;
  let started = false;
  let finished = false;
  j[name] = function (...args: unknown[]) {
    started = true;
    const r = original.apply(journal, args);
    if (r instanceof Promise) return r.finally(() => (finished ||= isLast(args)));
    finished ||= isLast(args);
    return r;
  };
  return { running: () => started && !finished, restore: () => { j[name] = original; } };
}

test(`penstockctl journal verify of ${EVENTS.toLocaleString('en-US')} events: the admin socket and timers keep answering while it runs`, async () => {
  const verify = watch('verify');
  const verifyAll = watch('verifyAll'); // the old handler verified on the event loop, through verifyAll
  let ctlDone = false;
  try {
    const { answered, ticks, result } = await whileScanning(
      () => runCtl(['--socket', h.path, 'journal', 'verify']),
      () => verify.running() || verifyAll.running(),
    );
    const ctl = result as { code: number; stdout: string };
    assert.equal(ctl.code, 0, ctl.stdout);
    assert.match(ctl.stdout, new RegExp(`^journal OK: ${EVENTS} events verified`));
    assert.ok(answered >= 3, `${answered} admin requests answered while the verify ran`);
    assert.ok(ticks >= 3, `${ticks} timer ticks while the verify ran`);
  } finally {
    verify.restore();
    verifyAll.restore();
  }
});

test('sessions replay and sessions recording scan the whole journal in slices: requests are answered in between', async () => {
  for (const [command, params] of [['sessions.replay', { id: 'no-such-session' }], ['sessions.recording', { sha256: 'a'.repeat(64) }]] as const) {
    let scanning = false;
    let answeredScan = false;
    // The scan's last slice is the one that reaches the end of the journal.
    const reads = watch('readEvents', ([from, limit]) => (from as number) + (limit as number) >= journal.size());
    try {
      const { answered } = await whileScanning(async () => {
        scanning = true;
        const { responses } = await rawExchange(h.path, `${JSON.stringify({ id: 'scan', command, params })}\n`, 1);
        answeredScan = true;
        return responses[0];
      }, () => scanning && !answeredScan && reads.running());
      assert.equal(reads.running(), false, `${command}: the scan read the journal to its end`);
      assert.ok(answered >= 3, `${command}: ${answered} admin requests answered while it scanned ${EVENTS} events`);
    } finally {
      reads.restore();
    }
  }
});
