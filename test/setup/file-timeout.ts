// Loaded into every test file's process (npm test passes --import): a whole-file time-out.
//
// Why: node --test's --test-timeout bounds each test, but not a file whose before() hook or top-level
// code waits on a peer that never starts, nor an after() hook stuck on a child that never exits; such a
// file kept CI waiting for its 90-minute limit. When the time is up this kills what the file started
// (its descendant processes: sshd, pymodbus, daemons) and fails the file, naming it.
import { descendants } from '../support.ts';

const seconds = Number(process.env.PENSTOCK_TEST_FILE_TIMEOUT_S ?? 480);
const file = process.argv[1] ?? '';

if (/\.test\.ts$/.test(file) && seconds > 0) {
  setTimeout(() => {
    const children = descendants(process.pid);
    for (const pid of children) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    process.stderr.write(`\n${file}: the whole file exceeded its time-out of ${seconds} s (PENSTOCK_TEST_FILE_TIMEOUT_S); killed ${children.length} process(es) it had started\n`);
    process.exit(1);
  }, seconds * 1000).unref();
}
