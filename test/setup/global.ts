// Once around the whole `npm test` run (--test-global-setup): the `penstocktest` system user the SSH
// tests log in as on their sshd target. Created here when missing and removed again at the end, so a
// run leaves no account behind. A user that already existed (made by hand, or by running one SSH test
// file directly, which creates it and leaves it) is left as it was.
import { execFileSync } from 'node:child_process';

// PENSTOCK_TEST_USER: another name, for the test of this file itself (test/build/test-user.test.ts).
const USER = process.env.PENSTOCK_TEST_USER ?? 'penstocktest';
let created = false;

function exists(): boolean {
  try {
    execFileSync('id', [USER], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function globalSetup(): void {
  if (process.getuid?.() !== 0 || exists()) return;
  execFileSync('useradd', ['-m', USER], { stdio: 'ignore' });
  created = true;
}

export function globalTeardown(): void {
  if (!created) return;
  // userdel refuses while the user has processes; the tests kill theirs, this catches any stragglers.
  try {
    execFileSync('pkill', ['-KILL', '-u', USER], { stdio: 'ignore' });
  } catch {}
  try {
    execFileSync('userdel', ['-r', USER], { stdio: 'ignore' });
  } catch {
    // -r exits non-zero over a missing mail spool; what matters is that the account is gone.
  }
  if (exists()) throw new Error(`could not remove the test user ${USER}`);
}
