// A gateway's journal and pusher alone, in a child process a test can SIGKILL at any moment.
// argv[2] = JSON { dir, keyFile, servers, append }: appends `append` events in commits of 50 while the
// pusher runs, prints "size N" after each commit, then "done N" once JetStream holds every event and a
// checkpoint covering them; then waits to be killed or stopped.
import { readFileSync } from 'node:fs';
import { systemClock } from '../../src/common/clock.ts';
import { LmdbJournal } from '../../src/journal/journal.ts';
import { startPusher } from '../../src/push/pusher.ts';
import { APPLIANCE, pushConfig } from './helpers.ts';

const args = JSON.parse(process.argv[2]!) as { dir: string; keyFile: string; servers: string[]; append: number };
const journal = await LmdbJournal.open({
  path: args.dir,
  mapSizeMiB: 64,
  appliance: APPLIANCE,
  signingKeyPem: readFileSync(args.keyFile, 'utf8'),
  clock: systemClock,
  checkpointEvery: 500,
  checkpointSeconds: 3600,
});
const pusher = startPusher({ journal, appliance: APPLIANCE, config: pushConfig(args.servers, { checkpoint_seconds: 1, batch_events: 100 }) });
for (let i = 0; i < args.append; i += 50) {
  await Promise.all(Array.from({ length: Math.min(50, args.append - i) }, (_, k) => journal.append({ event: 'admin.request', principal: 'plant-operator', detail: { pid: process.pid, i: i + k } })));
  process.stdout.write(`size ${journal.size()}\n`);
  await new Promise((r) => setTimeout(r, 5));
}
for (;;) {
  const s = pusher.status();
  if (s.cursor === journal.size() - 1 && s.checkpoint_pushed === journal.size()) break;
  await new Promise((r) => setTimeout(r, 20));
}
process.stdout.write(`done ${journal.size()}\n`);
process.once('SIGTERM', () => void pusher.close().then(() => journal.close()).then(() => process.exit(0)));
setInterval(() => {}, 60_000);
