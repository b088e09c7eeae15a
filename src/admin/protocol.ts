// The admin wire protocol: newline-delimited JSON over a Unix socket, one request per line, one response
// per line, answered in order.
//
//   request   {"id": 7, "command": "grants.revoke", "params": {"id": "g1", "reason": "done"}, "operator": {"uid": 1000, "user": "ana"}}
//   success   {"id": 7, "ok": true, "result": …}
//   failure   {"id": 7, "ok": false, "error": {"code": "PS_GRANT_UNKNOWN", "message": "no grant g1"}}
//
// `operator` is the client's own claim of who it is, kept for old clients and logged; it never names
// the operator (only the kernel's SO_PEERCRED does). A request line is at most MAX_REQUEST_BYTES;
// the splitter below refuses a longer one before buffering past the bound.
//
// A streaming command (events.follow) answers once, as above, and then sends newline-delimited JSON
// lines on the same connection until the client closes it; that connection takes no further requests.
import { z } from 'zod';
import { ERROR_CODES, PenstockError, type ErrorCode } from '../common/errors.ts';
import { MAX_CONFIG_BYTES } from '../config/limits.ts';

/**
 * Longest request line accepted, excluding its newline: room for config.check's text (at most
 * MAX_CONFIG_BYTES, which JSON escaping of tabs, newlines and quotes can at most double) and its envelope.
 */
export const MAX_REQUEST_BYTES = 2 * MAX_CONFIG_BYTES + 64 * 1024;
/** Longest response line a client accepts (a list of many sessions or grants is still far below). */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export type RequestId = number | string | null;

export const requestEnvelopeSchema = z.strictObject({
  id: z.union([z.number().int().min(0), z.string().max(64)]),
  command: z.string().regex(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/, 'must be a command name such as grants.list').max(64),
  params: z.unknown().optional(),
  operator: z.strictObject({
    uid: z.number().int().min(0).max(0xffff_fffe),
    user: z.string().max(64).optional(),
  }).optional(),
});
export type AdminRequest = z.infer<typeof requestEnvelopeSchema>;

export interface AdminErrorBody {
  code: ErrorCode;
  message: string;
}

export type AdminResponse =
  | { id: RequestId; ok: true; result: unknown }
  | { id: RequestId; ok: false; error: AdminErrorBody };

export function encodeResponse(res: AdminResponse): string {
  return `${JSON.stringify(res)}\n`;
}

export function encodeRequest(req: AdminRequest): string {
  return `${JSON.stringify(req)}\n`;
}

/** Parse a response line from the server; anything that is not a well-formed response is PS_INTERNAL. */
export function decodeResponse(line: string): AdminResponse {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new PenstockError('PS_INTERNAL', 'the admin socket answered with something that is not JSON');
  }
  const v = value as Partial<Record<string, unknown>> | null;
  if (!v || typeof v !== 'object' || typeof v.ok !== 'boolean') {
    throw new PenstockError('PS_INTERNAL', 'the admin socket answered with a malformed response');
  }
  const id = (typeof v.id === 'number' || typeof v.id === 'string' ? v.id : null) as RequestId;
  if (v.ok) return { id, ok: true, result: v.result };
  const e = (v.error ?? {}) as Partial<Record<string, unknown>>;
  const code = typeof e.code === 'string' && Object.hasOwn(ERROR_CODES, e.code) ? (e.code as ErrorCode) : 'PS_INTERNAL';
  const message = typeof e.message === 'string' ? e.message : ERROR_CODES[code];
  return { id, ok: false, error: { code, message } };
}

/**
 * Splits a byte stream into lines, refusing a line longer than `maxBytes` as soon as the bound is passed
 * (never buffering more than maxBytes of an unfinished line). Knows nothing of sockets, so tests feed it
 * chunks split at awkward places.
 */
export class LineSplitter {
  readonly #maxBytes: number;
  #parts: Buffer[] = [];
  #pending = 0;
  #overflowed = false;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /**
   * The complete lines in this chunk (without their newline). `tooLarge` is set once an unfinished line
   * passed the bound; the lines before it are still returned, and nothing after it ever is.
   */
  push(chunk: Buffer): { lines: string[]; tooLarge: boolean } {
    const lines: string[] = [];
    if (this.#overflowed) return { lines, tooLarge: true };
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      if (this.#pending + piece.length > this.#maxBytes) return this.#overflow(lines);
      const line = this.#pending === 0 ? piece : Buffer.concat([...this.#parts, piece]);
      this.#parts = [];
      this.#pending = 0;
      lines.push(stripCr(line.toString('utf8')));
      start = nl + 1;
    }
    const rest = chunk.subarray(start);
    if (this.#pending + rest.length > this.#maxBytes) return this.#overflow(lines);
    if (rest.length > 0) {
      // Copy: the caller's chunk may be reused, and a slice would pin the whole chunk in memory.
      this.#parts.push(Buffer.from(rest));
      this.#pending += rest.length;
    }
    return { lines, tooLarge: false };
  }

  /** Bytes held of an unfinished line. */
  get pendingBytes(): number {
    return this.#pending;
  }

  #overflow(lines: string[]): { lines: string[]; tooLarge: boolean } {
    this.#overflowed = true;
    this.#parts = [];
    this.#pending = 0;
    return { lines, tooLarge: true };
  }
}

function stripCr(s: string): string {
  return s.endsWith('\r') ? s.slice(0, -1) : s;
}
