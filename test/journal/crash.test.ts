import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../../src/common/clock.ts';
import { generateSigningKeyPem } from '../../src/journal/checkpoint.ts';
import { LmdbJournal, type CheckpointInfo } from '../../src/journal/journal.ts';
import { verifyConsistency } from '../../src/journal/merkle.ts';
import { tempDir } from './helpers.ts';

const ROUNDS = Number(process.env.PENSTOCK_CRASH_ROUNDS ?? 50);
const CHILD = fileURLToPath(new URL('./fixtures/crash-appender.ts', import.meta.url));

interface Resolved {
  seq: number;
  writer: number;
  n: number;
  leaf: string;
}

/** Runs the appender, kills it with SIGKILL a random moment after it is ready; returns what it reported. */
function runAndKill(dir: string, key: string, round: number): Promise<Resolved[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, String(round)], { env: { ...process.env, PENSTOCK_TEST_KEY: key }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (!timer && out.startsWith('ready\n')) timer = setTimeout(() => child.kill('SIGKILL'), 5 + Math.random() * 120);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') return reject(new Error(`child exited ${code} ${signal}: ${err}`));
      const lines = out.split('\n');
      lines.pop(); // a line cut by the kill is not a report
      resolve(
        lines.filter((l) => l !== 'ready').map((l) => {
          const [seq, writer, n, leaf] = l.split(' ');
          return { seq: Number(seq), writer: Number(writer), n: Number(n), leaf: leaf! };
        }),
      );
    });
  });
}

test(`SIGKILL under load ${ROUNDS} times: every resolved append survives with identical bytes, the tree verifies, checkpoints stay consistent`, async (t) => {
  const { dir, cleanup } = tempDir('penstock-crash-');
  t.after(cleanup);
  const key = generateSigningKeyPem();
  let previous: CheckpointInfo | undefined;
  let total = 0;
  let killedMidCheckpointInterval = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const resolved = await runAndKill(dir, key, round);
    const j = await LmdbJournal.open({ path: dir, mapSizeMiB: 256, appliance: 'penstock/gw-crash-01', signingKeyPem: key, clock: systemClock, checkpointEvery: 40, checkpointSeconds: 3600 });
    try {
      for (const r of resolved) {
        const [stored] = j.readEvents(r.seq, 1);
        assert.equal(stored?.seq, r.seq, `round ${round}: resolved seq ${r.seq} is missing after the crash`);
        const e = JSON.parse(stored.bytes);
        assert.deepEqual([e.detail.round, e.detail.writer, e.detail.n], [round, r.writer, r.n], `round ${round}: seq ${r.seq} holds another event`);
        assert.equal(Buffer.from(j.leafHash(r.seq)).toString('hex'), r.leaf, `round ${round}: seq ${r.seq} bytes changed`);
      }
      const v = j.verifyAll();
      assert.deepEqual(v, { ok: true, size: j.size() }, `round ${round}: ${JSON.stringify(v)}`);
      const latest = j.latestCheckpoint();
      if (latest && latest.size < j.size()) killedMidCheckpointInterval++;
      if (previous && latest) {
        assert.ok(latest.size >= previous.size, `round ${round}: checkpoint went back from ${previous.size} to ${latest.size}`);
        const proof = j.consistencyProof(previous.size, latest.size);
        assert.ok(verifyConsistency(previous.size, latest.size, Buffer.from(previous.rootHash, 'base64'), Buffer.from(latest.rootHash, 'base64'), proof), `round ${round}: checkpoint ${latest.size} is not consistent with ${previous.size}`);
      }
      total += resolved.length;
      assert.ok(j.size() >= total, 'every resolved event is counted');
      // Sign over what survived (close would too): the next round's checkpoints must extend it.
      previous = j.checkpoint() ?? previous;
    } finally {
      await j.close();
    }
  }
  t.diagnostic(`rounds ${ROUNDS}, resolved appends checked ${total}, kills between checkpoints ${killedMidCheckpointInterval}`);
  assert.ok(total > ROUNDS, 'the children did append under load');
});
