// Modbus/TCP framing (MBAP header) as an incremental byte-stream decoder, in the manner of ws's receiver:
// it knows nothing of sockets, checks each header field as soon as its bytes arrive, and never buffers
// more than one frame. Used for both directions (client requests, upstream responses).
//
// MBAP header (7 bytes): transaction id (2), protocol id (2, must be 0), length (2: unit id + PDU,
// so 2..254 since a PDU is 1..253 bytes), unit id (1). The PDU follows.
import { MODBUS_LIMITS } from './functions.ts';
import type { ModbusErrorCode } from './exceptions.ts';

export const MBAP_HEADER_LENGTH = 7;
export const MBAP_MIN_LENGTH = 2;
export const MBAP_MAX_LENGTH = 1 + MODBUS_LIMITS.MAX_PDU; // 254
/** The largest ADU: header (6 bytes before the length's coverage) + 254. */
export const MBAP_MAX_FRAME = 6 + MBAP_MAX_LENGTH; // 260

export interface MbapFrame {
  transactionId: number;
  unitId: number;
  /** Function code + data, a copy owned by the frame. */
  pdu: Buffer;
}

export interface MbapError {
  code: Extract<ModbusErrorCode, 'MBAP_PROTOCOL_ID' | 'MBAP_LENGTH'>;
  /**
   * True when the stream can no longer be framed and the connection must be closed. The decoder then
   * refuses everything after it (push returns nothing). False when the bad frame was skipped whole and
   * the next frame starts right after it.
   */
  close: boolean;
  /** The transaction id of the refused frame, so a caller may log it (the spec answers nothing). */
  transactionId: number;
  message: string;
}

export type MbapResult = { frame: MbapFrame } | { error: MbapError };

/**
 * Splits a byte stream into MBAP frames. `push` accepts any chunking (a frame split at every byte, many
 * frames in one chunk) and returns the frames and errors the chunk completed, in stream order.
 *
 * - Length outside 2..254: the length cannot be trusted, so neither can the position of the next
 *   frame → error with close: true; the decoder is dead from then on.
 * - Protocol id ≠ 0 with a plausible length: the Modbus messaging implementation guide discards such a
 *   frame without answer; the decoder skips exactly `length` bytes after the header and reports an
 *   error with close: false. The glue may still choose to close.
 * - At most MBAP_MAX_FRAME - 1 bytes are ever held between pushes (an incomplete frame).
 */
const EMPTY = Buffer.alloc(0);

export class MbapDecoder {
  #pending: Buffer = EMPTY;
  #dead = false;

  /** Bytes held for an incomplete frame; never more than MBAP_MAX_FRAME - 1. */
  get bufferedBytes(): number {
    return this.#pending.length;
  }

  /** True once a close error was reported; every later push returns []. */
  get closed(): boolean {
    return this.#dead;
  }

  push(chunk: Uint8Array): MbapResult[] {
    const out: MbapResult[] = [];
    if (this.#dead || chunk.length === 0) return out;
    // Join the held partial frame with as much of the chunk as may belong to it; whole frames inside the
    // chunk are then read from the chunk itself, so a large chunk is never copied into the buffer.
    let data: Uint8Array;
    if (this.#pending.length > 0) {
      const take = Math.min(chunk.length, MBAP_MAX_FRAME - this.#pending.length);
      data = Buffer.concat([this.#pending, chunk.subarray(0, take)]);
      const consumed = this.#frames(data, out);
      if (this.#dead) return out;
      const fromChunk = consumed - this.#pending.length;
      if (fromChunk <= 0) {
        // Still incomplete: the joined bytes (≤ one frame) are the new pending buffer.
        this.#pending = Buffer.from(data.subarray(consumed));
        return out;
      }
      this.#pending = EMPTY;
      chunk = chunk.subarray(fromChunk);
    }
    const consumed = this.#frames(chunk, out);
    // A copy: the caller may reuse the chunk's memory for its next read.
    if (!this.#dead) this.#pending = consumed === chunk.length ? EMPTY : Buffer.from(chunk.subarray(consumed));
    return out;
  }

  /** Reads complete frames from `data`; returns how many bytes it consumed. Checks fields as soon as present. */
  #frames(data: Uint8Array, out: MbapResult[]): number {
    let at = 0;
    for (;;) {
      const left = data.length - at;
      // The protocol id is judged only once the length is known too: skipping a frame needs its length.
      if (left < 6) return at;
      const transactionId = (data[at]! << 8) | data[at + 1]!;
      const protocolId = (data[at + 2]! << 8) | data[at + 3]!;
      const length = (data[at + 4]! << 8) | data[at + 5]!;
      if (length < MBAP_MIN_LENGTH || length > MBAP_MAX_LENGTH) {
        this.#dead = true;
        this.#pending = EMPTY;
        out.push({ error: { code: 'MBAP_LENGTH', close: true, transactionId, message: `MBAP length ${length} outside ${MBAP_MIN_LENGTH}..${MBAP_MAX_LENGTH}` } });
        return data.length;
      }
      if (left < 6 + length) return at;
      if (protocolId !== 0) {
        out.push({ error: { code: 'MBAP_PROTOCOL_ID', close: false, transactionId, message: `MBAP protocol id ${protocolId} is not 0; frame of ${length} bytes skipped` } });
      } else {
        out.push({ frame: { transactionId, unitId: data[at + 6]!, pdu: Buffer.from(data.subarray(at + 7, at + 6 + length)) } });
      }
      at += 6 + length;
    }
  }
}

/** An MBAP frame: header + PDU. Throws RangeError for a PDU outside 1..253 bytes (a programming error). */
export function encodeMbap(transactionId: number, unitId: number, pdu: Uint8Array): Buffer {
  if (pdu.length < 1 || pdu.length > MODBUS_LIMITS.MAX_PDU) throw new RangeError(`PDU of ${pdu.length} bytes cannot be framed`);
  const out = Buffer.allocUnsafe(MBAP_HEADER_LENGTH + pdu.length);
  out.writeUInt16BE(transactionId, 0);
  out.writeUInt16BE(0, 2);
  out.writeUInt16BE(1 + pdu.length, 4);
  out.writeUInt8(unitId, 6);
  out.set(pdu, 7);
  return out;
}
