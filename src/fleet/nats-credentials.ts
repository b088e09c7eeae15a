// The NATS connection options both ends of the evidence bus (the gateway's pusher, the collector) build
// from their config: the credential (a .creds file or an nkey seed file, read by the client at each
// connect, so a rotated file needs no reload) and TLS. A file's contents never reach an error message.
import { readFileSync } from 'node:fs';
import { fromSeed } from '@nats-io/nkeys';
import { credsAuthenticator, nkeyAuthenticator, type NodeConnectionOptions } from '@nats-io/transport-node';

export interface NatsCredentialConfig {
  servers: readonly string[];
  creds_file?: string | undefined;
  nkey_seed_file?: string | undefined;
  tls?: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined } | undefined;
}

/** Makes the error for a credential file that cannot be read or holds no nkey seed (each end its own code). */
export type CredentialFailure = (problem: 'unreadable' | 'not_a_seed', message: string) => Error;

export function natsCredentialOptions(c: NatsCredentialConfig, fail: CredentialFailure): Pick<NodeConnectionOptions, 'authenticator' | 'tls'> {
  // A tls:// URL asks for TLS even without a tls: section (the system's CAs then).
  const tlsWanted = c.tls !== undefined || c.servers.some((u) => u.startsWith('tls://'));
  return {
    ...(c.creds_file ? { authenticator: credsAuthenticator(() => readCredential(c.creds_file!, 'creds_file', fail)) } : {}),
    ...(c.nkey_seed_file ? { authenticator: nkeyAuthenticator(() => readNkeySeed(c.nkey_seed_file!, fail)) } : {}),
    // The client reads these files itself at each connect; their contents never pass through here.
    ...(tlsWanted ? { tls: { ...(c.tls?.ca ? { caFile: c.tls.ca } : {}), ...(c.tls?.cert ? { certFile: c.tls.cert, keyFile: c.tls.key! } : {}) } } : {}),
  };
}

function readCredential(path: string, field: 'creds_file' | 'nkey_seed_file', fail: CredentialFailure): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    throw fail('unreadable', `${field} ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** An nkey seed file: the seed (SU…) alone, surrounding whitespace allowed. */
function readNkeySeed(path: string, fail: CredentialFailure): Uint8Array {
  const seed = new TextEncoder().encode(new TextDecoder().decode(readCredential(path, 'nkey_seed_file', fail)).trim());
  try {
    fromSeed(seed);
  } catch {
    throw fail('not_a_seed', `nkey_seed_file ${path} does not hold an nkey seed (nsc or nk -gen user writes one: SU…)`);
  }
  return seed;
}
