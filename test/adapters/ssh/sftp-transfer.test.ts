// The SFTP data path (issue 17): the front door tells clients its transfer limits (limits@openssh.com),
// so OpenSSH's sftp moves 255 KiB per READ and WRITE as it does straight to sshd; every file's SHA-256
// is still journaled over exactly the bytes that went through, also for uploads written out of order.
// Real OpenSSH sftp and a real sshd; ssh2's client where OpenSSH cannot send what a test needs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ssh2, { type SFTPWrapper } from 'ssh2';
import { run, sshSkipReason, testUserIds, until, type JournalEvent } from './harness.ts';
import { startSite, type Site } from './fixture.ts';

const skip = sshSkipReason();
let site: Site;

before(async () => {
  if (skip) return;
  site = await startSite();
});
after(async () => {
  await site?.stop();
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const outcome = (events: JournalEvent[], verb: string, path: string) => events.filter((e) => e.event === 'action.outcome' && e.action?.verb === verb && e.outcome?.path === path).at(-1)?.outcome;

async function ssh2Sftp(): Promise<{ sftp: SFTPWrapper; client: ssh2.Client; end: () => void }> {
  const c = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    c.on('ready', () => resolve());
    c.on('error', reject);
    c.connect({ host: '127.0.0.1', port: site.gw.port, username: 'rtu-7', privateKey: readFileSync(site.keys.vendor), hostVerifier: () => true });
  });
  const sftp = await new Promise<SFTPWrapper>((resolve, reject) => c.sftp((err, s) => (err ? reject(err) : resolve(s))));
  return { sftp, client: c, end: () => c.end() };
}

test('OpenSSH sftp is told the limits and moves 255 KiB per READ and WRITE through Penstock; both files hashed', { skip }, async () => {
  const data = randomBytes(1_500_000); // under the fixture grant's max_bytes
  const local = join(site.dir, 'limits-up.bin');
  writeFileSync(local, data);
  const remote = join(site.target, 'limits.bin');
  const back = join(site.dir, 'limits-back.bin');
  const batch = join(site.dir, 'limits-batch');
  writeFileSync(batch, `put ${local} ${remote}\nget ${remote} ${back}\n`);
  const r = await run('sftp', ['-vvv', '-b', batch, ...site.fileArgs(), 'rtu-7@127.0.0.1']);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  // The client's own account of what it was told and what it uses (sftp-client.c, debug3).
  assert.match(r.stderr, /Server supports extension "limits@openssh.com"/);
  assert.match(r.stderr, /server upload\/download buffer sizes 261120 \/ 261120; using 261120 \/ 261120/);
  assert.deepEqual(readFileSync(remote), data, 'the target holds the uploaded bytes');
  assert.deepEqual(readFileSync(back), data, 'the client got the file back');
  const events = await site.gw.events();
  assert.equal(outcome(events, 'upload', remote)?.sha256, sha256(data));
  assert.equal(outcome(events, 'download', remote)?.sha256, sha256(data));
  assert.equal(outcome(events, 'download', remote)?.complete, true);
});

test('an upload written out of order and over itself is journaled with the SHA-256 of the file the target got', { skip }, async () => {
  const { sftp, end } = await ssh2Sftp();
  const remote = join(site.target, 'rewritten.bin');
  const a = randomBytes(100_000);
  const b = randomBytes(100_000);
  const c = randomBytes(30_000);
  try {
    const handle = await new Promise<Buffer>((resolve, reject) => sftp.open(remote, 'w', (err, h) => (err ? reject(err) : resolve(h))));
    const write = (buf: Buffer, at: number) => new Promise<void>((resolve, reject) => sftp.write(handle, buf, 0, buf.length, at, (err) => (err ? reject(err) : resolve())));
    await write(a, 0);
    await write(b, 50_000); // over the second half of a
    await write(c, 200_000); // past a hole of zeros
    await new Promise<void>((resolve, reject) => sftp.close(handle, (err) => (err ? reject(err) : resolve())));
  } finally {
    end();
  }
  const expected = Buffer.concat([a.subarray(0, 50_000), b, Buffer.alloc(50_000), c]);
  const landed = readFileSync(remote);
  assert.deepEqual(landed, expected);
  const up = outcome(await site.gw.events(), 'upload', remote);
  assert.equal(up?.sha256, sha256(landed));
  assert.equal(up?.size, expected.length);
});

test('extended requests other than limits@openssh.com are answered "operation unsupported"', { skip }, async () => {
  const { sftp, end } = await ssh2Sftp();
  try {
    // Penstock does not advertise statvfs; a client that sends it anyway gets OP_UNSUPPORTED (8).
    (sftp as unknown as { _extensions: Record<string, string> })._extensions['statvfs@openssh.com'] = '2';
    const err = await new Promise<Error & { code?: number }>((resolve) => sftp.ext_openssh_statvfs(site.target, (e) => resolve(e as Error & { code?: number })));
    assert.equal(err?.code, 8);
    // The session goes on.
    const st = await new Promise<unknown>((resolve, reject) => sftp.stat(site.target, (e, s) => (e ? reject(e) : resolve(s))));
    assert.ok(st);
  } finally {
    end();
  }
});

test('a client that asks for much and never opens its SSH window gets no more than the window: nothing piles up in the gateway', { skip }, async () => {
  // A bigger file than the fixture's grant allows, under a grant of its own.
  const dir = join(site.target, 'window');
  mkdirSync(dir);
  chownSync(dir, testUserIds().uid, testUserIds().gid);
  const file = join(dir, 'big.bin');
  writeFileSync(file, randomBytes(16 * 1024 * 1024));
  const grant = join(site.dir, 'window-grant.json');
  writeFileSync(grant, JSON.stringify({ id: 'g-window', principal: 'vendor-a', targets: ['rtu-7'], task: { ticket: 'WINDOW' }, rules: [{ ssh: { sftp: { paths: [`${dir}/**`], direction: 'download' } } }] }));
  assert.equal((await site.gw.ctl(['grants', 'issue', '--file', grant])).code, 0);
  const sent = async () => {
    const r = await site.gw.ctl(['--json', 'sessions', 'list']);
    // The busiest live SSH session: this one (an earlier test's, still closing, sent less).
    return Math.max(0, ...(JSON.parse(r.stdout) as { protocol: string; counters: { bytesOut: number } }[]).filter((s) => s.protocol === 'ssh').map((s) => s.counters.bytesOut));
  };
  const { sftp, client: c, end } = await ssh2Sftp();
  try {
    const handle = await new Promise<Buffer>((resolve, reject) => sftp.open(file, 'r', (err, h) => (err ? reject(err) : resolve(h))));
    // From here on the client never tells the gateway it may send more (its 2 MiB window is all there is).
    (c as unknown as { _protocol: { channelWindowAdjust: () => void } })._protocol.channelWindowAdjust = () => {};
    const READ = 255 * 1024;
    for (let at = 0; at < 16 * 1024 * 1024; at += READ) sftp.read(handle, Buffer.alloc(READ), 0, READ, at, () => {});
    const window = 2 * 1024 * 1024;
    await until(async () => (await sent()) >= window - READ, 'the window filled', 30_000);
    // Nothing is waiting for an event here: the gateway must stay put while the client stays silent.
    // Before, it answered every READ into ssh2's queue (16 MiB); now the answers stop at the window.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 300));
      const n = await sent();
      assert.ok(n <= window + READ, `answered ${n} bytes into a ${window}-byte window`);
    }
  } finally {
    end();
  }
});

test('downloads in READs of any size arrive byte for byte: small ones from OpenSSH sftp (-B 7000), large ones at odd offsets and across the end from ssh2; the journal has the file\'s SHA-256', { skip, timeout: 120_000 }, async () => {
  const { uid, gid } = testUserIds();
  const data = randomBytes(1_234_567);
  const remote = join(site.target, 'odd-sizes.bin');
  writeFileSync(remote, data);
  chownSync(remote, uid, gid);
  // Small READs, 3 in flight: each answer is one SSH packet.
  const back = join(site.dir, 'odd-sizes-back.bin');
  const batch = join(site.dir, 'odd-sizes-batch');
  writeFileSync(batch, `get ${remote} ${back}\n`);
  const r = await run('sftp', ['-B', '7000', '-R', '3', '-b', batch, ...site.fileArgs(), 'rtu-7@127.0.0.1']);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  assert.deepEqual(readFileSync(back), data, 'the client got the file');
  const small = outcome(await site.gw.events(), 'download', remote);
  assert.equal(small?.sha256, sha256(data));
  assert.equal(small?.complete, true);
  // 200,000-byte READs (seven SSH packets each) out of order, one across the end of the file, one past it.
  const { sftp, end } = await ssh2Sftp();
  try {
    const h = await new Promise<Buffer>((resolve, reject) => sftp.open(remote, 'r', (err, handle) => (err ? reject(err) : resolve(handle))));
    const read = (at: number, len: number) =>
      new Promise<Buffer>((resolve, reject) => {
        const buf = Buffer.alloc(len);
        sftp.read(h, buf, 0, len, at, (err, n) => (err ? reject(err) : resolve(buf.subarray(0, n))));
      });
    for (const at of [777_777, 3, 400_001, data.length - 150_000]) assert.deepEqual(await read(at, 200_000), data.subarray(at, at + 200_000), `READ at ${at}`);
    assert.equal((await read(data.length, 200_000)).length, 0, 'end of file');
    await new Promise<void>((resolve, reject) => sftp.close(h, (err) => (err ? reject(err) : resolve())));
  } finally {
    end();
  }
});
