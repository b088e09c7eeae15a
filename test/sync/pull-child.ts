// Runs one pull in a child process so a test can SIGKILL it mid-pull. argv[2] = JSON PullOptions
// (without log); prints "page <cursor>" after each durably stored page and "done <json>" at the end.
import { pull } from '../../src/sync/puller.ts';
import type { PullOptions } from '../../src/sync/puller.ts';

const opts = JSON.parse(process.argv[2]!) as PullOptions;
const summary = await pull({ ...opts, onPage: (p) => process.stdout.write(`page ${p.cursor}\n`) });
process.stdout.write(`done ${JSON.stringify(summary)}\n`);
