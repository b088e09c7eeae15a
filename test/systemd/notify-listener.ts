// A stand-in for systemd's notification socket: a unix datagram listener (Node has none, so a small
// /usr/bin/python3 program) that reports every message as one JSON line. Reusable by the daemon's
// readiness test: point NOTIFY_SOCKET at `path` and wait for READY=1 with `next()`.
//
// systemd-notify follows each message with BARRIER=1 carrying a pipe fd and waits until the
// receiver closes it; the listener closes received fds at once, as systemd does, and hides barriers.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';

const PYTHON = '/usr/bin/python3';

const LISTENER = String.raw`
import array, json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"listening": True}), flush=True)
while True:
    data, anc, flags, _ = s.recvmsg(65536, socket.CMSG_SPACE(16 * 4) + socket.CMSG_SPACE(12))
    pid = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for fd in fds:
                os.close(fd)
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    print(json.dumps({"pid": pid, "text": data.decode("utf-8", "replace")}), flush=True)
`;

export interface NotifyMessage {
  /** Sender pid from SCM_CREDENTIALS: the daemon's own pid only when the sender may claim it. */
  pid: number | null;
  /** Assignments in the datagram, e.g. { READY: '1', STATUS: '…', MAINPID: '123' }. */
  fields: Record<string, string>;
  text: string;
}

export interface NotifyListener {
  readonly path: string;
  /** Every non-barrier message received so far, in order. */
  readonly messages: NotifyMessage[];
  /** The first message (already received or still to come) that matches. */
  next(match: (m: NotifyMessage) => boolean): Promise<NotifyMessage>;
  close(): Promise<void>;
}

export async function startNotifyListener(dir: string): Promise<NotifyListener> {
  const path = join(dir, 'notify.sock');
  const child: ChildProcessWithoutNullStreams = spawn(PYTHON, ['-c', LISTENER, path], { stdio: ['pipe', 'pipe', 'pipe'] });
  const messages: NotifyMessage[] = [];
  const waiters: { match: (m: NotifyMessage) => boolean; resolve: (m: NotifyMessage) => void }[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const listening = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    void exited.then(() => reject(new Error(`notify listener exited: ${stderr}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const raw = JSON.parse(line) as { listening?: true; pid?: number | null; text?: string };
      if (raw.listening) return resolve();
      const text = raw.text ?? '';
      if (text === 'BARRIER=1') return;
      const fields: Record<string, string> = {};
      for (const assignment of text.split('\n')) {
        const eq = assignment.indexOf('=');
        if (eq > 0) fields[assignment.slice(0, eq)] = assignment.slice(eq + 1);
      }
      const message = { pid: raw.pid ?? null, fields, text };
      messages.push(message);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i]!;
        if (w.match(message)) {
          waiters.splice(i, 1);
          w.resolve(message);
        }
      }
    });
  });
  try {
    await listening;
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }

  return {
    path,
    messages,
    next(match) {
      const seen = messages.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
