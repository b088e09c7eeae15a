// An issuer's public keys, usable with no uplink: pinned in a file (`jwks_file`), and/or fetched from the
// issuer (`jwks_uri`) when the link allows — every `jwks_refresh_seconds`, and at once (at most once a
// minute) when a token names a key id we do not hold (a rotation) — with the last good fetch cached in
// the state directory, so a gateway restarted while the link is down still knows the keys it last saw.
// A failed fetch changes nothing: the keys held stay in use. Keys are only ever added by an issuer's
// own endpoint over TLS, or by the file plant staff put in place.
import https from 'node:https';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { writeFileAtomic } from '../../common/files.ts';

/** A JWKS document larger than this is refused (a real one is a few KiB). */
const MAX_JWKS_BYTES = 1024 * 1024;
const FETCH_TIMEOUT_MS = 10_000;
/** Least time between two fetches asked for by unknown key ids: a token flood must not become a fetch flood. */
const UNKNOWN_KID_COOLDOWN_MS = 60_000;

export interface IssuerKeySource {
  issuer: string;
  jwks_file?: string | undefined;
  jwks_uri?: string | undefined;
  jwks_ca_file?: string | undefined;
  jwks_refresh_seconds: number;
}

function parseJwks(text: string, where: string): JSONWebKeySet {
  const jwks = JSON.parse(text) as JSONWebKeySet;
  if (!Array.isArray(jwks?.keys)) throw new Error(`${where}: no "keys" array`);
  createLocalJWKSet(jwks); // throws on a malformed set, before it replaces anything
  return jwks;
}

export class IssuerKeys {
  readonly #src: IssuerKeySource;
  readonly #log: Logger;
  readonly #cacheFile: string | undefined;
  #pinned: JSONWebKeySet = { keys: [] };
  #fetched: JSONWebKeySet = { keys: [] };
  #current: JWTVerifyGetKey;
  #timer: NodeJS.Timeout | undefined;
  /** When a fetch was last asked for by an unknown key id (the periodic ones do not count). */
  #lastUnknownKeyFetchMs = -Infinity;
  #inflight: Promise<boolean> | undefined;
  /** When the keys were last fetched from the issuer (ISO 8601), for status. */
  fetchedAt: string | undefined;

  /** Reads the pinned file and the cache now; a missing or malformed pinned file throws, naming it. */
  constructor(src: IssuerKeySource, stateDir: string, log: Logger) {
    this.#src = src;
    this.#log = log;
    if (src.jwks_file !== undefined) {
      try {
        this.#pinned = parseJwks(readFileSync(src.jwks_file, 'utf8'), src.jwks_file);
      } catch (err) {
        throw new Error(`JWKS file ${src.jwks_file} of issuer ${src.issuer}: ${(err as Error).message}`);
      }
    }
    if (src.jwks_uri !== undefined) {
      const dir = join(stateDir, 'jwks');
      this.#cacheFile = join(dir, `${createHash('sha256').update(src.issuer).digest('hex').slice(0, 32)}.json`);
      if (existsSync(this.#cacheFile)) {
        try {
          this.#fetched = parseJwks(readFileSync(this.#cacheFile, 'utf8'), this.#cacheFile);
        } catch (err) {
          log.warn({ err, issuer: src.issuer }, 'cached JWKS unreadable; waiting for the next fetch');
        }
      }
    }
    this.#current = this.#build();
  }

  /** The key resolver for jwtVerify: always the latest set. */
  readonly getKey: JWTVerifyGetKey = (header, token) => this.#current(header, token);

  /** Fetch now, then every jwks_refresh_seconds (no-op without jwks_uri). Does not wait for the first fetch. */
  start(): void {
    if (this.#src.jwks_uri === undefined) return;
    void this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#src.jwks_refresh_seconds * 1000);
    this.#timer.unref();
  }

  close(): void {
    clearInterval(this.#timer);
  }

  /** A token named a key we do not hold: fetch, unless we fetched within the last minute. True if new keys came. */
  async onUnknownKey(): Promise<boolean> {
    if (this.#src.jwks_uri === undefined || Date.now() - this.#lastUnknownKeyFetchMs < UNKNOWN_KID_COOLDOWN_MS) return false;
    this.#lastUnknownKeyFetchMs = Date.now();
    return this.refresh();
  }

  /** Fetch the issuer's JWKS; on success swap it in and cache it. Never throws. */
  refresh(): Promise<boolean> {
    this.#inflight ??= this.#fetch().finally(() => (this.#inflight = undefined));
    return this.#inflight;
  }

  async #fetch(): Promise<boolean> {
    const uri = this.#src.jwks_uri!;
    try {
      const text = await httpsGet(uri, this.#src.jwks_ca_file ? readFileSync(this.#src.jwks_ca_file) : undefined);
      const jwks = parseJwks(text, uri);
      const changed = JSON.stringify(jwks) !== JSON.stringify(this.#fetched);
      this.#fetched = jwks;
      this.#current = this.#build();
      this.fetchedAt = new Date().toISOString();
      if (changed && this.#cacheFile) {
        mkdirSync(join(this.#cacheFile, '..'), { recursive: true, mode: 0o750 });
        writeFileAtomic(this.#cacheFile, JSON.stringify(jwks), 0o640);
      }
      return changed;
    } catch (err) {
      this.#log.warn({ issuer: this.#src.issuer, jwks_uri: uri, error: (err as Error).message }, 'JWKS fetch failed; keeping the keys held');
      return false;
    }
  }

  #build(): JWTVerifyGetKey {
    return createLocalJWKSet({ keys: [...this.#pinned.keys, ...this.#fetched.keys] });
  }
}

function httpsGet(uri: string, ca: Buffer | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(uri, { timeout: FETCH_TIMEOUT_MS, ...(ca ? { ca } : {}), headers: { accept: 'application/json' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`HTTP ${res.statusCode}`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_JWKS_BYTES) return req.destroy(new Error(`JWKS larger than ${MAX_JWKS_BYTES} bytes`));
        chunks.push(c);
      });
      res.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.once('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${FETCH_TIMEOUT_MS} ms`)));
    req.once('error', reject);
  });
}
