// What one client may make the front door hold in memory, before and after it has authenticated.
//   - Transport: the message size and chunk count a client's HEL may negotiate are capped per connection
//     (16 MiB, less on a small heap) and in total over the listener's open connections (a share of the
//     hardware profile's memory) of the connections that have not activated a session yet; a HEL that
//     finds that total spent is refused. A connection must activate a session within `handshake_seconds`
//     of connecting, or it is closed. Without these, four unauthenticated connections asking for 128 MiB
//     messages took the daemon from 392 to ~730 MiB RSS, and kept it there.
//   - Requests: the values of one Write or Call request must fit the V8 heap the daemon runs with, a few
//     times over (the value, the value read before it, their encodings), checked before any work.
import type { Socket } from 'node:net';
import v8 from 'node:v8';
import type { HardwareProfile } from '../../config/types.ts';
import { approximateBytes } from './evidence.ts';

const MiB = 1024 * 1024;
/** The largest message any one connection may negotiate (what node-opcua offers by default). */
const MAX_MESSAGE_SIZE = 16 * MiB;
/** A HEL that cannot get at least this much is refused (a usable session needs more than one chunk). */
const MIN_MESSAGE_SIZE = 256 * 1024;
const MIN_BUFFER_SIZE = 8192;
const MAX_BUFFER_SIZE = 64 * 1024;
/** Share of the profile's RAM all connections' negotiated messages may add up to. */
const MEMORY_SHARE = 1 / 8;
/** Without a hardware profile. */
const DEFAULT_TOTAL = 256 * MiB;

export interface TransportCaps {
  perConnection: number;
  total: number;
}

/** The caps for a daemon whose V8 heap limit is `heapLimit` bytes, on `hardware` (if the config names one). */
export function transportCaps(heapLimit: number, hardware: HardwareProfile | undefined): TransportCaps {
  const total = hardware?.memory_mib ? Math.floor(hardware.memory_mib * MiB * MEMORY_SHARE) : DEFAULT_TOTAL;
  const perConnection = Math.max(MIN_MESSAGE_SIZE, Math.min(MAX_MESSAGE_SIZE, Math.floor(heapLimit / 8), Math.floor(total / 4)));
  return { perConnection, total };
}

/** What a HEL asks for (node-opcua's HelloMessage fields). */
export interface HelloLimits {
  receiveBufferSize: number;
  sendBufferSize: number;
  maxMessageSize: number;
  maxChunkCount: number;
}

export class TransportLimitRefused extends Error {
  readonly asked: number;
  constructor(asked: number, committed: number, total: number) {
    super(`the listener's message buffers are spent (${Math.round(committed / MiB)} of ${Math.round(total / MiB)} MiB negotiated by open connections)`);
    this.name = 'TransportLimitRefused';
    this.asked = asked;
  }
}

/**
 * The limits the front door answers a HEL with (OPC 10000-6 7.1.2.3: each side may lower what the other
 * asks). Bytes negotiated by connections still open count against `caps.total`; `committed` is their sum.
 * Throws TransportLimitRefused when less than MIN_MESSAGE_SIZE is left: node-opcua then answers the HEL
 * with an ERR message (BadConnectionRejected) and closes the socket.
 */
export function negotiate(hello: HelloLimits, caps: TransportCaps, committed: number): HelloLimits {
  const clamp = (v: number, lo: number, hi: number) => (v === 0 ? hi : Math.min(hi, Math.max(lo, v)));
  const receiveBufferSize = clamp(hello.receiveBufferSize, MIN_BUFFER_SIZE, MAX_BUFFER_SIZE);
  const sendBufferSize = clamp(hello.sendBufferSize, MIN_BUFFER_SIZE, MAX_BUFFER_SIZE);
  const room = Math.min(caps.perConnection, caps.total - committed);
  if (room < MIN_MESSAGE_SIZE) throw new TransportLimitRefused(hello.maxMessageSize, committed, caps.total);
  const maxMessageSize = hello.maxMessageSize ? Math.min(hello.maxMessageSize, room) : room;
  const chunkCap = Math.ceil(maxMessageSize / Math.min(receiveBufferSize, sendBufferSize));
  const maxChunkCount = clamp(hello.maxChunkCount, 1, chunkCap);
  return { receiveBufferSize, sendBufferSize, maxMessageSize, maxChunkCount };
}

/** The message size an ACK frame (`ACKF`) written on a socket grants, or undefined for any other frame. */
export function ackedMessageSize(chunk: Buffer): number | undefined {
  if (chunk.length < 28 || chunk.toString('latin1', 0, 4) !== 'ACKF') return undefined;
  return chunk.readUInt32LE(20);
}

export interface GuardEvents {
  /** A connection that did not activate a session within the bound; it has just been closed. */
  onHandshakeTimeout: (socket: Socket) => void;
}

/**
 * The front door's unauthenticated connections: the message sizes their ACKs granted (read off the
 * frames written, so they are released when the socket closes whatever node-opcua does with the
 * channel), and the time each has to activate a session. A connection stops counting against the pool
 * once a session is activated on it: an authenticated principal is accountable, and sessions are bounded
 * by `max_sessions`. Until then it holds what its HEL negotiated, and is closed after `handshakeMs`.
 */
export class ConnectionGuard {
  readonly #handshakeMs: number;
  readonly #events: GuardEvents;
  readonly #pending = new Map<string, { granted: number; timer: NodeJS.Timeout }>();
  #committed = 0;
  /** The socket whose bytes node-opcua is handling right now (it answers a HEL synchronously). */
  #receiving: Socket | undefined;

  constructor(handshakeMs: number, events: GuardEvents) {
    this.#handshakeMs = handshakeMs;
    this.#events = events;
  }

  /** What unauthenticated connections hold now (bytes negotiated). */
  get committed(): number {
    return this.#committed;
  }

  /** The peer whose HEL is being answered (for the journal of a refused one). */
  get receivingFrom(): { address: string | undefined; port: number | undefined } {
    return { address: this.#receiving?.remoteAddress, port: this.#receiving?.remotePort };
  }

  /** A new socket on the front door. */
  watch(socket: Socket): void {
    socket.prependListener('data', () => (this.#receiving = socket));
    const key = remoteKey(socket.remoteAddress, socket.remotePort);
    const timer = setTimeout(() => {
      if (!this.#pending.has(key)) return;
      this.#events.onHandshakeTimeout(socket);
      socket.destroy();
    }, this.#handshakeMs);
    timer.unref();
    const entry = { granted: 0, timer };
    this.#pending.set(key, entry);
    const write = socket.write;
    socket.write = ((chunk: unknown, ...rest: unknown[]): boolean => {
      if (entry.granted === 0 && Buffer.isBuffer(chunk) && this.#pending.get(key) === entry) {
        const acked = ackedMessageSize(chunk);
        if (acked !== undefined) {
          entry.granted = acked;
          this.#committed += acked;
        }
      }
      return (write as (...args: unknown[]) => boolean).call(socket, chunk, ...rest);
    }) as Socket['write'];
    socket.once('close', () => this.#release(key, entry));
  }

  /** A session was activated on the connection from `address`:`port`: it no longer counts as unauthenticated. */
  authenticated(address: string | undefined, port: number | undefined): void {
    const key = remoteKey(address, port);
    const entry = this.#pending.get(key);
    if (entry) this.#release(key, entry);
  }

  #release(key: string, entry: { granted: number; timer: NodeJS.Timeout }): void {
    if (this.#pending.get(key) !== entry) return;
    this.#pending.delete(key);
    clearTimeout(entry.timer);
    this.#committed -= entry.granted;
  }
}

function remoteKey(address: string | undefined, port: number | undefined): string {
  return `${(address ?? '?').replace(/^::ffff:/, '')}|${port ?? 0}`;
}

/** Why an item of a request is refused before any work. */
export interface TooLarge {
  status: 'BadRequestTooLarge';
  bytes: number;
  allowed: number;
}

/**
 * The values of one request, added up item by item against the V8 heap the daemon runs with. Each byte
 * of a value may exist COPIES times while the item is worked on (decoded, read before, encoded upstream),
 * so a request may carry at most 1/(4 * COPIES) of the heap limit (11 MiB of the shipped 134 MiB: an
 * 8 MB array passes, 14 MB do not, whatever else is on the heap) and never more than the room left.
 */
export class RequestBudget {
  static readonly COPIES = 3;
  readonly #allowed: number;
  #used = 0;
  constructor(heap: { heap_size_limit: number; used_heap_size: number } = v8.getHeapStatistics()) {
    const ofLimit = heap.heap_size_limit / (4 * RequestBudget.COPIES);
    const ofRoom = (heap.heap_size_limit - heap.used_heap_size) / RequestBudget.COPIES;
    this.#allowed = Math.max(0, Math.floor(Math.min(ofLimit, ofRoom)));
  }
  admit(value: unknown): TooLarge | undefined {
    const bytes = approximateBytes(value);
    if (this.#used + bytes > this.#allowed) return { status: 'BadRequestTooLarge', bytes, allowed: Math.max(0, this.#allowed - this.#used) };
    this.#used += bytes;
    return undefined;
  }
}
