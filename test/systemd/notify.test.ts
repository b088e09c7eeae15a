// sd_notify through the real /bin/systemd-notify (Debian package systemd) to a real unix datagram
// listener standing in for systemd (/usr/bin/python3).
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNotifier, sanitizeStatus, watchdogIntervalMs, type NotifyLog } from '../../src/daemon/notify.ts';
import { startNotifyListener, type NotifyListener } from './notify-listener.ts';

/** A logger that remembers what it was told, so tests can see warnings instead of crashes. */
function recordingLog(): NotifyLog & { warnings: unknown[][] } {
  const warnings: unknown[][] = [];
  const log = { warnings, debug: () => {}, warn: (...args: unknown[]) => void warnings.push(args) };
  return log as unknown as NotifyLog & { warnings: unknown[][] };
}

/** Run `body` with some environment variables replaced, then put them back. */
async function withEnv(vars: Record<string, string | undefined>, body: () => Promise<void>): Promise<void> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (v: Record<string, string | undefined>) => {
    for (const [k, value] of Object.entries(v)) {
      if (value === undefined) delete process.env[k];
      else process.env[k] = value;
    }
  };
  apply(vars);
  try {
    await body();
  } finally {
    apply(saved);
  }
}

describe('sd_notify to a datagram listener', { timeout: 20_000 }, () => {
  let dir: string;
  let listener: NotifyListener;
  let log: ReturnType<typeof recordingLog>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'penstock-notify-'));
    listener = await startNotifyListener(dir);
  });
  after(async () => {
    await listener.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    log = recordingLog();
  });

  test('ready() delivers READY=1 with the status and the daemon pid as MAINPID', async () => {
    await withEnv({ NOTIFY_SOCKET: listener.path }, async () => {
      await createNotifier(log).ready('serving 2 front door(s)');
    });
    const m = await listener.next((x) => x.fields.READY === '1');
    assert.equal(m.fields.STATUS, 'serving 2 front door(s)');
    assert.equal(m.fields.MAINPID, String(process.pid));
    assert.deepEqual(log.warnings, []);
  });

  test('watchdog() delivers WATCHDOG=1 and stopping() delivers STOPPING=1, in order', async () => {
    const before = listener.messages.length;
    await withEnv({ NOTIFY_SOCKET: listener.path }, async () => {
      const n = createNotifier(log);
      // Not awaited one by one: the notifier itself must keep the order.
      await Promise.all([n.watchdog(), n.status('draining'), n.stopping()]);
    });
    await listener.next((x) => x.fields.STOPPING === '1');
    const received = listener.messages.slice(before);
    assert.deepEqual(received.map((m) => Object.keys(m.fields).filter((k) => k !== 'MAINPID')), [['WATCHDOG'], ['STATUS'], ['STOPPING']]);
    assert.equal(received[0]!.fields.WATCHDOG, '1');
    assert.equal(received[1]!.fields.STATUS, 'draining');
    assert.deepEqual(log.warnings, []);
  });

  test('a status cannot smuggle in another assignment', async () => {
    await withEnv({ NOTIFY_SOCKET: listener.path }, async () => {
      await createNotifier(log).status('reloading\nREADY=1\rSTOPPING=1');
    });
    const m = await listener.next((x) => x.fields.STATUS?.startsWith('reloading') === true);
    assert.equal(m.fields.STATUS, 'reloading READY=1 STOPPING=1');
    assert.equal(m.fields.READY, undefined);
    assert.equal(m.fields.STOPPING, undefined);
  });

  test('startWatchdog() pings at once when WATCHDOG_USEC asks for it', async () => {
    await withEnv({ NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '60000000', WATCHDOG_PID: String(process.pid) }, async () => {
      const stop = createNotifier(log).startWatchdog();
      try {
        // The first ping goes out at once; the rest every 30 s (half of 60 s), never reached here.
        await listener.next((x) => x.fields.WATCHDOG === '1');
      } finally {
        stop();
      }
    });
    assert.deepEqual(log.warnings, []);
  });

  test('an unreachable NOTIFY_SOCKET is logged, never thrown (the package rejects with a bare string)', async () => {
    await withEnv({ NOTIFY_SOCKET: join(dir, 'nobody-listens.sock') }, async () => {
      const n = createNotifier(log);
      await n.ready('x');
      await n.watchdog();
    });
    assert.equal(log.warnings.length, 2);
    for (const [fields] of log.warnings) {
      const reason = (fields as { reason: unknown }).reason;
      assert.equal(typeof reason, 'string');
      assert.notEqual(reason, '');
    }
  });

  test('a missing systemd-notify program is logged, never thrown', async () => {
    const emptyBin = mkdtempSync(join(tmpdir(), 'penstock-nobin-'));
    try {
      await withEnv({ NOTIFY_SOCKET: listener.path, PATH: emptyBin }, async () => {
        const n = createNotifier(log);
        await n.ready();
        await n.stopping();
      });
    } finally {
      rmSync(emptyBin, { recursive: true, force: true });
    }
    assert.equal(log.warnings.length, 2);
    for (const [fields] of log.warnings) assert.match(String((fields as { reason: unknown }).reason), /systemd-notify not found/);
  });
});

test('without NOTIFY_SOCKET every call resolves and nothing is sent or warned', async () => {
  const log = recordingLog();
  // With an empty PATH any attempt to run systemd-notify would be warned about: none means none ran.
  const emptyBin = mkdtempSync(join(tmpdir(), 'penstock-nobin-'));
  await withEnv({ NOTIFY_SOCKET: undefined, WATCHDOG_USEC: '1000000', PATH: emptyBin }, async () => {
    const n = createNotifier(log);
    await n.ready('ok');
    await n.status('ok');
    await n.watchdog();
    await n.stopping();
    n.startWatchdog()();
  });
  rmSync(emptyBin, { recursive: true, force: true });
  assert.deepEqual(log.warnings, []);
});

test('watchdogIntervalMs: half of WATCHDOG_USEC, only for this pid, only for a sane value', () => {
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42), 15_000);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42), 15_000);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '43' }, 42), undefined);
  assert.equal(watchdogIntervalMs({}, 42), undefined);
  for (const bad of ['0', '-5', 'abc', '1e6', '', ' 100']) assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: bad }, 42), undefined, bad);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '1' }, 42), 1);
});

test('sanitizeStatus: one line, bounded', () => {
  assert.equal(sanitizeStatus(' a\n\nb\tc\u0000 '), 'a b c');
  const long = sanitizeStatus('x'.repeat(1000));
  assert.equal(long.length, 200);
  assert.ok(long.endsWith('…'));
});
