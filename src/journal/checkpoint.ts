// Checkpoints in the C2SP tlog-checkpoint format, signed as C2SP signed notes with Ed25519.
//   body      = "<origin>\n<size>\n<base64 root>\n"
//   note      = body + "\n" + one "— <key name> <base64(key hash || signature)>\n" line per signature
//   key hash  = SHA-256(key name || 0x0A || 0x01 || public key)[0:4]
//   vkey      = "<key name>+<hex key hash>+<base64(0x01 || public key)>"
// Pure (node:crypto and @noble/hashes only): the puller and auditors verify offline with these.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';

const ED25519 = 0x01;
const EM_DASH = '\u2014';
const MAX_SIGNATURES = 100;

export interface Checkpoint {
  origin: string;
  size: number;
  /** 32 bytes. */
  rootHash: Uint8Array;
  /** Extension lines after the root, if any (we write none). */
  extensions: string[];
}

export interface NoteSignature {
  name: string;
  keyHash: number;
  signature: Uint8Array;
}

export interface Note {
  /** The signed text, ending with a newline. */
  body: string;
  signatures: NoteSignature[];
}

export interface Verifier {
  name: string;
  keyHash: number;
  publicKey: Uint8Array;
}

export class NoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoteError';
  }
}

/** A fresh Ed25519 private key, PKCS#8 PEM. */
export function generateSigningKeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** The raw 32-byte Ed25519 public key of a PKCS#8 private key (or SPKI public key) PEM. */
export function publicKeyFromPem(pem: string): Uint8Array {
  const jwk = createPublicKey(pem).export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new NoteError('not an Ed25519 key');
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'));
}

function validKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]/u.test(name);
}

export function keyHash(name: string, publicKey: Uint8Array): number {
  const h = sha256(Buffer.concat([Buffer.from(name, 'utf8'), Buffer.from([0x0a, ED25519]), publicKey]));
  return ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
}

export function formatVkey(name: string, publicKey: Uint8Array): string {
  if (!validKeyName(name)) throw new NoteError(`invalid key name ${JSON.stringify(name)}`);
  const hash = keyHash(name, publicKey).toString(16).padStart(8, '0');
  return `${name}+${hash}+${Buffer.concat([Buffer.from([ED25519]), publicKey]).toString('base64')}`;
}

export function parseVkey(vkey: string): Verifier {
  // The key's base64 may itself contain '+': split only the first two.
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+(\S+)$/.exec(vkey);
  if (!m) throw new NoteError('vkey must be name+hash+key');
  const [, name, hashHex, keyB64] = m as unknown as [string, string, string, string];
  const key = Buffer.from(keyB64, 'base64');
  if (key.length !== 33 || key[0] !== ED25519 || key.toString('base64') !== keyB64) throw new NoteError('vkey is not an Ed25519 key');
  const publicKey = new Uint8Array(key.subarray(1));
  const hash = Number.parseInt(hashHex, 16);
  if (keyHash(name, publicKey) !== hash) throw new NoteError('vkey hash does not match its key');
  return { name, keyHash: hash, publicKey };
}

export function formatCheckpointBody(origin: string, size: number, rootHash: Uint8Array): string {
  if (origin.length === 0 || origin.includes('\n')) throw new NoteError('invalid origin');
  return `${origin}\n${size}\n${Buffer.from(rootHash).toString('base64')}\n`;
}

export function parseCheckpointBody(body: string): Checkpoint {
  if (!body.endsWith('\n')) throw new NoteError('checkpoint body must end with a newline');
  const lines = body.slice(0, -1).split('\n');
  if (lines.length < 3) throw new NoteError('checkpoint body needs origin, size and root hash');
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin.length === 0) throw new NoteError('empty origin');
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) throw new NoteError(`bad tree size ${JSON.stringify(sizeText)}`);
  const root = Buffer.from(rootText, 'base64');
  if (root.length !== 32 || root.toString('base64') !== rootText) throw new NoteError('root hash is not 32 bytes of base64');
  if (extensions.some((l) => l.length === 0)) throw new NoteError('empty extension line');
  return { origin, size: Number(sizeText), rootHash: new Uint8Array(root), extensions };
}

export function parseNote(text: string): Note {
  if (!text.endsWith('\n')) throw new NoteError('note must end with a newline');
  const split = text.lastIndexOf('\n\n');
  if (split < 0) throw new NoteError('note has no blank line before its signatures');
  const body = text.slice(0, split + 1);
  const sigLines = text.slice(split + 2, -1).split('\n');
  if (sigLines.length > MAX_SIGNATURES) throw new NoteError('too many signatures');
  const signatures: NoteSignature[] = [];
  for (const line of sigLines) {
    const m = /^\u2014 (\S+) (\S+)$/u.exec(line);
    if (!m) throw new NoteError(`malformed signature line ${JSON.stringify(line)}`);
    const raw = Buffer.from(m[2]!, 'base64');
    if (raw.length < 5 || raw.toString('base64') !== m[2]) throw new NoteError('malformed signature');
    signatures.push({ name: m[1]!, keyHash: raw.readUInt32BE(0), signature: new Uint8Array(raw.subarray(4)) });
  }
  if (signatures.length === 0) throw new NoteError('note has no signatures');
  return { body, signatures };
}

function publicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

/** Signs a note body with an Ed25519 PKCS#8 key under `name`. */
export function signNote(body: string, name: string, signingKeyPem: string): string {
  return new NoteSigner(name, signingKeyPem).sign(body);
}

/** A signer that keeps the parsed key (signing a checkpoint per batch must be cheap). */
export class NoteSigner {
  readonly name: string;
  readonly publicKey: Uint8Array;
  readonly vkey: string;
  readonly #key: KeyObject;
  readonly #hash: Buffer;

  constructor(name: string, signingKeyPem: string) {
    this.name = name;
    this.#key = createPrivateKey(signingKeyPem);
    this.publicKey = publicKeyFromPem(signingKeyPem);
    this.vkey = formatVkey(name, this.publicKey);
    this.#hash = Buffer.alloc(4);
    this.#hash.writeUInt32BE(keyHash(name, this.publicKey));
  }

  sign(body: string): string {
    if (!body.endsWith('\n')) throw new NoteError('note body must end with a newline');
    const sig = sign(null, Buffer.from(body, 'utf8'), this.#key);
    return `${body}\n${EM_DASH} ${this.name} ${Buffer.concat([this.#hash, sig]).toString('base64')}\n`;
  }

  checkpoint(size: number, rootHash: Uint8Array): string {
    return this.sign(formatCheckpointBody(this.name, size, rootHash));
  }
}

/** True when the note carries a valid signature by `verifier`; other signatures (witnesses) are ignored. */
export function noteSignedBy(note: Note, verifier: Verifier): boolean {
  const key = publicKeyObject(verifier.publicKey);
  const data = Buffer.from(note.body, 'utf8');
  return note.signatures.some(
    (s) => s.name === verifier.name && s.keyHash === verifier.keyHash && s.signature.length === 64 && verify(null, data, key, s.signature),
  );
}

export type CheckpointResult = { ok: true; checkpoint: Checkpoint; note: Note } | { ok: false; problem: string };

/** Parses a signed checkpoint note and checks the signature of `vkey` and that origin == key name. */
export function verifyCheckpoint(noteText: string, vkey: string): CheckpointResult {
  try {
    const verifier = parseVkey(vkey);
    const note = parseNote(noteText);
    const checkpoint = parseCheckpointBody(note.body);
    if (checkpoint.origin !== verifier.name) return { ok: false, problem: `checkpoint origin ${checkpoint.origin} is not the key's ${verifier.name}` };
    if (!noteSignedBy(note, verifier)) return { ok: false, problem: `checkpoint at size ${checkpoint.size} has no valid signature by ${verifier.name}` };
    return { ok: true, checkpoint, note };
  } catch (err) {
    if (err instanceof NoteError) return { ok: false, problem: err.message };
    throw err;
  }
}
