// The daemon's side of the verify worker (verify-worker.ts): each verification runs in a worker thread
// (its own read snapshot), off the event loop. One runs at a time: further requests wait for it, so a
// burst of verifies costs one worker, not one each. `close` terminates what still runs.
import { Worker } from 'node:worker_threads';
import { PenstockError } from '../common/errors.ts';
import type { KeptCheckpoint, VerifyResult } from './verify-stored.ts';
import type { VerifyJob } from './verify-worker.ts';

export class VerifyQueue {
  readonly #job: Omit<VerifyJob, 'kept'>;
  /** Verify workers still running (terminated at close). */
  readonly #workers = new Set<Worker>();
  #verifying: Promise<unknown> = Promise.resolve();
  #closed = false;

  /** `job`: the journal's LMDB environment and the key its checkpoints are signed with. */
  constructor(job: Omit<VerifyJob, 'kept'>) {
    this.#job = job;
  }

  verify(kept?: KeptCheckpoint): Promise<VerifyResult> {
    const run = () => this.#verifyInWorker(kept);
    const next = this.#verifying.then(run, run);
    this.#verifying = next.catch(() => undefined);
    return next;
  }

  /** Refuses verifications not yet started and terminates the running one. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(Array.from(this.#workers, (w) => w.terminate()));
  }

  #verifyInWorker(kept?: KeptCheckpoint): Promise<VerifyResult> {
    if (this.#closed) return Promise.reject(new PenstockError('PS_JOURNAL_UNAVAILABLE', 'journal is closed'));
    const job: VerifyJob = { ...this.#job, ...(kept ? { kept } : {}) };
    // src/ runs as .ts, dist/ as .js: the worker is the sibling file of this one.
    const worker = new Worker(new URL(`./verify-worker${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`, import.meta.url), { workerData: job });
    this.#workers.add(worker);
    return new Promise<VerifyResult>((resolve, reject) => {
      let answer: { result?: VerifyResult; error?: string } | undefined;
      worker.once('message', (m: { result?: VerifyResult; error?: string }) => (answer = m));
      worker.once('error', (err) => (answer ??= { error: err.message }));
      worker.once('exit', (code) => {
        this.#workers.delete(worker);
        if (answer?.result) resolve(answer.result);
        else reject(new PenstockError('PS_INTERNAL', `journal verify worker failed: ${answer?.error ?? `exited with code ${code}`}`));
      });
    });
  }
}
