// The real journal (LMDB, src/journal/journal.ts) as the sync tests use it: events appended in groups,
// a checkpoint signed only when a test asks for one, so tests control exactly what is served.
import { ManualClock } from '../../src/common/clock.ts';
import { NoteSigner } from '../../src/journal/checkpoint.ts';
import { LmdbJournal } from '../../src/journal/journal.ts';
import { verifyExport } from '../../src/journal/verify.ts';
import type { JournalReaderLike } from '../../src/sync/types.ts';
import { testSigningKeyPem } from './memory-reader.ts';

export const TEST_APPLIANCE = 'penstock/gw-test-01';

export interface JournalFixture {
  reader: JournalReaderLike;
  journal: LmdbJournal;
  vkey: string;
  origin: string;
  /** A signer with the appliance key (to forge look-alike journals). */
  signer(): NoteSigner;
  /** Appends n events (tagged, so two journals can differ) and signs a checkpoint covering them. */
  append(n: number, tag?: string): Promise<void>;
  /** verifyExport of pulled lines against a checkpoint note: true, or the problem found. */
  verifyExport(lines: string[], note: string): true | string;
  close(): Promise<void>;
}

export async function openJournalFixture(dir: string, keyPem?: string): Promise<JournalFixture> {
  const pem = keyPem ?? testSigningKeyPem();
  const clock = new ManualClock(Date.parse('2026-11-25T08:00:00Z'));
  const journal = await LmdbJournal.open({
    path: dir,
    mapSizeMiB: 64,
    appliance: TEST_APPLIANCE,
    signingKeyPem: pem,
    clock,
    checkpointEvery: 1_000_000_000,
    checkpointSeconds: 3600,
  });
  let n = 0;
  return {
    reader: journal,
    journal,
    vkey: journal.publicKeyVkey(),
    origin: TEST_APPLIANCE,
    signer: () => new NoteSigner(TEST_APPLIANCE, pem),
    append: async (count, tag = 'main') => {
      // Concurrent appends share a commit; order within the group is the order of the calls.
      await Promise.all(Array.from({ length: count }, () => {
        clock.advance(1);
        return journal.append({ event: 'admin.request', principal: 'plant-operator', detail: { tag, n: n++, text: 'ünïcode ✓' } });
      }));
      journal.checkpoint();
    },
    verifyExport: (lines, note) => {
      const r = verifyExport({ lines, checkpointNote: note, vkey: journal.publicKeyVkey() });
      return r.ok ? true : r.problem;
    },
    close: () => journal.close(),
  };
}
