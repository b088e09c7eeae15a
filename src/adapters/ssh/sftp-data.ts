// A download's bytes through ssh2 without the two copies its public SFTP API makes of every answer.
// Through `read(handle, buf, …)` each upstream answer is copied out of the packet ssh2 already built
// for it into a buffer of ours, and `data(reqid, buf)` copies it again into a whole SFTP DATA message
// before cutting that into SSH packets (which copy it a third time). Each of those copies is a fresh
// 255 KiB buffer; allocating them (page faults, the allocator returning memory to the system, V8
// collecting them) cost the gateway more CPU than the crypto and the hash together (profile of
// scripts/bench-ssh.ts, issue 17).
//
// Here the answer is the slice of ssh2's own packet, and it goes to the client in SSH packets copied
// straight from that slice. Both reach into ssh2 1.17's SFTP internals (lib/protocol/SFTP.js: `read_`,
// the DATA handler, `tryWritePayload`), as flow.ts and sftp-limits.ts do; where they cannot, ssh2's
// public calls are used as before.
import type { SFTPWrapper } from 'ssh2';

const STATUS_EOF = 1;
const STATUS_FAILURE = 4;
const SFTP_DATA = 103;
/** uint32 length, byte type, uint32 request id, uint32 data length. */
const DATA_HEADER = 13;

type SftpReadError = Error & { code?: number | string };

/** What ssh2's SFTP client keeps of a request in flight (read_ in lib/protocol/SFTP.js). */
interface PendingRead {
  cb: (err?: SftpReadError, data?: Buffer) => void;
  /** Where the DATA handler copies the answer; without one it hands over a slice of the packet. */
  buffer?: Buffer;
}
interface RawSftpClient {
  _requests: Record<number, PendingRead | undefined>;
  _writeReqid: number;
  _maxReadLen: number;
}

/** What `read` is given to satisfy its checks; never written (the request is changed before any answer). */
let readTarget = Buffer.alloc(0);

/**
 * READ `length` bytes at `offset` of `handle` on the target: the bytes as a slice of the packet ssh2
 * received (an empty buffer at end of file), or the target's error.
 */
export function readUpstream(sftp: SFTPWrapper, handle: Buffer, offset: number, length: number): Promise<Buffer | SftpReadError> {
  const s = sftp as unknown as RawSftpClient;
  if (length <= 0 || length > s._maxReadLen || typeof s._requests !== 'object') return readCopied(sftp, handle, offset, length);
  if (readTarget.length < length) readTarget = Buffer.alloc(Math.max(length, s._maxReadLen));
  return new Promise((resolve) => {
    sftp.read(handle, readTarget, 0, length, offset, () => {});
    const req = s._requests[s._writeReqid];
    // ssh2 keeps the request under the id it just used, with a slice of `readTarget` to copy into.
    if (!req || req.buffer?.buffer !== readTarget.buffer) throw new Error('ssh2 SFTP client internals changed: READ request not found');
    req.buffer = undefined;
    req.cb = (err, data) => {
      if (err) return resolve(err.code === STATUS_EOF ? Buffer.alloc(0) : err);
      if (!data || data.length > length) return resolve(Object.assign(new Error('the target answered more than was asked'), { code: STATUS_FAILURE }));
      resolve(data);
    };
  });
}

/** The public way, into a buffer of our own (a READ longer than ssh2 sends in one). */
function readCopied(sftp: SFTPWrapper, handle: Buffer, offset: number, length: number): Promise<Buffer | SftpReadError> {
  const buf = Buffer.allocUnsafe(length);
  return new Promise((resolve) => sftp.read(handle, buf, 0, length, offset, (err, n) => resolve(err ? (err as SftpReadError) : buf.subarray(0, n))));
}

/** ssh2's view of the server side of an SFTP channel (lib/protocol/SFTP.js). */
interface RawServerChannel {
  outgoing: { id: number; window: number; packetSize: number; state: string };
  _buffer: unknown[];
  _protocol: { channelData(id: number, data: Buffer): void };
}

/** The first SSH packet of an answer: the DATA header and the data's first bytes (channelData copies it at once). */
let firstPacket = Buffer.alloc(0);

/**
 * Answer READ `reqid` with `data`, in SSH packets of the client's size copied from `data` itself. When
 * the client's window cannot take the whole answer now, or ssh2 already holds output back, ssh2's own
 * `data()` sends it (and queues what does not fit, which flow.ts waits on).
 */
export function sendData(server: SFTPWrapper, reqid: number, data: Buffer): void {
  const s = server as unknown as RawServerChannel;
  const out = s.outgoing;
  const total = DATA_HEADER + data.length;
  if (out?.state !== 'open' || s._buffer.length > 0 || out.window <= total || !(out.packetSize > DATA_HEADER)) return server.data(reqid, data);
  const first = Math.min(out.packetSize, total);
  if (firstPacket.length < first) firstPacket = Buffer.alloc(first);
  const head = firstPacket.subarray(0, first);
  head.writeUInt32BE(total - 4, 0);
  head[4] = SFTP_DATA;
  head.writeUInt32BE(reqid >>> 0, 5);
  head.writeUInt32BE(data.length, 9);
  data.copy(head, DATA_HEADER, 0, first - DATA_HEADER);
  out.window -= total;
  s._protocol.channelData(out.id, head);
  for (let at = first - DATA_HEADER; at < data.length; at += out.packetSize) s._protocol.channelData(out.id, data.subarray(at, at + out.packetSize));
}
