// Loaded into every test file's process (npm test passes --import): a whole-file time-out.
//
// Why: node --test's --test-timeout bounds each test, but not a file whose before() hook or top-level
// code waits on a peer that never starts, nor an after() hook stuck on a child that never exits; such a
// file kept CI waiting for its 90-minute limit. When the time is up this kills what the file started
// (its descendant processes: sshd, pymodbus, daemons) and fails the file, naming it.
import { readdirSync, readFileSync } from 'node:fs';

const seconds = Number(process.env.PENSTOCK_TEST_FILE_TIMEOUT_S ?? 480);
const file = process.argv[1] ?? '';

/** Every live process below `root`, from /proc (children first found, then theirs). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const p = queue.shift()!;
    for (const [pid, ppid] of parent) if (ppid === p) (out.push(pid), queue.push(pid));
  }
  return out;
}

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
