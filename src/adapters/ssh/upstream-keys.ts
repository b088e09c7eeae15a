// Pinned host keys of SSH targets, written as known_hosts lines. Only the key matters for pinning:
// the host field (plain, `[host]:port` or hashed `|1|…`) is accepted and ignored, since the target's
// address comes from its config.
import { parsePublicKeyBlob, type SshPublicKey } from './keys.ts';
import { SshWireError } from './wire.ts';

export function parseKnownHostsLine(line: string): SshPublicKey {
  const words = line.trim().split(/\s+/);
  if (words[0]?.startsWith('@')) throw new SshWireError(`markers such as ${words[0]} are not supported`);
  // "TYPE BASE64 [comment]" or "HOSTS TYPE BASE64 [comment]"
  for (const start of [0, 1]) {
    const type = words[start];
    const b64 = words[start + 1];
    if (!type || !b64 || !/^[a-z0-9@.-]+$/.test(type) || !/^[A-Za-z0-9+/]+=*$/.test(b64)) continue;
    try {
      const key = parsePublicKeyBlob(Buffer.from(b64, 'base64'));
      if (key.type === type) return key;
    } catch {
      // try the other layout
    }
  }
  throw new SshWireError('no key of a supported type (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa)');
}
