// SFTP paths are decided where they lead on the target (issue 11, defect 5): a symlink inside the granted
// folder that points outside it is refused for get and put, and REALPATH never tells a path no grant
// covers. Real OpenSSH sftp, the real daemon, a real sshd; assertions on the target's files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, existsSync, lchownSync, mkdirSync, readFileSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import ssh2, { type SFTPWrapper } from 'ssh2';
import { run, sshSkipReason, testUserIds } from './harness.ts';
import { startSite, type Site } from './fixture.ts';

const skip = sshSkipReason();
let site: Site;
let outside: string;
const ORIGINAL = 'outside the grant, unchanged\n';

before(async () => {
  if (skip) return;
  site = await startSite();
  const { uid, gid } = testUserIds();
  // A folder outside the grant the target user may write: only policy stands between the vendor and it.
  outside = join(site.dir, 'outside');
  mkdirSync(outside, { mode: 0o755 });
  chownSync(outside, uid, gid);
  writeFileSync(join(outside, 'secret.txt'), ORIGINAL, { mode: 0o644 });
  chownSync(join(outside, 'secret.txt'), uid, gid);
  writeFileSync(join(site.target, 'inside.txt'), 'inside\n');
  const links: [string, string][] = [
    ['link-file', join(outside, 'secret.txt')],
    ['link-dir', outside],
    ['dangling', join(outside, 'created-through-link')],
    ['inner-link', join(site.target, 'inside.txt')],
  ];
  for (const [name, to] of links) {
    symlinkSync(to, join(site.target, name));
    lchownSync(join(site.target, name), uid, gid);
  }
  symlinkSync(join(outside, 'real-name-7f3a'), join(outside, 'alias'));
});
after(async () => {
  await site?.stop();
});

async function sftp(batch: string, verbose = false) {
  const file = join(site.dir, `batch-${Math.random().toString(16).slice(2)}`);
  writeFileSync(file, batch);
  return run('sftp', [...(verbose ? ['-vvv'] : []), '-b', file, ...site.fileArgs(), 'rtu-7@127.0.0.1']);
}

test('get through a link inside the grant to a file outside is refused', { skip }, async () => {
  const local = join(site.dir, 'got-secret.txt');
  const local2 = join(site.dir, 'got-secret-2.txt');
  const r = await sftp(`-get ${site.target}/link-file ${local}\n-get ${site.target}/link-dir/secret.txt ${local2}\n`);
  assert.match(r.stderr, /Permission denied/);
  assert.equal(existsSync(local), false, 'the outside file was downloaded');
  assert.equal(existsSync(local2), false, 'the outside file was downloaded through a linked folder');
  assert.doesNotMatch(r.stderr, /secret\.txt \(|outside\/secret/, 'the refusal does not tell where the link leads');
  const events = await site.gw.events();
  const denied = events.filter((e) => e.event === 'action.denied' && e.action?.ssh?.path === join(outside, 'secret.txt'));
  assert.ok(denied.length > 0, 'decided and journaled on the path the link leads to');
});

test('put through a link inside the grant is refused; the outside file is unchanged and nothing is created outside', { skip }, async () => {
  const local = join(site.dir, 'payload.txt');
  writeFileSync(local, 'written by the vendor\n');
  const r = await sftp(`-put ${local} ${site.target}/link-file\n-put ${local} ${site.target}/link-dir/planted.txt\n-put ${local} ${site.target}/dangling\n`);
  assert.match(r.stderr, /Permission denied/);
  assert.equal(readFileSync(join(outside, 'secret.txt'), 'utf8'), ORIGINAL);
  assert.equal(existsSync(join(outside, 'planted.txt')), false);
  assert.equal(existsSync(join(outside, 'created-through-link')), false);
});

test('REALPATH never tells a path outside every grant', { skip }, async () => {
  // sftp -vvv prints each REALPATH answer (debug3: SSH2_FXP_REALPATH PATH -> ANSWER) and every refusal.
  const viaLink = await sftp(`-cd ${site.target}/link-dir\npwd\n`, true);
  assert.ok(!(viaLink.stdout + viaLink.stderr).includes(outside), `where the linked folder leads was told:\n${viaLink.stderr}`);
  assert.match(viaLink.stdout, /Remote working directory: \/\n/, 'the start-up folder tells nothing when no grant covers the home');
  const outsideLink = await sftp(`-cd ${outside}/alias\n`, true);
  assert.doesNotMatch(outsideLink.stdout + outsideLink.stderr, /real-name-7f3a/, 'the resolved name of a link outside the grant was told');
  assert.match(outsideLink.stderr, /object_not_granted/);
  // Inside the grant REALPATH answers as the target resolves it.
  const inside = await sftp(`cd ${site.target}/inner-link/..\npwd\n`);
  assert.equal(inside.code, 0, inside.stderr);
  assert.match(inside.stdout, new RegExp(`Remote working directory: ${site.target}\n`));
});

test('links that stay inside the grant work, and removing a link removes the link, not what it points at', { skip }, async () => {
  const local = join(site.dir, 'got-inner.txt');
  const r = await sftp(`get ${site.target}/inner-link ${local}\nrm ${site.target}/link-file\n`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(local, 'utf8'), 'inside\n');
  assert.throws(() => lstatSync(join(site.target, 'link-file')), /ENOENT/);
  assert.equal(readFileSync(join(outside, 'secret.txt'), 'utf8'), ORIGINAL);
});

test('a link swapped in on the target between an upload\'s open and its close is caught: nothing is written through it', { skip }, async () => {
  // OpenSSH's sftp cannot pause between OPEN and CLOSE, so this step-by-step client is ssh2's.
  const victim = join(outside, 'swap-victim.txt');
  writeFileSync(victim, ORIGINAL);
  chownSync(victim, testUserIds().uid, testUserIds().gid); // the target user could overwrite it: only Penstock stops it
  const c = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    c.on('ready', () => resolve());
    c.on('error', reject);
    c.connect({ host: '127.0.0.1', port: site.gw.port, username: 'rtu-7', privateKey: readFileSync(site.keys.vendor), hostVerifier: () => true });
  });
  try {
    const sftpc = await new Promise<SFTPWrapper>((resolve, reject) => c.sftp((err, s) => (err ? reject(err) : resolve(s))));
    const remote = join(site.target, 'swapped.bin');
    const handle = await new Promise<Buffer>((resolve, reject) => sftpc.open(remote, 'w', (err, h) => (err ? reject(err) : resolve(h))));
    const data = Buffer.from('written through a swapped link\n');
    await new Promise<void>((resolve, reject) => sftpc.write(handle, data, 0, data.length, 0, (err) => (err ? reject(err) : resolve())));
    // Someone on the target puts a link where the upload is going, after Penstock decided the path.
    symlinkSync(victim, remote);
    const closed = await new Promise<Error | undefined>((resolve) => sftpc.close(handle, (err) => resolve(err ?? undefined)));
    assert.ok(closed, 'the close was refused');
    assert.match(closed.message, /changed on the target/);
  } finally {
    c.end();
  }
  assert.equal(readFileSync(victim, 'utf8'), ORIGINAL, 'nothing was written through the link');
});

test('an error from the target reaches the client as its SFTP status in Penstock\'s words, and the journal as a code, never the target\'s text', { skip }, async () => {
  // A file in the granted folder the target user may not read: policy allows the download, the target refuses it.
  const locked = join(site.target, 'locked.bin');
  writeFileSync(locked, 'not for the target user\n', { mode: 0o600 });
  const c = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    c.on('ready', () => resolve());
    c.on('error', reject);
    c.connect({ host: '127.0.0.1', port: site.gw.port, username: 'rtu-7', privateKey: readFileSync(site.keys.vendor), hostVerifier: () => true });
  });
  let refused: (Error & { code?: number }) | undefined;
  try {
    const sftpc = await new Promise<SFTPWrapper>((resolve, reject) => c.sftp((err, s) => (err ? reject(err) : resolve(s))));
    refused = await new Promise<(Error & { code?: number }) | undefined>((resolve) => sftpc.open(locked, 'r', (err) => resolve((err as Error & { code?: number }) ?? undefined)));
  } finally {
    c.end();
  }
  assert.ok(refused, 'the open was refused');
  assert.equal(refused.code, 3, 'SSH_FX_PERMISSION_DENIED, as the target answered');
  assert.notEqual(refused.message, 'Permission denied', "the target's own text was passed on");
  // The outcome is journaled lazily: the client can have the refusal first.
  const events = await site.gw.eventsWhen((ev) => ev.some((e) => e.event === 'action.outcome' && e.action?.ssh?.path === locked), 'the allowed download\'s outcome');
  const outcome = events.find((e) => e.event === 'action.outcome' && e.action?.ssh?.path === locked);
  assert.ok(outcome, 'the allowed download got its outcome');
  assert.equal(outcome.outcome?.error, 'target_permission_denied');
});
