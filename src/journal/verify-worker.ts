// The verify worker: `journal verify` of a large journal takes seconds, so the daemon runs it here, off
// the event loop that serves the front doors. It opens the daemon's LMDB environment from this thread
// (lmdb-js shares the environment; this thread gets its own read transaction, one snapshot for the whole
// run), verifies, posts the result and closes its handle, which ends its read transaction.
import { parentPort, workerData } from 'node:worker_threads';
import { openJournalDbs, openJournalEnv } from './store.ts';
import { verifyStored, type KeptCheckpoint } from './verify-stored.ts';

export interface VerifyJob {
  path: string;
  mapSizeMiB: number;
  vkey: string;
  kept?: { size: number; rootHash: Uint8Array };
}

const job = workerData as VerifyJob;
const env = openJournalEnv(job.path, job.mapSizeMiB);
try {
  const kept: KeptCheckpoint | undefined = job.kept ? { size: job.kept.size, rootHash: new Uint8Array(job.kept.rootHash) } : undefined;
  parentPort!.postMessage({ result: verifyStored(openJournalDbs(env), job.vkey, kept) });
} catch (err) {
  parentPort!.postMessage({ error: (err as Error).message });
} finally {
  await env.close();
}
