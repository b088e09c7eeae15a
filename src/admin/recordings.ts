// Finding and reading session recordings for `penstockctl sessions replay`. A front door journals each
// recording in the action.outcome of the exec or shell it recorded (`outcome.recording`: sha256, bytes,
// path); the file is named by its SHA-256, so what is read back is checked against the journal's hash.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { PenstockError } from '../common/errors.ts';

/** The journal methods this needs (LmdbJournal has them). */
export interface JournalReader {
  size(): number;
  firstRetained(): number;
  readEvents(fromSeq: number, limit: number): { seq: number; bytes: string }[];
}

export interface RecordingInfo {
  seq: number;
  time?: string;
  session?: string;
  principal?: string;
  target?: string;
  verb?: string;
  command?: string;
  sha256: string;
  bytes: number;
  path: string;
  truncated?: boolean;
}

/** Largest chunk of a recording one admin response carries (the CLI pages through bigger files). */
export const RECORDING_CHUNK_BYTES = 4 * 1024 * 1024;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Events read per slice of a scan; the event loop serves the front doors between slices. */
const SCAN_SLICE = 2000;

/**
 * Recordings of a session (by session id), or the one recording with this SHA-256, oldest first. Scans the
 * whole journal in slices that yield to the event loop, so a scan of millions of events does not stop
 * the daemon serving meanwhile.
 */
export async function findRecordings(journal: JournalReader, id: string): Promise<RecordingInfo[]> {
  const bySha = SHA256_HEX.test(id);
  const out: RecordingInfo[] = [];
  const end = journal.size();
  for (let from = journal.firstRetained(); from < end; from += SCAN_SLICE) {
    if (from > journal.firstRetained()) await new Promise<void>((resolve) => setImmediate(resolve));
    for (const row of journal.readEvents(from, Math.min(SCAN_SLICE, end - from))) {
      if (!row.bytes.includes('"recording"')) continue;
      const e = JSON.parse(row.bytes) as { time?: string; event?: string; session?: string; principal?: string; target?: string; action?: { verb?: string } & Record<string, unknown>; outcome?: { recording?: { sha256?: unknown; bytes?: unknown; path?: unknown; truncated?: unknown } } };
      const r = e.outcome?.recording;
      if (e.event !== 'action.outcome' || !r || typeof r.sha256 !== 'string' || typeof r.path !== 'string') continue;
      if (bySha ? r.sha256 !== id : e.session !== id) continue;
      out.push({
        seq: row.seq,
        ...(e.time ? { time: e.time } : {}),
        ...(e.session ? { session: e.session } : {}),
        ...(e.principal ? { principal: e.principal } : {}),
        ...(e.target ? { target: e.target } : {}),
        ...(e.action?.verb ? { verb: e.action.verb } : {}),
        ...(commandOf(e.action) !== undefined ? { command: commandOf(e.action) } : {}),
        sha256: r.sha256,
        bytes: typeof r.bytes === 'number' ? r.bytes : 0,
        path: r.path,
        ...(r.truncated === true ? { truncated: true } : {}),
      });
    }
  }
  return out;
}

/** A chunk of the recording the journal names by `sha256`; the file must be the one the journal vouches for. */
export async function readRecordingChunk(journal: JournalReader, sha256: string, offset: number): Promise<{ sha256: string; offset: number; total: number; data: string; done: boolean }> {
  if (!SHA256_HEX.test(sha256)) throw new PenstockError('PS_ADMIN_BAD_REQUEST', 'sha256: must be 64 lower-case hex digits');
  const rec = (await findRecordings(journal, sha256))[0];
  if (!rec) throw new PenstockError('PS_ADMIN_BAD_REQUEST', `the journal names no recording ${sha256}`);
  if (basename(rec.path) !== `${sha256}.cast`) throw new PenstockError('PS_INTERNAL', `recording path ${rec.path} does not carry its hash`);
  let fd: number;
  try {
    fd = openSync(rec.path, 'r');
  } catch (err) {
    throw new PenstockError('PS_ADMIN_BAD_REQUEST', `recording ${sha256} is not on this gateway (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  try {
    const total = fstatSync(fd).size;
    if (offset === 0 && total <= RECORDING_CHUNK_BYTES) {
      // The common case: one chunk, checked against the journal's hash before it is handed out.
      const buf = Buffer.alloc(total);
      readSync(fd, buf, 0, total, 0);
      if (createHash('sha256').update(buf).digest('hex') !== sha256) throw new PenstockError('PS_JOURNAL_CORRUPT', `recording ${sha256} does not match its hash: altered on disk`);
      return { sha256, offset, total, data: buf.toString('base64'), done: true };
    }
    const len = Math.max(0, Math.min(RECORDING_CHUNK_BYTES, total - offset));
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, offset);
    return { sha256, offset, total, data: buf.toString('base64'), done: offset + len >= total };
  } finally {
    closeSync(fd);
  }
}

/** The command a recorded action ran: the `command` of its protocol block (`action.<protocol>.command`). */
function commandOf(action: Record<string, unknown> | undefined): string | undefined {
  for (const block of Object.values(action ?? {})) {
    const command = block !== null && typeof block === 'object' ? (block as { command?: unknown }).command : undefined;
    if (typeof command === 'string') return command;
  }
  return undefined;
}
