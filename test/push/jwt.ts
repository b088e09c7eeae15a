// NATS decentralised auth for a test: an operator, one account with JetStream, users with creds files,
// written with @nats-io/nkeys (a JWT here is header.claims.signature, ed25519-nkey, signed by the issuer).
import { createHash } from 'node:crypto';
import { createAccount, createOperator, createUser, type KeyPair } from '@nats-io/nkeys';

const b64url = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function base32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

function jwt(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const claims: Record<string, unknown> = { iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub: subject, nats: { version: 2, ...nats } };
  claims.jti = base32(createHash('sha256').update(JSON.stringify(claims)).digest());
  const signing = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))}.${b64url(JSON.stringify(claims))}`;
  return `${signing}.${b64url(issuer.sign(new TextEncoder().encode(signing)))}`;
}

export interface Decentralised {
  /** nats-server config lines: operator, resolver with the account preloaded. */
  serverConfig: string;
  /** A creds file for a new user of the account, allowed to publish on `publish` (all if omitted). */
  userCreds(publish?: string[]): string;
}

export function decentralisedAuth(): Decentralised {
  const operator = createOperator();
  const account = createAccount();
  // JetStream needs a system account to start in operator mode.
  const system = createAccount();
  const operatorJwt = jwt(operator, operator.getPublicKey(), 'test-operator', { type: 'operator' });
  const accountJwt = jwt(operator, account.getPublicKey(), 'evidence', {
    type: 'account',
    limits: { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
  });
  const systemJwt = jwt(operator, system.getPublicKey(), 'SYS', { type: 'account', limits: { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 } });
  return {
    serverConfig: `operator: ${operatorJwt}\nsystem_account: ${system.getPublicKey()}\nresolver: MEMORY\nresolver_preload: { ${account.getPublicKey()}: ${accountJwt}, ${system.getPublicKey()}: ${systemJwt} }`,
    userCreds: (publish) => {
      const user = createUser();
      const userJwt = jwt(account, user.getPublicKey(), 'gateway', { type: 'user', subs: -1, data: -1, payload: -1, pub: publish ? { allow: publish } : {}, sub: {} });
      return `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${new TextDecoder().decode(user.getSeed())}\n------END USER NKEY SEED------\n`;
    },
  };
}
