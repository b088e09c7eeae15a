// Issue 10: a whole journal rolled back to an older, self-consistent copy passed `journal verify`. The
// operator keeps a checkpoint elsewhere (the signed note, or tree size and root) and verify proves the
// journal extends it (RFC 6962 consistency proof), through the real admin socket and penstockctl.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES } from '../../src/common/errors.ts';
import { adminCommands } from '../../src/admin/commands.ts';
import { journalCommands } from '../../src/admin/journal-commands.ts';
import { VERIFY_CODES } from '../../src/journal/verify-stored.ts';
import type { LmdbJournal } from '../../src/journal/journal.ts';
import { makeContext, runCtl, startHarness } from '../admin/fixture.ts';
import { appendMany, openJournal, tempDir } from './helpers.ts';

/** penstockctl journal verify against the journal in `path`, over a real admin socket. */
async function verifyCtl(journal: LmdbJournal, args: string[]): Promise<{ code: number | null; out: { ok: boolean; code?: string; size?: number; kept?: { size: number } } }> {
  const { context } = makeContext();
  const h = await startHarness({ commands: { ...adminCommands, ...journalCommands }, server: { context: { ...context, journal } } });
  try {
    const r = await runCtl(['--socket', h.path, '--json', 'journal', 'verify', ...args]);
    return { code: r.code, out: JSON.parse(r.stdout) };
  } finally {
    await h.close();
  }
}

test('the verify codes are registered error codes', () => {
  for (const code of VERIFY_CODES) assert.ok(Object.hasOwn(ERROR_CODES, code), code);
});

test('a journal restored from an older copy fails verify against the newer kept checkpoint, and passes against the older', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const live = join(dir, 'journal');
  const backup = join(dir, 'backup');
  let j = await openJournal(live, { checkpointEvery: 1000 });
  await appendMany(j, 120, 'old');
  const older = j.checkpoint()!;
  await j.close();
  cpSync(live, backup, { recursive: true }); // the older, self-consistent copy
  j = await openJournal(live, { checkpointEvery: 1000 });
  await appendMany(j, 80, 'new');
  const newer = j.checkpoint()!;
  await j.close();
  writeFileSync(join(dir, 'older.checkpoint'), older.note);
  writeFileSync(join(dir, 'newer.checkpoint'), newer.note);

  // The rollback: the older copy put back in place of the live journal.
  rmSync(live, { recursive: true });
  cpSync(backup, live, { recursive: true });
  j = await openJournal(live, { checkpointEvery: 1000 });
  t.after(() => j.close());
  assert.equal(j.size(), older.size);
  assert.deepEqual(await j.verify(), { ok: true, size: older.size }, 'self-consistent: a plain verify cannot tell');

  const rolledBack = await verifyCtl(j, ['--checkpoint', join(dir, 'newer.checkpoint')]);
  assert.equal(rolledBack.code, 1);
  assert.equal(rolledBack.out.code, 'PS_JOURNAL_ROLLED_BACK');
  const byRoot = await verifyCtl(j, ['--tree-size', String(newer.size), '--root', Buffer.from(newer.rootHash, 'base64').toString('hex')]);
  assert.equal(byRoot.out.code, 'PS_JOURNAL_ROLLED_BACK');
  const kept = await verifyCtl(j, ['--checkpoint', join(dir, 'older.checkpoint')]);
  assert.equal(kept.code, 0, JSON.stringify(kept.out));
  assert.deepEqual([kept.out.ok, kept.out.size, kept.out.kept?.size], [true, older.size, older.size]);

  // Rolled back, then written on past the kept size: a different history at that size is a fork.
  await appendMany(j, 150, 'forked');
  const forked = await verifyCtl(j, ['--checkpoint', join(dir, 'newer.checkpoint')]);
  assert.equal(forked.code, 1);
  assert.equal(forked.out.code, 'PS_JOURNAL_FORKED');
  const byWrongRoot = await verifyCtl(j, ['--tree-size', String(older.size), '--root', Buffer.alloc(32, 7).toString('base64')]);
  assert.equal(byWrongRoot.out.code, 'PS_JOURNAL_FORKED');
  assert.equal((await verifyCtl(j, ['--checkpoint', join(dir, 'older.checkpoint')])).code, 0, 'still extends the older one');
});

test('a kept checkpoint that is not this appliance\'s signed note is refused as a bad request', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(join(dir, 'journal'));
  t.after(() => j.close());
  await appendMany(j, 10);
  const note = j.checkpoint()!.note;
  writeFileSync(join(dir, 'forged.checkpoint'), note.replace(/\n10\n/, '\n11\n'));
  const { context } = makeContext();
  const h = await startHarness({ commands: { ...adminCommands, ...journalCommands }, server: { context: { ...context, journal: j } } });
  t.after(() => h.close());
  const r = await runCtl(['--socket', h.path, 'journal', 'verify', '--checkpoint', join(dir, 'forged.checkpoint')]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /PS_ADMIN_BAD_REQUEST/);
});
