// A real rsyslog (Debian's rsyslogd with rsyslog-gnutls) started by a test: its own config, work folder
// and pid file in a temp folder, a TLS syslog input (imtcp, gtls driver, anonymous clients, octet-counted
// framing as RFC 5425 sends it) on a free loopback port, and omfile actions writing what it received:
// `messages.jsonl` holds MSG (one line per message), `headers.log` the RFC 5424 header fields and
// structured data. Nothing touches a system rsyslog (no /dev/log input, no system paths). A config rsyslog
// refuses, or a daemon that exits, fails the test at once with rsyslog's own words.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, tempDir } from '../support.ts';
import { accepts } from '../e2e/daemon-harness.ts';

export interface RsyslogTls {
  /** PEM files: the CA rsyslog trusts, its certificate and key. */
  ca: string;
  cert: string;
  key: string;
}

export interface Rsyslog {
  port: number;
  dir: string;
  readonly running: boolean;
  /** MSG of every message received, one per line, in arrival order. */
  messages(): string[];
  /** `<PRI> <HOSTNAME> <APP-NAME> <PROCID> <MSGID> <STRUCTURED-DATA>` of every message, in arrival order. */
  headers(): string[];
  start(): Promise<void>;
  /** SIGTERM and wait (rsyslog finishes what it read). */
  stop(): Promise<void>;
  /** Stop and remove the folder. */
  close(): Promise<void>;
  log(): string;
}

const RSYSLOGD = '/usr/sbin/rsyslogd';

function config(dir: string, port: number, tls: RsyslogTls): string {
  const q = (s: string) => JSON.stringify(s);
  return `
global(
  workDirectory=${q(join(dir, 'work'))}
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=${q(tls.ca)}
  defaultNetstreamDriverCertFile=${q(tls.cert)}
  defaultNetstreamDriverKeyFile=${q(tls.key)}
  maxMessageSize="256k"
)
# Direct: a message rsyslog has read is written by its actions before it reads the next one, so what a
# stopped rsyslog had taken in is on disk (the queue is not where a test's loss would hide).
main_queue(queue.type="Direct")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="${port}")
template(name="msg" type="string" string="%msg%\\n")
template(name="headers" type="string" string="%pri% %hostname% %app-name% %procid% %msgid% %structured-data%\\n")
action(type="omfile" file=${q(join(dir, 'messages.jsonl'))} template="msg")
action(type="omfile" file=${q(join(dir, 'headers.log'))} template="headers")
`;
}

function lines(path: string): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0);
}

export async function startRsyslog(tls: RsyslogTls): Promise<Rsyslog> {
  if (!existsSync(RSYSLOGD)) throw new Error('rsyslog is not installed (no /usr/sbin/rsyslogd): install it with bash scripts/install-deps.sh');
  const { dir, cleanup } = tempDir('penstock-rsyslog-');
  mkdirSync(join(dir, 'work'));
  const port = await freePort();
  const conf = join(dir, 'rsyslog.conf');
  const pidFile = join(dir, 'rsyslogd.pid');
  writeFileSync(conf, config(dir, port, tls));
  // -N1: check the config first, so a refusal fails here with rsyslog's message rather than as a time-out.
  try {
    execFileSync(RSYSLOGD, ['-N1', '-f', conf], { stdio: 'pipe' });
  } catch (err) {
    cleanup();
    const e = err as { stdout?: Buffer; stderr?: Buffer; message: string };
    throw new Error(`rsyslogd refused its config: ${e.stderr?.toString() ?? ''}${e.stdout?.toString() ?? ''}` || e.message);
  }
  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const start = async (): Promise<void> => {
    if (proc) return;
    const p = spawn(RSYSLOGD, ['-n', '-f', conf, '-i', pidFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    exited = new Promise((resolve) => p.once('exit', (code, signal) => {
      exit = { code, signal };
      if (proc === p) proc = undefined;
      resolve();
    }));
    const onData = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-20_000));
    p.stdout!.on('data', onData);
    p.stderr!.on('data', onData);
    const end = Date.now() + 15_000;
    for (;;) {
      if (exit) throw new Error(`rsyslogd exited before it listened (${exit.signal ?? `code ${exit.code}`}):\n${log}`);
      if (await accepts({ port })) return;
      if (Date.now() > end) throw new Error(`rsyslogd did not listen on 127.0.0.1:${port} within 15 s:\n${log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    await start();
  } catch (err) {
    cleanup();
    throw err;
  }
  const stop = async () => {
    proc?.kill('SIGTERM');
    await exited;
  };
  return {
    port,
    dir,
    get running() {
      return proc !== undefined;
    },
    messages: () => lines(join(dir, 'messages.jsonl')),
    headers: () => lines(join(dir, 'headers.log')),
    start,
    stop,
    async close() {
      await stop();
      cleanup();
    },
    log: () => log,
  };
}
