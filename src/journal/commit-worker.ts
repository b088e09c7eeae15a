// The journal's commit thread (see commit-thread.ts): writes one prepared batch at a time in one
// synchronous LMDB transaction (overlappingSync off: it returns after LMDB's fsync), so that the fsync
// blocks this thread and not the event loop that serves the front doors. It opens the journal's
// environment from this thread (lmdb-js shares it across threads; the LMDB write lock orders this
// thread's transactions with the main thread's).
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { openJournalDbs, openJournalEnv, STATE_KEY } from './store.ts';
import type { CommitJob, CommitResult, CommitThreadData } from './commit-thread.ts';
import { DONE, NODE_BYTES, arenaLayout } from './commit-thread.ts';

const { path, mapSizeMiB, flag, port } = workerData as CommitThreadData & { port: MessagePort };
const env = openJournalEnv(path, mapSizeMiB);
const db = openJournalDbs(env);
parentPort!.postMessage('ready');

port.on('message', (job: CommitJob | 'close') => {
  if (job === 'close') {
    port.close();
    void env.close();
    return;
  }
  let result: CommitResult;
  try {
    const layout = arenaLayout(job.events, job.nodes);
    const keys = new Float64Array(job.arena, 0, job.events + job.nodes);
    const ends = new Uint32Array(job.arena, layout.ends, job.events);
    env.transactionSync(() => {
      let start = layout.bytes;
      for (let i = 0; i < job.events; i++) {
        db.events.putSync(keys[i]!, Buffer.from(job.arena, start, ends[i]! - start));
        start = ends[i]!;
      }
      for (let i = 0; i < job.nodes; i++) {
        db.nodes.putSync(keys[job.events + i]!, Buffer.from(job.arena, layout.hashes + i * NODE_BYTES, NODE_BYTES));
      }
      if (job.checkpoint) db.checkpoints.putSync(job.checkpoint.size, job.checkpoint);
      db.meta.putSync(STATE_KEY, job.state);
    });
    result = { ok: true };
  } catch (err) {
    const e = err as { message?: unknown; code?: unknown };
    result = { ok: false, message: String(e?.message ?? err), ...(typeof e?.code === 'string' || typeof e?.code === 'number' ? { code: e.code } : {}) };
  }
  // The answer is queued before the flag says so: the main thread may take it synchronously (settle).
  port.postMessage(result);
  Atomics.store(flag, 0, DONE);
  Atomics.notify(flag, 0);
});
