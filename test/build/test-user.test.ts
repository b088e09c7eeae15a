// npm test's global setup (test/setup/global.ts) creates the SSH tests' system user when it is missing
// and removes it after the run, so a test run leaves no account behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const exists = (user: string) => spawnSync('id', [user], { stdio: 'ignore' }).status === 0;

test('a run creates the missing test user and removes it afterwards', { skip: process.getuid?.() === 0 ? false : 'needs root (useradd)' }, () => {
  // Another name than penstocktest: the SSH test files running beside this one use that account.
  const user = `pstest${process.pid % 100000}`;
  assert.equal(exists(user), false);
  const tmp = tempDir('penstock-user-');
  try {
    const file = join(tmp.dir, 'user-exists.test.ts');
    copyFileSync(join(ROOT, 'test/setup/fixtures/user-exists.ts'), file);
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const r = spawnSync(process.execPath, ['--test', `--test-global-setup=${join(ROOT, 'test/setup/global.ts')}`, file], {
      encoding: 'utf8',
      env: { ...env, PENSTOCK_TEST_USER: user },
      timeout: 60_000,
    });
    assert.equal(r.status, 0, `the nested run passed (the user existed during it):\n${r.stdout}\n${r.stderr}`);
    assert.equal(exists(user), false, 'the user is gone after the run');
  } finally {
    if (exists(user)) spawnSync('userdel', ['-r', user]);
    tmp.cleanup();
  }
});
