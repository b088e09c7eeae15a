// A streaming admin command: its reply line (the header) is followed by newline-delimited lines until the
// client closes. The handler returns a StreamReply; the server writes the header, stops reading requests
// on that connection, lifts its idle time-out and hands the socket to `start`.

/** What a stream writes to: the connection's socket, seen as little as the stream needs. */
export interface StreamSink {
  /** Queue a chunk; false once the socket's buffer is past its mark (then 'drain' follows). */
  write(chunk: string): boolean;
  /** Bytes queued in the socket not yet handed to the kernel. */
  readonly writableLength: number;
  readonly destroyed: boolean;
  once(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
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
