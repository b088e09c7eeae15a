// A streaming admin command: its reply line (the header) is followed by newline-delimited lines until the
// client closes. The handler returns a StreamReply; the server writes the header, stops reading requests
// on that connection, lifts its idle time-out and hands the socket to `start`.

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

  constructor(header: unknown, start: (sink: StreamSink) => () => void) {
    this.header = header;
    this.start = start;
  }
}
