// The transfer sizes the SFTP front door tells its clients (the limits@openssh.com extension, as
// OpenSSH's own sftp-server does). Without them OpenSSH's sftp and scp fall back to 32 KiB READs and
// WRITEs; told, they use 255 KiB ones, as they do straight to sshd: an eighth of the requests, and half
// the SSH packets toward the client (a 32 KiB answer plus its 13-byte header took two packets).
//
// ssh2's SFTP server sends a fixed VERSION with no extensions and has no way to answer an extended
// request, so both packets are sent here on the channel, within the client's window, the way ssh2 sends
// its own (lib/protocol/SFTP.js tryWritePayload). Nothing else is advertised: every other extension
// still gets "operation unsupported".
import type { SFTPWrapper } from 'ssh2';
import { sshString } from './wire.ts';

/** Largest SFTP message Penstock's front door takes (ssh2's server parser refuses longer ones). */
export const SFTP_MAX_MESSAGE = 256 * 1024;
/** Largest READ or WRITE a client should send: the message less room for its header, as OpenSSH has it. */
export const SFTP_MAX_READ_WRITE = SFTP_MAX_MESSAGE - 1024;
export const LIMITS_EXTENSION = 'limits@openssh.com';

const VERSION = 2;
const EXTENDED_REPLY = 201;
/** ssh2's VERSION packet: length 5, type VERSION, version 3, no extensions. */
const STOCK_VERSION = Buffer.from([0, 0, 0, 5, VERSION, 0, 0, 0, 3]);

interface RawChannel {
  outgoing: { id: number; window: number; packetSize: number; state: string };
  _buffer: unknown[];
  _protocol: { channelData(id: number, data: Buffer): void };
}

function packet(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(1 + body.length);
  head[4] = type;
  return Buffer.concat([head, body]);
}

/** VERSION 3 with the one extension Penstock implements. */
const OUR_VERSION = packet(VERSION, Buffer.concat([Buffer.from([0, 0, 0, 3]), sshString(LIMITS_EXTENSION), sshString('1')]));

/**
 * Have ssh2 send VERSION with `limits@openssh.com` in it. Call right after accepting the subsystem,
 * before the client's INIT: the first packet ssh2 sends on the channel is its VERSION, and it alone is
 * replaced; from then on ssh2 talks to its protocol object directly again.
 */
export function advertiseLimits(server: SFTPWrapper): void {
  const s = server as unknown as RawChannel;
  const protocol = s._protocol;
  s._protocol = new Proxy(protocol, {
    get(target, key) {
      if (key === 'channelData') {
        return (id: number, data: Buffer) => {
          s._protocol = protocol;
          const extra = OUR_VERSION.length - data.length;
          if (id === s.outgoing.id && data.equals(STOCK_VERSION) && s.outgoing.window >= extra) {
            s.outgoing.window -= extra;
            data = OUR_VERSION;
          }
          protocol.channelData(id, data);
        };
      }
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
    set(target, key, value) {
      return Reflect.set(target, key, value, target);
    },
  });
}

/**
 * Answer a `limits@openssh.com` request: max message, read and write lengths, and no limit on open
 * handles (0). False when it cannot go out now (the channel is closing, or ssh2 holds packets waiting
 * for window): the caller answers "operation unsupported" instead.
 */
export function answerLimits(server: SFTPWrapper, reqid: number): boolean {
  const body = Buffer.alloc(4 + 4 * 8);
  body.writeUInt32BE(reqid >>> 0, 0);
  body.writeBigUInt64BE(BigInt(SFTP_MAX_MESSAGE), 4);
  body.writeBigUInt64BE(BigInt(SFTP_MAX_READ_WRITE), 12);
  body.writeBigUInt64BE(BigInt(SFTP_MAX_READ_WRITE), 20);
  body.writeBigUInt64BE(0n, 28);
  const reply = packet(EXTENDED_REPLY, body);
  const s = server as unknown as RawChannel;
  const out = s.outgoing;
  if (out.state !== 'open' || s._buffer.length > 0 || out.window < reply.length || out.packetSize < reply.length) return false;
  out.window -= reply.length;
  s._protocol.channelData(out.id, reply);
  return true;
}
