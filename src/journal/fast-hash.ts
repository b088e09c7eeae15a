// RFC 6962 leaf and node hashes with node:crypto, for the journal's hot paths (append, verifyAll).
// They must give exactly what merkle.ts computes with @noble/hashes (test/journal/fast-hash.test.ts
// checks it); merkle.ts stays free of node:crypto so the puller and offline auditors need only @noble/hashes.
import { hash as sha256OneShot } from 'node:crypto';
import type { Hash, NodeHasher } from './merkle.ts';

/** SHA-256(0x00 || data). */
export function fastLeafHash(data: Uint8Array): Hash {
  const input = Buffer.allocUnsafe(data.length + 1);
  input[0] = 0x00;
  input.set(data, 1);
  return sha256OneShot('sha256', input, 'buffer');
}

/**
 * Encodes `text` as UTF-8 once, into a buffer that starts with the leaf prefix: returns the event bytes
 * (a view, without the prefix) and their leaf hash, with no second copy.
 */
export function encodeAndLeafHash(text: string): { bytes: Buffer; leaf: Hash } {
  const input = Buffer.allocUnsafe(Buffer.byteLength(text, 'utf8') + 1);
  input[0] = 0x00;
  input.write(text, 1, 'utf8');
  return { bytes: input.subarray(1), leaf: sha256OneShot('sha256', input, 'buffer') };
}

const nodeInput = Buffer.alloc(65);
nodeInput[0] = 0x01;

/** SHA-256(0x01 || left || right). */
export const fastNodeHash: NodeHasher = (left, right) => {
  nodeInput.set(left, 1);
  nodeInput.set(right, 33);
  return sha256OneShot('sha256', nodeInput, 'buffer');
};
