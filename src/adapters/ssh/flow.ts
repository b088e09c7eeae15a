// Backpressure toward the client. ssh2 sends channel data as far as the client's advertised window
// allows and never looks at the TCP socket underneath: a client that advertises a 4 GiB window (or
// adjusts it without end) and then stops reading would have the gateway buffer, in its own memory,
// everything the target produces. So every flow toward the client also waits while the client's
// socket holds more than CLIENT_HIGH_WATER unsent bytes — the target is then slowed by its own
// SSH window, as it would be by a slow client talking to it directly.
import type net from 'node:net';
import type { Readable, Writable } from 'node:stream';

/** Unsent bytes on the client's socket past which nothing more is read from the target. */
export const CLIENT_HIGH_WATER = 1024 * 1024;

export class ClientBackpressure {
  readonly #sock: net.Socket | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(sock: net.Socket | undefined) {
    this.#sock = sock;
    const wake = () => {
      if (this.full) return;
      const ws = [...this.#waiters];
      this.#waiters.clear();
      for (const w of ws) w();
    };
    sock?.on('drain', wake);
    sock?.once('close', () => {
      const ws = [...this.#waiters];
      this.#waiters.clear();
      for (const w of ws) w();
    });
  }

  /** The client socket under an ssh2 server connection, channel or SFTP stream. */
  static of(holder: unknown): ClientBackpressure {
    const h = holder as { _sock?: net.Socket; _client?: { _sock?: net.Socket } };
    return new ClientBackpressure(h._sock ?? h._client?._sock);
  }

  get full(): boolean {
    const s = this.#sock;
    return s !== undefined && !s.destroyed && s.writableLength > CLIENT_HIGH_WATER;
  }

  /** Resolves once the client's socket has room (at once when it has, or when it is gone). */
  room(): Promise<void> {
    if (!this.full) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.add(resolve));
  }

  /**
   * Copy `src` into `dst` (never ending `dst`), pausing `src` while `dst` wants a drain (the SSH
   * window is used up) or the client's socket is full.
   */
  forward(src: Readable, dst: Writable): void {
    let held = false;
    const release = () => {
      if (!held || dst.destroyed) return;
      if (dst.writableNeedDrain) return void dst.once('drain', release);
      if (this.full) return void this.room().then(release);
      held = false;
      src.resume();
    };
    src.on('data', (d: Buffer) => {
      if (dst.destroyed || dst.writableEnded) return;
      const ok = dst.write(d);
      if ((!ok || this.full) && !held) {
        held = true;
        src.pause();
        release();
      }
    });
  }
}

/** ssh2's view of a channel's output: what it could not send yet for want of the peer's window waits in `_buffer`. */
interface QueuedOutput {
  _buffer?: unknown[];
  _chunkcb?: (() => void) | undefined;
  outgoing?: { state: string };
}

/**
 * Resolves once ssh2 holds nothing back on `channel` for want of the client's SSH window (at once when
 * it holds nothing). ssh2 queues whatever is written past the window in memory without bound, and an
 * SFTP client may keep asking while never opening its window: a READ is answered only after the
 * previous answers left. ssh2 calls the channel's `_chunkcb` when the client's window adjust lets it
 * send again (lib/server.js CHANNEL_WINDOW_ADJUST); waiters are woken from there.
 */
export function windowRoom(channel: unknown): Promise<void> {
  const c = channel as QueuedOutput;
  if (!c._buffer || c._buffer.length === 0 || c.outgoing?.state !== 'open') return Promise.resolve();
  return new Promise((resolve) => {
    const inner = c._chunkcb;
    c._chunkcb = function (this: unknown) {
      inner?.call(this);
      resolve();
    };
  });
}

/** Whether ssh2 holds output back on `channel` for want of the client's window. */
export function windowFull(channel: unknown): boolean {
  const c = channel as QueuedOutput;
  return (c._buffer?.length ?? 0) > 0 && c.outgoing?.state === 'open';
}
