// Target credentials, encrypted at rest. Only adapters read them, and only at connect time.
//
// File (JSON):  { "version": 1, "entries": { NAME: { "iv", "tag", "ciphertext" } } }  (base64 fields)
// Each entry is AES-256-GCM under the vault key with the entry NAME as associated data, so an entry
// copied or swapped under another name fails authentication. The key is 32 random bytes written as
// 64 hex digits in a key file kept outside the config (default /etc/penstock/vault.key, root:penstock
// 0640); a key file that others may read or that anyone but its owner may write is refused.
//
// Values leave the vault only as Secret. Nothing here ever puts a value or the key into a message,
// an error, a log line, JSON or inspect output.
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { inspect } from 'node:util';
import { PenstockError } from '../common/errors.ts';
import { Secret } from '../common/secret.ts';

export const VAULT_REF_PREFIX = 'vault:';
/** Same alphabet as a config `vault:NAME` reference (src/config/schema.ts), bounded. */
const NAME_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
const FORMAT_VERSION = 1;
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const MAX_FILE_BYTES = 8 * 1024 * 1024;
const MAX_VALUE_BYTES = 64 * 1024;
/** Group-write and every permission for others: such a key could be read, or replaced by someone who
 * would then learn every secret stored after the swap. */
const UNSAFE_KEY_MODE_BITS = 0o027;

interface SealedEntry {
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

/** The NAME in a `vault:NAME` reference; PS_VAULT when `ref` is not one. */
export function resolveVaultRef(ref: string): string {
  const name = ref.startsWith(VAULT_REF_PREFIX) ? ref.slice(VAULT_REF_PREFIX.length) : undefined;
  if (name === undefined || !NAME_PATTERN.test(name)) {
    // The text itself is not echoed: a misplaced password must not reach a log through this error.
    throw new PenstockError('PS_VAULT', "not a vault reference (expected vault:NAME, NAME of letters, digits, '.', '_', '-', at most 128)");
  }
  return name;
}

export function isVaultName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

export class Vault {
  /** The encrypted file, or undefined for an in-memory empty vault (no key configured). */
  readonly file: string | undefined;
  readonly #key: KeyObject | undefined;
  #entries: Map<string, SealedEntry>;

  private constructor(file: string | undefined, key: KeyObject | undefined, entries: Map<string, SealedEntry>) {
    this.file = file;
    this.#key = key;
    this.#entries = entries;
  }

  /**
   * Open the vault file with the key in `keyFile`. A missing vault file is an empty vault; a missing
   * or unsafe key file, a malformed file, or an entry that fails authentication (wrong key, altered
   * or swapped entry) is PS_VAULT, at start-up rather than when a vendor first connects.
   */
  static open(file: string, keyFile: string): Vault {
    const key = readKeyFile(keyFile);
    const vault = new Vault(file, key, readVaultFile(file));
    vault.#verifyAll();
    return vault;
  }

  /** A vault with no key and no entries, for a configuration where no target needs a credential. */
  static empty(): Vault {
    return new Vault(undefined, undefined, new Map());
  }

  /** Write a new key file (32 random bytes, hex) with mode 0600; refuses to overwrite one. */
  static createKeyFile(path: string): void {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code === 'EEXIST' ? 'it already exists; refusing to replace a vault key' : 'it could not be created';
      throw new PenstockError('PS_VAULT', `vault key file ${path}: ${why}`, { file: path }, { cause: err });
    }
    const text = Buffer.from(`${randomBytes(KEY_BYTES).toString('hex')}\n`);
    try {
      writeAll(fd, text);
      fsyncSync(fd);
    } finally {
      text.fill(0);
      closeSync(fd);
    }
    fsyncDirectory(dirname(path));
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** Entry names, sorted. Names are not secret; values are. */
  names(): string[] {
    return [...this.#entries.keys()].sort();
  }

  get(name: string): Secret {
    const entry = this.#entries.get(name);
    if (!entry || !this.#key) {
      const shown = NAME_PATTERN.test(name) ? name : '(an invalid name)';
      throw new PenstockError('PS_VAULT', `vault has no entry ${shown}`, { entry: shown });
    }
    return new Secret(this.#decrypt(name, entry).toString('utf8'));
  }

  /** The credential a config reference (`vault:NAME`) points at. */
  resolve(ref: string): Secret {
    return this.get(resolveVaultRef(ref));
  }

  /** Add or replace an entry; the file is rewritten atomically, or nothing changes at all. */
  set(name: string, value: Secret | string): void {
    if (!NAME_PATTERN.test(name)) {
      throw new PenstockError('PS_VAULT', "invalid vault entry name (letters, digits, '.', '_', '-'; at most 128)");
    }
    const plaintext = Buffer.from(typeof value === 'string' ? value : value.reveal(), 'utf8');
    try {
      if (plaintext.length > MAX_VALUE_BYTES) throw new PenstockError('PS_VAULT', `vault entry ${name}: value larger than ${MAX_VALUE_BYTES} bytes`, { entry: name });
      const next = new Map(this.#entries);
      next.set(name, this.#encrypt(name, plaintext));
      this.#commit(next);
    } finally {
      plaintext.fill(0);
    }
  }

  /** Remove an entry; false when there was none. Atomic like set(). */
  delete(name: string): boolean {
    if (!this.#entries.has(name)) return false;
    const next = new Map(this.#entries);
    next.delete(name);
    this.#commit(next);
    return true;
  }

  /** Re-read the file (another process may have changed it) with the same key: swap whole or throw. */
  reload(): void {
    const file = this.#writableFile();
    const entries = readVaultFile(file);
    const probe = new Vault(file, this.#key, entries);
    probe.#verifyAll();
    this.#entries = entries;
  }

  toJSON(): { file: string | undefined; entries: string[] } {
    return { file: this.file, entries: this.names() };
  }

  [inspect.custom](): string {
    return `Vault { file: ${JSON.stringify(this.file ?? null)}, entries: ${JSON.stringify(this.names())} }`;
  }

  #verifyAll(): void {
    const failed: string[] = [];
    for (const [name, entry] of this.#entries) {
      try {
        this.#decrypt(name, entry).fill(0);
      } catch {
        failed.push(name);
      }
    }
    if (failed.length > 0) {
      const which = failed.length === this.#entries.size && failed.length > 1 ? 'every entry' : `entr${failed.length === 1 ? 'y' : 'ies'} ${failed.join(', ')}`;
      throw new PenstockError('PS_VAULT', `vault ${this.file}: ${which} failed authentication (wrong key file, or the vault file was altered)`, { file: this.file, entries: failed });
    }
  }

  #decrypt(name: string, entry: SealedEntry): Buffer {
    if (!this.#key) throw new PenstockError('PS_VAULT', 'vault has no key');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, entry.iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(name, 'utf8'));
      decipher.setAuthTag(entry.tag);
      return Buffer.concat([decipher.update(entry.ciphertext), decipher.final()]);
    } catch {
      throw new PenstockError('PS_VAULT', `vault entry ${name} failed authentication (wrong key file, or the vault file was altered)`, { entry: name });
    }
  }

  #encrypt(name: string, plaintext: Buffer): SealedEntry {
    if (!this.#key) throw new PenstockError('PS_VAULT', 'vault has no key file configured; cannot store secrets');
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(name, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return { iv, tag: cipher.getAuthTag(), ciphertext };
  }

  #writableFile(): string {
    if (this.file === undefined || !this.#key) throw new PenstockError('PS_VAULT', 'vault has no file and key configured');
    return this.file;
  }

  /** Write `entries` to the file (temp + fsync + rename + fsync dir), then adopt them in memory. */
  #commit(entries: Map<string, SealedEntry>): void {
    const file = this.#writableFile();
    const doc = {
      version: FORMAT_VERSION,
      entries: Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, e]) => [name, {
        iv: e.iv.toString('base64'),
        tag: e.tag.toString('base64'),
        ciphertext: e.ciphertext.toString('base64'),
      }])),
    };
    const tmp = `${file}.tmp`;
    try {
      // A temp file left by a crash is stale; 'wx' (O_EXCL) then never follows a planted symlink.
      try {
        unlinkSync(tmp);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      const fd = openSync(tmp, 'wx', 0o600);
      try {
        writeAll(fd, Buffer.from(`${JSON.stringify(doc, null, 2)}\n`));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
      fsyncDirectory(dirname(file));
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // nothing to clean, or not ours to clean (e.g. a directory in the way)
      }
      throw new PenstockError('PS_VAULT', `vault ${file} could not be written; it is unchanged (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { file }, { cause: err });
    }
    this.#entries = entries;
  }
}

function readKeyFile(path: string): KeyObject {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist (create one holding 32 random bytes as 64 hex digits, e.g. `(umask 077; openssl rand -hex 32 > FILE)`, outside the config, mode 0640 root:penstock)' : `cannot be read (${code ?? 'error'})`;
    throw new PenstockError('PS_VAULT', `vault key file ${path} ${why}`, { file: path }, { cause: err });
  }
  let text: string;
  try {
    // fstat the open file: the checked file is the one read, even if the path is swapped meanwhile.
    const st = fstatSync(fd);
    if (!st.isFile()) throw new PenstockError('PS_VAULT', `vault key file ${path} is not a regular file`, { file: path });
    if ((st.mode & UNSAFE_KEY_MODE_BITS) !== 0) {
      throw new PenstockError('PS_VAULT', `vault key file ${path} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: it must not be readable by others or writable by anyone but its owner (use 0600 or 0640)`, { file: path });
    }
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  const hex = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new PenstockError('PS_VAULT', `vault key file ${path} must hold exactly ${KEY_BYTES} bytes as ${KEY_BYTES * 2} hex digits`, { file: path });
  }
  const raw = Buffer.from(hex, 'hex');
  try {
    return createSecretKey(raw);
  } finally {
    raw.fill(0);
  }
}

function readVaultFile(file: string): Map<string, SealedEntry> {
  let text: Buffer;
  try {
    text = readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new PenstockError('PS_VAULT', `vault ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { file }, { cause: err });
  }
  const bad = (why: string): PenstockError => new PenstockError('PS_VAULT', `vault ${file} is malformed: ${why}`, { file });
  if (text.length > MAX_FILE_BYTES) throw bad(`larger than ${MAX_FILE_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text.toString('utf8'));
  } catch {
    throw bad('not JSON');
  }
  if (!isPlainObject(doc)) throw bad('not a JSON object');
  for (const k of Object.keys(doc)) if (k !== 'version' && k !== 'entries') throw bad(`unknown field ${JSON.stringify(k)}`);
  if (doc.version !== FORMAT_VERSION) throw bad(`version must be ${FORMAT_VERSION}`);
  if (!isPlainObject(doc.entries)) throw bad('entries must be an object');
  const entries = new Map<string, SealedEntry>();
  for (const [name, raw] of Object.entries(doc.entries)) {
    if (!NAME_PATTERN.test(name)) throw bad(`invalid entry name ${JSON.stringify(name.slice(0, 140))}`);
    if (!isPlainObject(raw) || Object.keys(raw).sort().join(',') !== 'ciphertext,iv,tag') throw bad(`entry ${name} must have exactly iv, tag and ciphertext`);
    const field = (key: 'iv' | 'tag' | 'ciphertext', length?: number): Buffer => {
      const value = raw[key];
      if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) throw bad(`entry ${name}: ${key} is not base64`);
      const bytes = Buffer.from(value, 'base64');
      if (length !== undefined && bytes.length !== length) throw bad(`entry ${name}: ${key} must be ${length} bytes`);
      return bytes;
    };
    entries.set(name, { iv: field('iv', IV_BYTES), tag: field('tag', TAG_BYTES), ciphertext: field('ciphertext') });
  }
  return entries;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function writeAll(fd: number, data: Buffer): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
}

function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
