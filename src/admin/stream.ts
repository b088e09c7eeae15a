// A streaming admin command: its reply line (the header) is followed by newline-delimited lines until the
// client closes. The handler returns a StreamReply; the server writes the header, stops reading requests
// on that connection, lifts its idle time-out and hands the socket to `start` — or calls `cancel` when
// the connection went before the header could be written.

/** What a stream writes to: the connection's socket, seen as little as the stream needs. */
export interface StreamSink {
  /** Queue a chunk; `flushed` is called once it has left for the kernel (with an error if it never will). */
  write(chunk: string, flushed: (err?: Error | null) => void): boolean;
  /** Bytes queued in the socket not yet handed to the kernel. */
  readonly writableLength: number;
  readonly destroyed: boolean;
}

export class StreamReply {
  /** The reply's `result`. */
  readonly header: unknown;
  /** Begins streaming to `sink`; returns what stops it (called when the connection closes). */
  readonly start: (sink: StreamSink) => () => void;
  /** The header was never sent: undo what the handler began. */
  readonly cancel: () => void;

  constructor(header: unknown, start: (sink: StreamSink) => () => void, cancel: () => void = () => {}) {
    this.header = header;
    this.start = start;
    this.cancel = cancel;
  }
}

/**
 * A sink that holds what is written until the socket is attached, so that a stream can begin at the very
 * moment its header describes (nothing committed in between is missed). Its writer bounds what it holds
 * by `writableLength`, as for a socket.
 */
export class DeferredSink implements StreamSink {
  #target: StreamSink | undefined;
  #held: { chunk: string; flushed: (err?: Error | null) => void }[] = [];
  #heldBytes = 0;

  write(chunk: string, flushed: (err?: Error | null) => void): boolean {
    if (this.#target) return this.#target.write(chunk, flushed);
    this.#held.push({ chunk, flushed });
    this.#heldBytes += chunk.length;
    return true;
  }

  get writableLength(): number {
    return this.#target ? this.#target.writableLength : this.#heldBytes;
  }

  get destroyed(): boolean {
    return this.#target?.destroyed ?? false;
  }

  attach(target: StreamSink): void {
    this.#target = target;
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    for (const { chunk, flushed } of held) target.write(chunk, flushed);
  }
}
