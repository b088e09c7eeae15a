// Witness cosignatures posted to /v1/cosign. A cosignature is kept only when it is a valid Ed25519 C2SP
// note signature by the posting client's configured witness key over the body of a checkpoint this
// gateway signed, and only one per witness per checkpoint: what is stored is bounded by the number of
// configured witnesses, however often a client posts. The stored note is rebuilt from our own checkpoint
// note plus the witness's one signature line, so nothing else the client sent is kept.
import { NoteError, noteSignedBy, parseCheckpointBody, parseNote, parseVkey, type NoteSignature } from '../journal/checkpoint.ts';
import type { JournalReaderLike } from './types.ts';

export type CosignCheck =
  | { ok: true; size: number; witness: string; note: string }
  | { ok: false; code: 'rejected' | 'already_cosigned'; problem: string; size?: number };

function signatureLine(s: NoteSignature): string {
  const raw = Buffer.alloc(4 + s.signature.length);
  raw.writeUInt32BE(s.keyHash >>> 0, 0);
  Buffer.from(s.signature).copy(raw, 4);
  return `\u2014 ${s.name} ${raw.toString('base64')}\n`;
}

export function checkCosignature(noteText: string, witnessVkey: string, journal: Pick<JournalReaderLike, 'checkpointFor' | 'cosignatures'>): CosignCheck {
  let size: number;
  try {
    const witness = parseVkey(witnessVkey);
    const note = parseNote(noteText);
    size = parseCheckpointBody(note.body).size;
    const ours = journal.checkpointFor(size);
    if (!ours || parseNote(ours.note).body !== note.body) {
      return { ok: false, code: 'rejected', problem: `checkpoint of size ${size} is not one this gateway issued`, size };
    }
    const valid = note.signatures.find((s) => s.name === witness.name && s.keyHash === witness.keyHash && noteSignedBy({ body: note.body, signatures: [s] }, witness));
    if (!valid) return { ok: false, code: 'rejected', problem: `no valid signature by witness ${witness.name}`, size };
    const already = journal.cosignatures(size).some((stored) => {
      try {
        return parseNote(stored).signatures.some((s) => s.name === witness.name && s.keyHash === witness.keyHash);
      } catch {
        return false;
      }
    });
    if (already) return { ok: false, code: 'already_cosigned', problem: `witness ${witness.name} already cosigned the checkpoint of size ${size}`, size };
    return { ok: true, size, witness: witness.name, note: ours.note + signatureLine(valid) };
  } catch (err) {
    if (err instanceof NoteError) return { ok: false, code: 'rejected', problem: err.message };
    throw err;
  }
}
