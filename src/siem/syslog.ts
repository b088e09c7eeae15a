// RFC 5424 syslog messages carrying OCSF JSON, framed for TLS by RFC 5425 octet counting
// (`MSG-LEN SP SYSLOG-MSG`, MSG-LEN in octets), and the TLS connection that carries them: the receiver's
// certificate must chain to the pinned CA and name the configured server, an optional client
// certificate proves who we are. The formatting is pure; SyslogTlsConnection knows nothing of cursors.
//
// MSG: RFC 5424 §6.4 lets MSG be MSG-ANY or MSG-UTF8 (which must start with a BOM). We send the OCSF JSON
// with every non-ASCII character escaped (\uXXXX), so MSG is plain ASCII, needs no BOM, and a SIEM's
// JSON parser reads back exactly the journal's strings (a BOM in front of JSON trips many parsers).
// Newlines inside values are JSON-escaped too, so a receiver that splits on LF still sees one line.
import { isIP } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';

export const APP_NAME = 'penstock';
/** The SD-ID's enterprise number: 32473 is the one RFC 5612 reserves for documentation and examples. */
export const DEFAULT_ENTERPRISE = 32473;

export const FACILITIES = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  ntp: 12, audit: 13, alert: 14, clock: 15, local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
} as const;
export type FacilityName = keyof typeof FACILITIES;

/** Syslog severity from the event code's suffix: E error (3), W warning (4), I informational (6). */
export function syslogSeverity(code: string): number {
  const s = code.at(-1);
  return s === 'E' ? 3 : s === 'W' ? 4 : 6;
}

export interface SyslogFields {
  facility: number;
  /** The event's code: MSGID and the severity. */
  code: string;
  /** ISO 8601 with milliseconds, UTC. */
  time: string;
  /** The appliance the event is from: HOSTNAME (the machine that originated it) and an SD-PARAM. */
  appliance: string;
  seq: number;
  event: string;
  procid?: string | number;
  enterprise?: number;
  /** The OCSF record. */
  body: unknown;
}

/** One RFC 5424 message (without framing), as bytes. */
export function formatSyslog(f: SyslogFields): Buffer {
  const pri = f.facility * 8 + syslogSeverity(f.code);
  const host = headerField(f.appliance, 255);
  const procid = headerField(String(f.procid ?? process.pid), 128);
  const msgid = headerField(f.code, 32);
  const sd = `[penstock@${f.enterprise ?? DEFAULT_ENTERPRISE} appliance="${sdValue(f.appliance)}" seq="${f.seq}" event="${sdValue(f.event)}"]`;
  return Buffer.from(`<${pri}>1 ${f.time} ${host} ${APP_NAME} ${procid} ${msgid} ${sd} ${asciiJson(f.body)}`, 'utf8');
}

/** RFC 5425 §4.3 octet-counting: the length in octets, a space, the message. */
export function frame(message: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${message.length} `, 'ascii'), message]);
}

/** JSON with non-ASCII escaped: ASCII bytes that parse back to the same value. */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A header field: PRINTUSASCII (33..126) only, bounded, NILVALUE when empty. */
function headerField(v: string, max: number): string {
  const s = v.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return s.length > 0 ? s : '-';
}

/** An SD-PARAM value (UTF-8): `"`, `\` and `]` escaped (RFC 5424 §6.3.3). */
function sdValue(v: string): string {
  return v.replace(/["\\\]]/g, (c) => `\\${c}`);
}

// ------------------------------------------------------------------------------------------ errors

/** Why an export is not getting through: stable codes for status and tests. */
export const SIEM_ERROR_CODES = {
  tls_untrusted: "the receiver's certificate does not chain to the pinned CA",
  tls_name_mismatch: "the receiver's certificate does not name the configured server",
  tls_failed: 'the TLS handshake failed',
  connect_failed: 'the receiver could not be reached',
  connection_lost: 'the receiver closed or broke the connection',
  source_failed: 'the events could not be read from the source',
  cursor_failed: 'the cursor could not be stored',
} as const;
export type SiemErrorCode = keyof typeof SIEM_ERROR_CODES;

export class SiemError extends Error {
  readonly code: SiemErrorCode;
  constructor(code: SiemErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SiemError';
    this.code = code;
  }
}

const UNTRUSTED = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** A socket or TLS error as a SiemError with the code that says what to fix. */
export function classifyError(err: unknown, where: string): SiemError {
  if (err instanceof SiemError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : '';
  const msg = e?.message ?? String(err);
  if (UNTRUSTED.has(code)) return new SiemError('tls_untrusted', `${where}: certificate not trusted (${code}): ${msg}`, { cause: err });
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return new SiemError('tls_name_mismatch', `${where}: ${msg}`, { cause: err });
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || /ssl|tls|handshake/i.test(msg)) return new SiemError('tls_failed', `${where}: ${msg}`, { cause: err });
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ETIMEDOUT' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new SiemError('connect_failed', `${where}: ${msg}`, { cause: err });
  }
  return new SiemError('connection_lost', `${where}: ${msg}`, { cause: err });
}

// ------------------------------------------------------------------------------------- connection

export interface TlsTarget {
  host: string;
  port: number;
  /** PEM of the CA the receiver's certificate must chain to (the system store is not used). */
  ca: string;
  cert?: string;
  key?: string;
  /** The name the receiver's certificate must carry; default host. */
  serverName?: string;
  connectTimeoutMs?: number;
}

/**
 * One TLS connection to a syslog receiver. `write` resolves once every frame was handed to the socket
 * (its write callbacks ran), waiting for 'drain' when the socket's buffer is full, so memory stays
 * bounded by one batch. `onClosed` fires once when the connection ends for any reason.
 */
export class SyslogTlsConnection {
  readonly #socket: TLSSocket;
  #closed = false;
  #error: SiemError | undefined;
  readonly #closedListeners: ((err: SiemError) => void)[] = [];
  #peerEnded = false;
  /** Rejects when the connection closes: raced against each wait, one promise for the connection's life. */
  readonly #failed: Promise<never>;

  private constructor(socket: TLSSocket) {
    this.#socket = socket;
    this.#failed = new Promise<never>((_, reject) => this.#closedListeners.push(reject));
    this.#failed.catch(() => {});
    // The receiver sends nothing; anything it does send is read and dropped so its buffers never fill.
    socket.on('data', () => {});
    socket.on('end', () => {
      this.#peerEnded = true;
      this.#close(new SiemError('connection_lost', 'the receiver closed the connection'));
    });
    socket.on('error', (err) => this.#close(classifyError(err, 'syslog connection')));
    socket.on('close', () => this.#close(new SiemError('connection_lost', 'the connection closed')));
  }

  static open(t: TlsTarget): Promise<SyslogTlsConnection> {
    return new Promise((resolve, reject) => {
      const where = `${t.host}:${t.port}`;
      const socket = connect({
        host: t.host,
        port: t.port,
        ca: t.ca,
        ...(t.cert ? { cert: t.cert } : {}),
        ...(t.key ? { key: t.key } : {}),
        // SNI carries names only (RFC 6066); the certificate is checked against servername, else host
        // (an IP address against the certificate's IP SANs).
        ...(t.serverName || !isIP(t.host) ? { servername: t.serverName ?? t.host } : {}),
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
      });
      const timer = setTimeout(() => socket.destroy(new SiemError('connect_failed', `${where}: no TLS handshake within ${t.connectTimeoutMs ?? 10_000} ms`)), t.connectTimeoutMs ?? 10_000);
      const fail = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(classifyError(err, where));
      };
      socket.once('error', fail);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.off('error', fail);
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 30_000);
        resolve(new SyslogTlsConnection(socket));
      });
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  onClosed(listener: (err: SiemError) => void): void {
    if (this.#closed) listener(this.#error!);
    else this.#closedListeners.push(listener);
  }

  /** Writes the frames in order; rejects with a SiemError when the connection fails before all were written. */
  async write(frames: readonly Buffer[]): Promise<void> {
    for (let i = 0; i < frames.length; i++) {
      if (this.#closed) throw this.#error!;
      const last = i === frames.length - 1;
      const written = last ? new Promise<void>((resolve, reject) => this.#socket.write(frames[i]!, (err) => (err ? reject(classifyError(err, 'syslog write')) : resolve()))) : undefined;
      const room = last ? true : this.#socket.write(frames[i]!);
      if (written) await Promise.race([written, this.#failed]);
      else if (!room) await Promise.race([new Promise<void>((r) => this.#socket.once('drain', () => r())), this.#failed]);
    }
    if (this.#closed) throw this.#error!;
  }

  /** Ends the connection politely (TLS close_notify, FIN); true when the receiver then closed its side too. */
  async end(timeoutMs = 5000): Promise<boolean> {
    if (this.#closed) return this.#peerEnded;
    const done = new Promise<void>((r) => this.onClosed(() => r()));
    this.#socket.end();
    const timer = setTimeout(() => this.#socket.destroy(), timeoutMs);
    await done;
    clearTimeout(timer);
    return this.#peerEnded;
  }

  destroy(): void {
    this.#socket.destroy();
  }

  #close(err: SiemError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = err;
    this.#socket.destroy();
    for (const l of this.#closedListeners.splice(0)) l(err);
  }
}
