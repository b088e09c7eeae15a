// Checkpoint checks for the puller, on top of the journal's pure note verification.
import { PenstockError } from '../common/errors.ts';
import { NoteError, parseVkey, verifyCheckpoint } from '../journal/checkpoint.ts';

export interface VerifiedCheckpoint {
  origin: string;
  size: number;
  rootHash: Uint8Array;
}

/** Refuses a vkey that is not one before any network traffic. */
export function checkVkey(vkey: string): void {
  try {
    parseVkey(vkey);
  } catch (err) {
    if (err instanceof NoteError) throw new PenstockError('PS_CONFIG_INVALID', `pinned appliance key: ${err.message}`, { vkey });
    throw err;
  }
}

/** Verifies a served checkpoint note against the pinned key; PS_SYNC_BAD_SIGNATURE otherwise. */
export function verifyCheckpointNote(note: string, vkey: string): VerifiedCheckpoint {
  const r = verifyCheckpoint(note, vkey);
  if (!r.ok) {
    const size = /^[^\n]*\n(\d+)\n/.exec(note)?.[1];
    throw new PenstockError('PS_SYNC_BAD_SIGNATURE', `served checkpoint refused: ${r.problem}`, {
      problem: r.problem,
      ...(size === undefined ? {} : { size: Number(size) }),
    });
  }
  return { origin: r.checkpoint.origin, size: r.checkpoint.size, rootHash: r.checkpoint.rootHash };
}
