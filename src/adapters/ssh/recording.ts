// Session recordings in asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): a JSON header
// line, then one `[seconds, "o"|"i", text]` line per chunk of output (stdout and stderr) or input.
// Written to a temporary file while the channel runs, hashed as it is written, and on close renamed
// to RECORDINGS/<sha256>.cast — content-addressed, so the journal's hash names the file and vouches
// for every byte of it. `asciinema play FILE` plays it as is.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { randomBytes } from 'node:crypto';

export interface RecordingHeader {
  width: number;
  height: number;
  /** Unix seconds. */
  timestamp: number;
  command?: string;
  title?: string;
  env?: Record<string, string>;
}

export interface FinishedRecording {
  sha256: string;
  bytes: number;
  path: string;
  /** Content bytes (output + input) seen, including any beyond the size cap. */
  streamBytes: number;
  truncated: boolean;
}

export class Recording {
  readonly #dir: string;
  readonly #tmp: string;
  readonly #hash: Hash = createHash('sha256');
  readonly #startNs = process.hrtime.bigint();
  readonly #maxBytes: number;
  readonly #decoders = { o: new StringDecoder('utf8'), e: new StringDecoder('utf8'), i: new StringDecoder('utf8') };
  #fd: number | undefined;
  #bytes = 0;
  #streamBytes = 0;
  #truncated = false;

  constructor(dir: string, header: RecordingHeader, maxBytes: number) {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    this.#dir = dir;
    this.#maxBytes = maxBytes;
    this.#tmp = join(dir, `.rec-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
    this.#fd = openSync(this.#tmp, 'wx', 0o640);
    this.#line({ version: 2, ...header });
  }

  /** Output of the remote side (stdout or stderr: a terminal shows both). */
  output(chunk: Buffer, stream: 'stdout' | 'stderr' = 'stdout'): void {
    this.#event('o', chunk, stream === 'stderr' ? 'e' : 'o');
  }

  /** Input typed by the user (shells). */
  input(chunk: Buffer): void {
    this.#event('i', chunk, 'i');
  }

  #event(code: 'o' | 'i', chunk: Buffer, decoder: 'o' | 'e' | 'i'): void {
    this.#streamBytes += chunk.length;
    if (this.#fd === undefined || this.#truncated) return;
    const text = this.#decoders[decoder].write(chunk);
    if (text.length === 0) return;
    const t = Number(process.hrtime.bigint() - this.#startNs) / 1e9;
    this.#line([Math.round(t * 1e6) / 1e6, code, text]);
  }

  #line(value: unknown): void {
    if (this.#fd === undefined) return;
    const buf = Buffer.from(`${JSON.stringify(value)}\n`);
    if (this.#bytes + buf.length > this.#maxBytes && this.#bytes > 0) {
      this.#truncated = true;
      return;
    }
    writeSync(this.#fd, buf);
    this.#hash.update(buf);
    this.#bytes += buf.length;
  }

  /** Close, fsync, and move under its hash. Idempotent callers should call it once. */
  finish(): FinishedRecording {
    if (this.#fd === undefined) throw new Error('recording already finished');
    fsyncSync(this.#fd);
    closeSync(this.#fd);
    this.#fd = undefined;
    const sha256 = this.#hash.digest('hex');
    const path = join(this.#dir, `${sha256}.cast`);
    if (existsSync(path)) unlinkSync(this.#tmp); // the same bytes are already stored
    else renameSync(this.#tmp, path);
    return { sha256, bytes: this.#bytes, path, streamBytes: this.#streamBytes, truncated: this.#truncated };
  }

  /** Drop an unfinished recording (nothing ran). */
  discard(): void {
    if (this.#fd === undefined) return;
    closeSync(this.#fd);
    this.#fd = undefined;
    try {
      unlinkSync(this.#tmp);
    } catch {
      // already gone
    }
  }
}

/** One event line of a cast file, for replay. */
export type CastEvent = [number, string, string];

/** Parse a cast file's text: header and events; throws on anything that is not asciicast v2. */
export function parseCast(text: string): { header: Record<string, unknown>; events: CastEvent[] } {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const header = JSON.parse(lines[0] ?? 'null') as Record<string, unknown> | null;
  if (!header || header.version !== 2) throw new Error('not an asciicast v2 recording');
  const events = lines.slice(1).map((l) => {
    const e = JSON.parse(l) as unknown;
    if (!Array.isArray(e) || typeof e[0] !== 'number' || typeof e[1] !== 'string' || typeof e[2] !== 'string') throw new Error('malformed event line');
    return e as CastEvent;
  });
  return { header, events };
}
