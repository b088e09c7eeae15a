// A bounds-checked reader of the SSH binary encoding (RFC 4251 §5): uint32, uint64, string, mpint.
// Every length is checked against what is left before anything is sliced; a short or lying buffer
// throws SshWireError, never reads past the end.
export class SshWireError extends Error {
  readonly code = 'SSH_WIRE_MALFORMED';
  override readonly name = 'SshWireError';
}

export class SshReader {
  readonly #buf: Buffer;
  #pos = 0;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  get offset(): number {
    return this.#pos;
  }

  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  #need(n: number, what: string): void {
    if (n < 0 || this.#pos + n > this.#buf.length) throw new SshWireError(`truncated ${what}: needs ${n} bytes, ${this.remaining} left`);
  }

  uint32(): number {
    this.#need(4, 'uint32');
    const v = this.#buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  uint64(): bigint {
    this.#need(8, 'uint64');
    const v = this.#buf.readBigUInt64BE(this.#pos);
    this.#pos += 8;
    return v;
  }

  bytes(): Buffer {
    const n = this.uint32();
    this.#need(n, 'string');
    const v = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return v;
  }

  /** A string that must be printable UTF-8 names (algorithm names, principals, option names). */
  text(): string {
    const b = this.bytes();
    const s = b.toString('utf8');
    if (!Buffer.from(s, 'utf8').equals(b)) throw new SshWireError('a name is not valid UTF-8');
    return s;
  }

  /** An mpint as unsigned big-endian bytes without leading zeros (negative values are refused). */
  mpint(): Buffer {
    const b = this.bytes();
    if (b.length > 0 && (b[0]! & 0x80) !== 0) throw new SshWireError('negative mpint');
    let i = 0;
    while (i < b.length && b[i] === 0) i++;
    return b.subarray(i);
  }

  end(what: string): void {
    if (this.remaining !== 0) throw new SshWireError(`${this.remaining} trailing bytes after ${what}`);
  }
}

export function sshString(b: Buffer | string): Buffer {
  const body = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}
