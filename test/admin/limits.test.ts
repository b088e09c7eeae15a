// One user holding many idle admin connections (and reopening each one the server closes) cannot keep
// other users, or root, from being served; a connection that sends no request is closed in seconds.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_FIRST_REQUEST_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS_PER_UID } from '../../src/admin/server.ts';
import { verifyPeer } from '../../src/admin/peer.ts';
import { until } from '../support.ts';
import { NODE, request, runCtl, startHarness, type Harness } from './fixture.ts';

const uid = process.getuid!();
const canSwitchUsers = uid === 0 && existsSync('/usr/bin/setpriv');
const NOBODY = 65534;
const OTHER_UID = 47_115;
const HOG_CONNECTIONS = 40;

/**
 * Holds HOG_CONNECTIONS connections open, sending nothing, and reopens each as soon as it closes.
 * Prints one JSON line of tallies every 100 ms: connections opened, refusals read (by code), closes.
 */
const HOG = `const net = require('node:net');
const t = { opened: 0, closed: 0, codes: {} };
const open = () => {
  const s = net.createConnection(process.argv[1]);
  s.on('connect', () => t.opened++);
  s.on('data', (d) => { for (const line of String(d).split('\\\\n')) { try { const c = JSON.parse(line).error.code; t.codes[c] = (t.codes[c] || 0) + 1; } catch {} } });
  s.on('error', () => {});
  s.on('close', () => { t.closed++; setTimeout(open, 100); });
};
for (let i = 0; i < ${HOG_CONNECTIONS}; i++) open();
setInterval(() => console.log(JSON.stringify(t)), 100);`;

interface HogTally {
  opened: number;
  closed: number;
  codes: Record<string, number>;
}

function startHog(path: string): { child: ChildProcess; tally: () => HogTally | undefined } {
  const child = spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', NODE, '-e', HOG, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let last: HogTally | undefined;
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    if (lines.length > 0) last = JSON.parse(lines.at(-1)!) as HogTally;
  });
  return { child, tally: () => last };
}

describe('admin connections are bounded per uid', { skip: canSwitchUsers ? false : 'needs root and setpriv' }, () => {
  let h: Harness;
  let hog: ReturnType<typeof startHog>;
  before(async () => {
    h = await startHarness();
    chmodSync(h.dir, 0o755);
    chmodSync(h.path, 0o666);
    hog = startHog(h.path);
    // The hog holds its share and has been refused the rest, at least once each.
    await until(() => {
      const t = hog.tally();
      return t && (t.codes.PS_ADMIN_BUSY ?? 0) >= HOG_CONNECTIONS - DEFAULT_MAX_CONNECTIONS_PER_UID ? t : undefined;
    }, 'the hog to be refused beyond its bound');
  });
  after(async () => {
    hog?.child.kill('SIGKILL');
    await h?.close();
  });

  it('refuses the hog\'s connections beyond its bound with PS_ADMIN_BUSY', () => {
    const t = hog.tally()!;
    assert.ok(t.opened >= HOG_CONNECTIONS, JSON.stringify(t));
    assert.ok((t.codes.PS_ADMIN_BUSY ?? 0) >= HOG_CONNECTIONS - DEFAULT_MAX_CONNECTIONS_PER_UID, JSON.stringify(t));
  });

  it('serves root and another user while the hog keeps reopening', async () => {
    for (let i = 0; i < 3; i++) {
      const asRoot = await runCtl(['--socket', h.path, '--timeout', '5000', 'status']);
      assert.equal(asRoot.code, 0, `root: ${asRoot.stderr}`);
      const asOther = await runCtl(['--socket', h.path, '--timeout', '5000', 'grants', 'list'], { asUid: OTHER_UID });
      assert.equal(asOther.code, 0, `uid ${OTHER_UID}: ${asOther.stderr}`);
    }
    const revoke = await runCtl(['--socket', h.path, '--timeout', '5000', 'grants', 'revoke', 'g-config', '--reason', 'done'], { asUid: OTHER_UID });
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.equal(h.calls.revoked.at(-1)!.by.uid, OTHER_UID);
    assert.ok(hog.tally()!.closed > 0, 'the hog was active throughout');
  });
});

describe('a connection that sends no request', () => {
  it('is closed within the first-request time-out, even while it trickles bytes', async () => {
    const h = await startHarness();
    try {
      const started = Date.now();
      const closedAfter = await new Promise<number>((resolve) => {
        const s = createConnection(h.path);
        // One byte of a request line every 100 ms: never a whole line.
        const drip = setInterval(() => s.write('{'), 100);
        s.on('error', () => {});
        s.on('close', () => {
          clearInterval(drip);
          resolve(Date.now() - started);
        });
      });
      assert.ok(closedAfter >= DEFAULT_FIRST_REQUEST_TIMEOUT_MS - 100, `closed after ${closedAfter} ms`);
      assert.ok(closedAfter < DEFAULT_FIRST_REQUEST_TIMEOUT_MS + 3000, `closed after ${closedAfter} ms`);
    } finally {
      await h.close();
    }
  });
});

describe('a request that arrived in time while the daemon was busy', () => {
  it('is served, not cut off by the first-request deadline that passed meanwhile', async () => {
    // The server runs in this process. Once it has taken the connection (its deadline armed) and the
    // client is connected, the request goes onto the socket and the loop stalls past the deadline, as a
    // busy daemon's would: the next loop turn runs its timers before it reads the socket.
    const DEADLINE_MS = 100;
    let accepted = false;
    let connected = false;
    let stalled = false;
    const h = await startHarness({
      server: {
        firstRequestTimeoutMs: DEADLINE_MS,
        identifyPeer: (socket) => {
          const peer = verifyPeer(socket);
          accepted = true;
          process.nextTick(stallOnce); // after the connection handler has armed the deadline
          return peer;
        },
      },
    });
    const s = createConnection(h.path);
    const stallOnce = () => {
      if (!accepted || !connected || stalled) return;
      stalled = true;
      s.write(request(1, 'status'));
      const end = Date.now() + 3 * DEADLINE_MS;
      while (Date.now() < end) { /* busy */ }
    };
    try {
      s.on('error', () => {});
      s.on('connect', () => {
        connected = true;
        stallOnce();
      });
      let out = '';
      const answer = await new Promise<string>((resolve) => {
        s.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0]!);
        });
        s.on('close', () => resolve(out));
      });
      assert.ok(stalled, 'the loop was stalled with the request on the socket');
      assert.ok(answer.startsWith('{'), `no answer: ${answer}`);
      assert.equal((JSON.parse(answer) as { ok: boolean }).ok, true, answer);
    } finally {
      s.destroy();
      await h.close();
    }
  });
});
