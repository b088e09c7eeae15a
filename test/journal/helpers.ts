// Shared set-up for the journal tests.
import { ManualClock } from '../../src/common/clock.ts';
import { generateSigningKeyPem } from '../../src/journal/checkpoint.ts';
import { LmdbJournal, type LmdbJournalOptions } from '../../src/journal/journal.ts';
import { tempDir as sharedTempDir } from '../support.ts';

export const APPLIANCE = 'penstock/gw-test-01';
const KEY = generateSigningKeyPem();

export function tempDir(prefix = 'penstock-journal-'): { dir: string; cleanup: () => void } {
  return sharedTempDir(prefix);
}

export function journalOptions(path: string, extra: Partial<LmdbJournalOptions> = {}): LmdbJournalOptions {
  return {
    path,
    mapSizeMiB: 64,
    appliance: APPLIANCE,
    signingKeyPem: KEY,
    clock: new ManualClock(Date.parse('2026-11-22T08:00:00Z')),
    checkpointEvery: 100,
    checkpointSeconds: 3600,
    ...extra,
  };
}

export function openJournal(path: string, extra: Partial<LmdbJournalOptions> = {}): Promise<LmdbJournal> {
  return LmdbJournal.open(journalOptions(path, extra));
}

export async function appendMany(j: LmdbJournal, n: number, prefix = 's'): Promise<number[]> {
  const receipts = await Promise.all(
    Array.from({ length: n }, (_, i) => j.append({ event: 'action.allowed', session: `${prefix}-${i}`, principal: 'vendor-acme', detail: { i } })),
  );
  return receipts.map((r) => r.seq);
}
