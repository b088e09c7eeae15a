// Malformed frames at the front door, for the journal. node-opcua answers them inside its transport
// (lying lengths, oversized chunks, unknown message or service types) with no hook of its own, but each
// such refusal ends in an OPC UA ERR message (Part 6, 7.1.2.5) written on the client's socket, whose
// status code says what was wrong. This watches each accepted socket's writes for that one message,
// decodes it, and reports the malformed-input kinds; refusals of certificates, policies and connection
// limits are journaled where they are decided (adapter.ts) and are not repeated here.
// Not seen: a request body node-opcua cannot decode is dropped inside its message builder without an
// ERR message; the client then times out, and the daemon and other sessions carry on.
import type { Socket } from 'node:net';
import { StatusCodes, type OPCUAServer } from 'node-opcua';
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

export function watchWireErrors(server: OPCUAServer, report: (e: WireError) => void): void {
  for (const endpoint of server.endpoints as unknown as EndpointInternals[]) {
    const net = endpoint._server;
    // Without the hook malformed frames are still refused by node-opcua, only not journaled: say so.
    if (!net) throw new Error('node-opcua endpoint internals changed: cannot journal malformed frames');
    net.on('connection', (socket) => {
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
}
