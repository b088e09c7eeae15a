// sd_notify for the daemon: readiness, status text, watchdog pings, stopping.
//
// Node has no unix datagram sockets, so the message is sent by `systemd-notify` (Debian package
// `systemd`, /bin/systemd-notify) in a child process: through the npm systemd-notify package for
// READY/STATUS (what it supports), and by running the same program directly for WATCHDOG=1 and
// STOPPING=1 (which the package cannot express). Because the sender is a child, the unit needs
// NotifyAccess=all: as a non-root user the child cannot claim the daemon's pid in its credentials.
//
// No fallback sender (socat, python): NOTIFY_SOCKET is set only by systemd, and wherever systemd
// runs the service its own package provides systemd-notify. If the program is missing anyway, the
// failure is logged and the daemon keeps running; systemd then times the start out, visibly.
//
// Nothing here ever throws or rejects: a notification that cannot be delivered is logged, never
// allowed to crash the daemon (the npm package rejects with a plain string on a non-zero exit).
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';

type SdNotifyOptions = { ready?: boolean; status?: string; pid?: number };
// The package is CommonJS without types: one function that resolves on exit code 0.
const sdNotify = createRequire(import.meta.url)('systemd-notify') as (opts: SdNotifyOptions) => Promise<unknown>;

const NOTIFY_PROGRAM = 'systemd-notify';
const STATUS_MAX_CHARS = 200;

export type NotifyLog = Pick<Logger, 'debug' | 'warn'>;

export interface Notifier {
  /** READY=1 (with an optional STATUS=): send only once every listener is bound. */
  ready(status?: string): Promise<void>;
  /** STATUS=: a one-line human-readable state shown by `systemctl status`. */
  status(text: string): Promise<void>;
  /** WATCHDOG=1: one keep-alive ping. */
  watchdog(): Promise<void>;
  /** STOPPING=1: the daemon has begun to drain and shut down. */
  stopping(): Promise<void>;
  /**
   * When systemd asked for a watchdog (WATCHDOG_USEC, for this pid), ping now and then at half the
   * interval. Returns the function that stops the pings (a no-op when no watchdog was asked for).
   */
  startWatchdog(): () => void;
}

/**
 * The ping interval in milliseconds for this process, or undefined when systemd asked for no
 * watchdog: WATCHDOG_USEC missing or not a positive integer, or WATCHDOG_PID naming another process.
 * Half the deadline, as sd_watchdog_enabled(3) recommends.
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || !/^[1-9][0-9]{0,15}$/.test(usec)) return undefined;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== String(pid)) return undefined;
  return Math.max(1, Math.floor(Number(usec) / 2000));
}

/** One line, no control characters, bounded: a status can never smuggle in another assignment. */
export function sanitizeStatus(text: string): string {
  const oneLine = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return oneLine.length > STATUS_MAX_CHARS ? `${oneLine.slice(0, STATUS_MAX_CHARS - 1)}…` : oneLine;
}

export function createNotifier(log: NotifyLog): Notifier {
  // Messages leave in the order they were asked for (a STATUS must not overtake READY).
  let queue: Promise<void> = Promise.resolve();
  let warnedNoSocket = false;

  const deliver = (what: string, send: () => Promise<unknown>): Promise<void> => {
    const run = async (): Promise<void> => {
      // Read at send time: the child inherits process.env, so this is what it will see.
      if (!process.env.NOTIFY_SOCKET) {
        if (!warnedNoSocket) log.debug('NOTIFY_SOCKET not set (not started by systemd); sd_notify messages are skipped');
        warnedNoSocket = true;
        return;
      }
      try {
        await send();
      } catch (err) {
        log.warn({ notify: what, reason: describeFailure(err) }, 'sd_notify message not delivered');
      }
    };
    queue = queue.then(run, run);
    return queue;
  };

  const runProgram = (args: string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      execFile(NOTIFY_PROGRAM, args, { timeout: 10_000 }, (err, _stdout, stderr) => {
        // A spawn failure keeps its errno code (ENOENT); an exit failure becomes its stderr line.
        if (err) reject(typeof err.code === 'string' ? err : stderr.trim() || err.message);
        else resolve();
      });
    });

  const notifier: Notifier = {
    ready(status) {
      return deliver('READY', () => sdNotify({ ready: true, pid: process.pid, ...(status === undefined ? {} : { status: sanitizeStatus(status) }) }));
    },
    status(text) {
      return deliver('STATUS', () => sdNotify({ status: sanitizeStatus(text), pid: process.pid }));
    },
    watchdog() {
      // --no-block: a ping need not wait for the manager to acknowledge it.
      return deliver('WATCHDOG', () => runProgram([`--pid=${process.pid}`, '--no-block', 'WATCHDOG=1']));
    },
    stopping() {
      return deliver('STOPPING', () => runProgram([`--pid=${process.pid}`, 'STOPPING=1']));
    },
    startWatchdog() {
      const everyMs = watchdogIntervalMs(process.env, process.pid);
      if (everyMs === undefined) return () => {};
      void notifier.watchdog();
      const timer = setInterval(() => void notifier.watchdog(), everyMs);
      timer.unref(); // the listeners keep the daemon alive, not the pings
      return () => clearInterval(timer);
    },
  };
  return notifier;
}

// The npm package rejects with a string (the child's stderr) or a spawn Error (ENOENT when
// systemd-notify is not installed); both become one readable line.
function describeFailure(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${NOTIFY_PROGRAM} not found (install the Debian package systemd)` : err.message;
  }
  return typeof err === 'string' && err !== '' ? err : `${NOTIFY_PROGRAM} failed`;
}
