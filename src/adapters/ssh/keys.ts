// SSH public key blobs (RFC 4253 §6.6, RFC 5656, RFC 8709) as node KeyObjects, and SSH signature
// verification with them. Used for certificate authority signatures over certificates, and for the
// client's signature when it authenticates with a certificate (ssh2 only verifies plain keys).
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { SshReader, SshWireError } from './wire.ts';

const CURVES: Record<string, { jwk: string; bytes: number; hash: string }> = {
  nistp256: { jwk: 'P-256', bytes: 32, hash: 'sha256' },
  nistp384: { jwk: 'P-384', bytes: 48, hash: 'sha384' },
  nistp521: { jwk: 'P-521', bytes: 66, hash: 'sha512' },
};

export interface SshPublicKey {
  /** `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, … */
  type: string;
  key: KeyObject;
  /** The wire blob, as in an authorized_keys line. */
  blob: Buffer;
}

const b64url = (b: Buffer): string => b.toString('base64url');

/** Read the type-specific key fields that follow the type name (shared by plain keys and certificates). */
export function readKeyFields(type: string, r: SshReader): KeyObject {
  if (type === 'ssh-ed25519') {
    const pk = r.bytes();
    if (pk.length !== 32) throw new SshWireError('an Ed25519 key is 32 bytes');
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(pk) }, format: 'jwk' });
  }
  if (type.startsWith('ecdsa-sha2-')) {
    const curveName = r.text();
    const curve = CURVES[curveName];
    if (!curve || type !== `ecdsa-sha2-${curveName}`) throw new SshWireError(`unsupported ECDSA curve ${curveName}`);
    const q = r.bytes();
    if (q.length !== 1 + 2 * curve.bytes || q[0] !== 4) throw new SshWireError('an ECDSA point must be uncompressed');
    return createPublicKey({
      key: { kty: 'EC', crv: curve.jwk, x: b64url(q.subarray(1, 1 + curve.bytes)), y: b64url(q.subarray(1 + curve.bytes)) },
      format: 'jwk',
    });
  }
  if (type === 'ssh-rsa') {
    const e = r.mpint();
    const n = r.mpint();
    if (n.length * 8 < 2048 - 8) throw new SshWireError('RSA keys shorter than 2048 bits are refused');
    return createPublicKey({ key: { kty: 'RSA', n: b64url(n), e: b64url(e) }, format: 'jwk' });
  }
  throw new SshWireError(`unsupported key type ${type}`);
}

export function parsePublicKeyBlob(blob: Buffer): SshPublicKey {
  const r = new SshReader(blob);
  const type = r.text();
  const key = readKeyFields(type, r);
  r.end('public key');
  return { type, key, blob };
}

/** `ssh-ed25519 AAAA… comment` → the key; throws SshWireError on anything else. */
export function parseAuthorizedKeyLine(line: string): SshPublicKey {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2) throw new SshWireError('expected "TYPE BASE64 [comment]"');
  const blob = Buffer.from(parts[1]!, 'base64');
  const key = parsePublicKeyBlob(blob);
  if (key.type !== parts[0]) throw new SshWireError(`the line says ${parts[0]} but the key is ${key.type}`);
  return key;
}

/** OpenSSH's fingerprint form: `SHA256:` and unpadded base64 of the blob's SHA-256. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Signature algorithms each key type may sign with (SHA-1 `ssh-rsa` signatures are refused). */
function signatureHash(keyType: string, sigAlgo: string): string | null | undefined {
  if (keyType === 'ssh-ed25519') return sigAlgo === 'ssh-ed25519' ? null : undefined;
  if (keyType.startsWith('ecdsa-sha2-')) return sigAlgo === keyType ? CURVES[keyType.slice('ecdsa-sha2-'.length)]?.hash : undefined;
  if (keyType === 'ssh-rsa') return sigAlgo === 'rsa-sha2-256' ? 'sha256' : sigAlgo === 'rsa-sha2-512' ? 'sha512' : undefined;
  return undefined;
}

/**
 * Verify an SSH signature blob (`string algo, string signature`) over `data` with `key`. False for a
 * wrong signature, a malformed blob, or an algorithm the key type must not use.
 */
export function verifySshSignature(key: SshPublicKey, data: Buffer, signatureBlob: Buffer): boolean {
  try {
    const r = new SshReader(signatureBlob);
    const algo = r.text();
    const raw = r.bytes();
    r.end('signature');
    const hash = signatureHash(key.type, algo);
    if (hash === undefined) return false;
    if (key.type.startsWith('ecdsa-sha2-')) {
      const size = CURVES[key.type.slice('ecdsa-sha2-'.length)]!.bytes;
      const s = new SshReader(raw);
      const rr = s.mpint();
      const ss = s.mpint();
      s.end('ECDSA signature');
      if (rr.length > size || ss.length > size) return false;
      const p1363 = Buffer.alloc(2 * size);
      rr.copy(p1363, size - rr.length);
      ss.copy(p1363, 2 * size - ss.length);
      return cryptoVerify(hash, data, { key: key.key, dsaEncoding: 'ieee-p1363' }, p1363);
    }
    return cryptoVerify(hash, data, key.key, raw);
  } catch {
    return false;
  }
}
