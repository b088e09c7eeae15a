// Malformed frames at the front door, for the journal. node-opcua answers them inside its transport
// (lying lengths, oversized chunks, unknown message or service types) with no hook of its own, but each
// such refusal ends in an OPC UA ERR message (Part 6, 7.1.2.5) written on the client's socket, whose
// status code says what was wrong. This watches each accepted socket's writes for that one message,
// decodes it, and reports the malformed-input kinds; refusals of certificates, policies and connection
// limits are journaled where they are decided (adapter.ts) and are not repeated here.
// Not seen: a request body node-opcua cannot decode is dropped inside its message builder without an
// ERR message; the client then times out, and the daemon and other sessions carry on.
// Also here: the ERR message a refused client certificate is answered with (answerCertificateRefusalsWithErr).
import type { Socket } from 'node:net';
import { StatusCodes, type OPCUAServer, type StatusCode } from 'node-opcua';
import { formatRemote } from '../net.ts';

export interface WireError {
  remote: string;
  status: string;
  reason: string;
}

const NAME_OF_CODE = new Map<number, string>(Object.entries(StatusCodes).map(([name, sc]) => [sc.value, name]));

/** Status codes node-opcua's packet assembler and message builder answer malformed input with. */
function isMalformedInput(status: string): boolean {
  return status.startsWith('BadTcp') || ['BadDecodingError', 'BadEncodingLimitsExceeded', 'BadNotSupported', 'BadRequestTooLarge', 'BadProtocolVersionUnsupported'].includes(status);
}

/** Decode an ERR message (`ERRF`, size, status code, reason string) or undefined for anything else. */
export function decodeErrMessage(chunk: Buffer): { status: string; reason: string } | undefined {
  if (chunk.length < 16 || chunk.toString('latin1', 0, 4) !== 'ERRF' || chunk.readUInt32LE(4) !== chunk.length) return undefined;
  const code = chunk.readUInt32LE(8);
  const length = chunk.readInt32LE(12);
  const reason = length > 0 ? chunk.toString('utf8', 16, Math.min(chunk.length, 16 + length, 16 + 512)) : '';
  return { status: NAME_OF_CODE.get(code) ?? `0x${code.toString(16).padStart(8, '0')}`, reason };
}

interface EndpointInternals {
  _server?: { on(event: 'connection', fn: (socket: Socket) => void): void };
}

/** Call `fn` with every socket the server's endpoints accept (throws when node-opcua's internals changed). */
export function eachConnection(server: OPCUAServer, fn: (socket: Socket) => void): void {
  for (const endpoint of server.endpoints as unknown as EndpointInternals[]) {
    const net = endpoint._server;
    if (!net) throw new Error('node-opcua endpoint internals changed: cannot watch the front door\'s connections');
    net.on('connection', fn);
  }
}

export function watchWireErrors(server: OPCUAServer, report: (e: WireError) => void): void {
  eachConnection(server, (socket) => {
    const write = socket.write;
    socket.write = function (this: Socket, chunk: unknown, ...rest: unknown[]): boolean {
      if (Buffer.isBuffer(chunk) && chunk[0] === 0x45 /* E */) {
        const err = decodeErrMessage(chunk);
        if (err && isMalformedInput(err.status)) report({ remote: formatRemote(socket.remoteAddress, socket.remotePort), ...err });
      }
      return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as Socket['write'];
  });
}

/** An ERR message (OPC 10000-6 7.1.2.5): `ERRF`, size, status code, reason. */
export function encodeErrMessage(code: number, reason: string): Buffer {
  const text = Buffer.from(reason, 'utf8');
  const b = Buffer.alloc(16 + text.length);
  b.write('ERRF', 0, 'latin1');
  b.writeUInt32LE(b.length, 4);
  b.writeUInt32LE(code >>> 0, 8);
  b.writeInt32LE(text.length, 12);
  text.copy(b, 16);
  return b;
}

/** What a refused client certificate is told: node-opcua's narrowing (its openSecureChannelRefusalStatus). */
function certificateRefusalStatus(status: StatusCode): StatusCode {
  const passed = [StatusCodes.BadCertificateTimeInvalid, StatusCodes.BadCertificateUseNotAllowed, StatusCodes.BadCertificateRevocationUnknown];
  return passed.some((s) => s.value === status.value) ? status : StatusCodes.BadSecurityChecksFailed;
}

interface ChannelInternals {
  init(socket: Socket, cb: (err?: Error) => void): void;
  checkCertificate(certificate: Buffer | null): Promise<StatusCode>;
}
interface EndpointChannelInternals {
  _preregisterChannel?: (channel: ChannelInternals) => void;
}

/**
 * Answer a refused client application certificate with an ERR message (BadSecurityChecksFailed) on the
 * socket, as OPC 10000-6 7.1.2.5 describes and other stacks expect, then close the connection.
 * node-opcua 2.186 answers it with a ServiceFault inside an OPN signed and encrypted for the refused
 * certificate (its FEAT-39); open62541 1.4 cannot decode that (BadDecodingError) and cannot tell the
 * user why it was refused. node-opcua has no option for this, so each channel of our endpoints gets its
 * checkCertificate wrapped (per instance, never the prototype: the plant servers of the tests run in the
 * same process): on a refusal it writes the ERR message, closes the socket, and never returns to
 * node-opcua, which therefore never sends its OPN. Tested against the installed node-opcua by
 * test/adapters/opcua/safety.test.ts; the start fails loudly if the internals it needs are gone.
 */
export function answerCertificateRefusalsWithErr(server: OPCUAServer): void {
  for (const endpoint of server.endpoints as unknown as EndpointChannelInternals[]) {
    const preregister = endpoint._preregisterChannel;
    if (typeof preregister !== 'function') throw new Error('node-opcua endpoint internals changed: cannot answer refused certificates with ERR');
    endpoint._preregisterChannel = function (this: EndpointChannelInternals, channel: ChannelInternals) {
      if (typeof channel.init !== 'function' || typeof channel.checkCertificate !== 'function') throw new Error('node-opcua secure channel internals changed');
      let socket: Socket | undefined;
      const init = channel.init;
      channel.init = function (this: ChannelInternals, s: Socket, cb: (err?: Error) => void) {
        socket = s;
        return init.call(this, s, cb);
      };
      const check = channel.checkCertificate;
      channel.checkCertificate = async function (this: ChannelInternals, certificate: Buffer | null): Promise<StatusCode> {
        const status = await check.call(this, certificate);
        if (status.isGood() || !socket || socket.destroyed) return status;
        const answer = certificateRefusalStatus(status);
        const s = socket;
        s.end(encodeErrMessage(answer.value, 'the client certificate was refused'));
        setTimeout(() => s.destroy(), 1000).unref();
        return new Promise<StatusCode>(() => {});
      };
      return preregister.call(this, channel);
    };
  }
}
