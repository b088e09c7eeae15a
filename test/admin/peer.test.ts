// Who connected, as the kernel says (SO_PEERCRED through koffi), for this process and for real other
// users started with setpriv — and what the server does when the kernel cannot say.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { adminCommands, defineCommand } from '../../src/admin/commands.ts';
import { identifyOperator, peercredConstants, verifyPeer } from '../../src/admin/peer.ts';
import { tempDir } from '../support.ts';
import { NODE, ONE_REQUEST_SCRIPT, nodeAs, rawExchange, request, runCtl, startHarness, type Harness } from './fixture.ts';

const uid = process.getuid!();
const canSwitchUsers = uid === 0 && existsSync('/usr/bin/setpriv');
const NOBODY = 65534;
/** A uid with no passwd entry: identified by number alone. */
const NO_NAME_UID = 47_113;

const whoami = defineCommand({ mutates: true, params: z.strictObject({}), handler: async (_p, { operator }) => operator });
const readOnlyWhoami = defineCommand({ mutates: false, params: z.strictObject({}), handler: async (_p, { operator }) => operator });

/** Accept one connection on a fresh socket and return what verifyPeer says of it. */
async function peerOf(connect: (path: string) => void): Promise<ReturnType<typeof verifyPeer>> {
  const tmp = tempDir('penstock-peer-');
  const path = join(tmp.dir, 's.sock');
  chmodSync(tmp.dir, 0o755);
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer((s) => {
      server.close();
      resolve(s);
    });
    server.listen(path, () => {
      chmodSync(path, 0o666);
      connect(path);
    });
  });
  const socket = await accepted;
  try {
    return verifyPeer(socket);
  } finally {
    socket.destroy();
    tmp.cleanup();
  }
}

describe('verifyPeer (SO_PEERCRED in-process)', () => {
  it('names this process: its uid and pid', async () => {
    const peer = await peerOf((path) => createConnection(path).on('error', () => {}));
    assert.deepEqual(peer, { uid, pid: process.pid });
  });

  it('names a process of another user by its real uid and pid', { skip: canSwitchUsers ? false : 'needs root and setpriv' }, async () => {
    let childPid = -1;
    const peer = await peerOf((path) => {
      const child = spawn('setpriv', [`--reuid=${NO_NAME_UID}`, `--regid=${NO_NAME_UID}`, '--clear-groups', NODE, '-e', `const s=require('node:net').createConnection(process.argv[1]);s.on('close',()=>process.exit(0));s.on('error',()=>process.exit(1));`, path], { stdio: 'ignore' });
      childPid = child.pid!;
    });
    // setpriv execs node in place: the pid the kernel recorded is the child's own.
    assert.deepEqual(peer, { uid: NO_NAME_UID, pid: childPid });
  });

  it('uses SOL_SOCKET 1 / SO_PEERCRED 17 on x86-64, arm64 and arm, and refuses to guess anywhere else', () => {
    for (const arch of ['x64', 'arm64', 'arm']) assert.deepEqual(peercredConstants('linux', arch), { SOL_SOCKET: 1, SO_PEERCRED: 17 }, arch);
    // powerpc's SO_PEERCRED is 21, mips' and sparc's SOL_SOCKET is not 1: a guess would read another option.
    for (const arch of ['ppc64', 'mips', 'mipsel', 'sparc', 's390x', 'riscv64', 'loong64', 'ia32', 'constructor']) assert.equal(peercredConstants('linux', arch), undefined, arch);
    assert.equal(peercredConstants('darwin', 'arm64'), undefined);
  });

  it('an operator is named from the kernel only', async () => {
    assert.deepEqual(await identifyOperator({ uid: 0, pid: 1 }), { uid: 0, user: 'root', verified: true });
    assert.deepEqual(await identifyOperator({ uid: NO_NAME_UID, pid: 1 }), { uid: NO_NAME_UID, verified: true });
    assert.equal(await identifyOperator({ failure: 'no peer credentials' }), undefined);
  });
});

describe('admin server: operators as the kernel names them', { skip: canSwitchUsers ? false : 'needs root and setpriv' }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ commands: { ...adminCommands, 'test.whoami': whoami } });
    chmodSync(h.dir, 0o755);
    chmodSync(h.path, 0o666);
  });
  after(() => h.close());

  it('records a real second user (penstockctl under setpriv) with its real uid', async () => {
    const r = await runCtl(['--socket', h.path, 'grants', 'revoke', 'g-config', '--reason', 'done'], { asUid: NOBODY });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(h.calls.revoked.at(-1)!.by, { uid: NOBODY, user: 'nobody', verified: true });
    const before = h.audits.filter((a) => a.command === 'grants.revoke' && a.phase === 'before').at(-1)!;
    assert.deepEqual(before.operator, { uid: NOBODY, user: 'nobody', verified: true }, 'the journal record names the same uid');
  });

  it('a client that claims to be root is recorded with the uid the kernel gives', async () => {
    const r = await nodeAs(NO_NAME_UID, ONE_REQUEST_SCRIPT, [h.path, request(1, 'test.whoami', {}, { uid: 0, user: 'root' })]);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { ok: boolean; result: unknown };
    assert.equal(res.ok, true);
    assert.deepEqual(res.result, { uid: NO_NAME_UID, verified: true });
    const audit = h.audits.filter((a) => a.command === 'test.whoami').at(-1)!;
    assert.equal(audit.operator.uid, NO_NAME_UID);
  });
});

describe('admin server: the kernel cannot say who connected', () => {
  it('refuses every state-changing command with PS_ADMIN_PEER_UNVERIFIED, whatever the claim; read-only ones answer', async () => {
    const h = await startHarness({
      commands: { ...adminCommands, 'test.whoami': whoami, 'test.readonly_whoami': readOnlyWhoami },
      server: { identifyPeer: () => ({ failure: 'injected: SO_PEERCRED unavailable' }) },
    });
    try {
      const lines = [
        request(1, 'test.whoami', {}, { uid: 0, user: 'root' }),
        request(2, 'grants.revoke', { id: 'g-config', reason: 'x' }, { uid: 0, user: 'root' }),
        request(3, 'config.reload', {}),
        request(4, 'status'),
        request(5, 'grants.list', undefined, { uid: 0, user: 'root' }),
        request(6, 'test.readonly_whoami', {}, { uid: 0, user: 'root' }),
      ];
      const { responses } = await rawExchange(h.path, lines.join(''), lines.length);
      for (const r of responses.slice(0, 3)) assert.equal((r.error as { code: string }).code, 'PS_ADMIN_PEER_UNVERIFIED', String(r.id));
      assert.equal(h.calls.revoked.length, 0, 'no handler ran');
      assert.equal(h.calls.reloads, 0);
      assert.equal(h.grants.find((g) => g.id === 'g-config')!.revoked, undefined);
      assert.equal(responses[3]!.ok, true, 'status still answers');
      assert.equal(responses[4]!.ok, true, 'grants.list still answers');
      assert.deepEqual(responses[5]!.result, { uid: -1, verified: false }, 'the claim of root is not taken');
      // The refused attempts are journaled one by one, naming no operator.
      const refused = h.audits.filter((a) => a.phase === 'after' && a.error === 'PS_ADMIN_PEER_UNVERIFIED');
      assert.deepEqual(refused.map((a) => a.command), ['test.whoami', 'grants.revoke', 'config.reload']);
      assert.ok(refused.every((a) => a.operator.uid === -1 && a.operator.verified === false));
    } finally {
      await h.close();
    }
  });
});
