// npm test's whole-file time-out (test/setup/file-timeout.ts): a file stuck in a hook fails in bounded
// time and the processes it started are gone, instead of keeping node --test (and CI) waiting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support.ts';

const ROOT = join(import.meta.dirname, '..', '..');

test('a file hung in before() fails after its time-out, and its child process is killed', () => {
  const tmp = tempDir('penstock-hang-');
  try {
    // The time-out acts on files named *.test.ts only, as npm test's glob picks them.
    const file = join(tmp.dir, 'hangs.test.ts');
    copyFileSync(join(ROOT, 'test/setup/fixtures/hangs.ts'), file);
    const marker = `${3000 + Math.floor(Math.random() * 1000)}.25`;
    const started = Date.now();
    // Without NODE_TEST_CONTEXT: this file runs under node --test, and a nested runner that inherits it
    // reports to us instead of running on its own.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const r = spawnSync(process.execPath, ['--test', '--import', join(ROOT, 'test/setup/file-timeout.ts'), file], {
      encoding: 'utf8',
      env: { ...env, PENSTOCK_TEST_FILE_TIMEOUT_S: '2', HANG_MARKER: marker },
      timeout: 60_000,
    });
    assert.notEqual(r.status, 0, 'the hung file fails');
    assert.ok(Date.now() - started < 30_000, 'within its time-out, not the 60 s guard');
    assert.match(r.stdout + r.stderr, /exceeded its time-out of 2 s/);
    const pid = Number(/child (\d+)/.exec(r.stdout + r.stderr)?.[1]);
    assert.ok(pid > 0, 'the fixture reported its child');
    assert.equal(existsSync(`/proc/${pid}`) && spawnSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).stdout.includes(marker), false, 'the child sleep is gone');
  } finally {
    tmp.cleanup();
  }
});
