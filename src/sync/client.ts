// HTTPS client for the pull API (see server.ts for the wire format), with the client certificate.
// Every response is checked for shape before use; transport failures become a retryable
// PS_SYNC_UNAVAILABLE, so a puller that loses the appliance mid-pull can simply be run again.
import { Agent, request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { PenstockError } from '../common/errors.ts';
import type { WireCheckpoint, WireEventsPage } from './types.ts';

export interface SyncClientOptions {
  /** Base URL of the appliance, e.g. https://gateway.plant:8443 (paths /v1/... are appended). */
  url: string;
  /** PEM text. */
  cert: string;
  key: string;
  ca: string;
  /** Per-request time-out. */
  timeoutMs?: number;
  /** Largest response body accepted. */
  maxResponseBytes?: number;
}

const checkpointSchema = z.object({ size: z.number().int().min(0), root_hash: z.string(), note: z.string().min(1) });
const eventsSchema = z.object({
  events: z.array(z.object({ seq: z.number().int().min(0), event: z.string() })),
  next: z.number().int().min(0),
  tree_size: z.number().int().min(0),
});
const proofSchema = z.object({ proof: z.array(z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'a base64 SHA-256 hash')) });
const ackSchema = z.object({ acknowledged: z.number().int() });
const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string(), seq: z.number().int().min(0).optional() }) });

const TLS_ERROR = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH)/;

export class SyncClient {
  readonly #base: URL;
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;

  constructor(opts: SyncClientOptions) {
    let base: URL;
    try {
      base = new URL(opts.url);
    } catch (err) {
      throw new PenstockError('PS_CONFIG_INVALID', `not a URL: ${opts.url}`, { url: opts.url }, { cause: err });
    }
    if (base.protocol !== 'https:') throw new PenstockError('PS_CONFIG_INVALID', 'the pull URL must be https://', { url: opts.url });
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.#base = base;
    this.#agent = new Agent({ keepAlive: true, maxSockets: 1, cert: opts.cert, key: opts.key, ca: opts.ca, minVersion: 'TLSv1.2' });
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#maxBytes = opts.maxResponseBytes ?? 64 * 1024 * 1024;
  }

  close(): void {
    this.#agent.destroy();
  }

  async checkpoint(): Promise<WireCheckpoint> {
    return this.#call(checkpointSchema, 'GET', 'v1/checkpoint');
  }

  async events(from: number, limit: number): Promise<WireEventsPage> {
    return this.#call(eventsSchema, 'GET', `v1/events?from=${from}&limit=${limit}`);
  }

  async consistencyProof(from: number, to: number): Promise<Uint8Array[]> {
    const r = await this.#call(proofSchema, 'GET', `v1/proof/consistency?from=${from}&to=${to}`);
    return r.proof.map((h) => new Uint8Array(Buffer.from(h, 'base64')));
  }

  async inclusionProof(seq: number, size: number): Promise<Uint8Array[]> {
    const r = await this.#call(proofSchema, 'GET', `v1/proof/inclusion?seq=${seq}&size=${size}`);
    return r.proof.map((h) => new Uint8Array(Buffer.from(h, 'base64')));
  }

  async ack(seq: number, checkpointSize: number): Promise<number> {
    const r = await this.#call(ackSchema, 'POST', 'v1/ack', { seq, checkpoint_size: checkpointSize });
    return r.acknowledged;
  }

  async cosign(note: string): Promise<void> {
    await this.#call(z.object({ stored: z.literal(true) }), 'POST', 'v1/cosign', { note });
  }

  async #call<T>(schema: z.ZodType<T>, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const url = new URL(path, this.#base);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(url, {
        method,
        agent: this.#agent,
        timeout: this.#timeoutMs,
        headers: payload === undefined ? { accept: 'application/json' } : {
          accept: 'application/json',
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
        },
      }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let total = 0;
        res.on('data', (chunk: Buffer) => {
          total += chunk.length;
          if (total > this.#maxBytes) {
            req.destroy();
            reject(new PenstockError('PS_SYNC_BAD_RESPONSE', `response to ${method} /${path} exceeds ${this.#maxBytes} bytes`, { path, retryable: false }));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => reject(transportError(err, path)));
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => reject(transportError(err, path)));
      req.end(payload);
    });

    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      if (status >= 500) throw new PenstockError('PS_SYNC_UNAVAILABLE', `appliance answered ${status} to /${path}`, { path, status, retryable: true });
      throw new PenstockError('PS_SYNC_BAD_RESPONSE', `response to /${path} is not JSON (status ${status})`, { path, status, retryable: false });
    }
    if (status !== 200) {
      const e = errorSchema.safeParse(json);
      const wireCode = e.success ? e.data.error.code : 'unknown';
      // The appliance's journal lacks an event it should hold: evidence removed, not an outage. Retrying
      // cannot help; the missing seq is what an investigator needs.
      if (wireCode === 'event_missing') {
        const seq = e.success ? e.data.error.seq : undefined;
        throw new PenstockError('PS_SYNC_MISMATCH', `the appliance's journal is missing event seq ${seq ?? '?'}`, { path, status, wireCode, ...(seq === undefined ? {} : { seq }), retryable: false });
      }
      const details = { path, status, wireCode, retryable: status >= 500 };
      if (status >= 500) throw new PenstockError('PS_SYNC_UNAVAILABLE', `appliance answered ${status} ${wireCode} to /${path}`, details);
      throw new PenstockError('PS_SYNC_REFUSED', `appliance refused /${path}: ${status} ${wireCode}`, details);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new PenstockError('PS_SYNC_BAD_RESPONSE', `malformed response to /${path}${issue ? ` at ${issue.path.join('.')}: ${issue.message}` : ''}`, { path, retryable: false });
    }
    return parsed.data;
  }
}

function transportError(err: Error, path: string): PenstockError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (TLS_ERROR.test(code)) {
    return new PenstockError('PS_SYNC_TLS', `TLS with the appliance failed: ${code}`, { path, cause: code, retryable: false }, { cause: err });
  }
  // A server refusing our client certificate just closes the connection: to us that is a reset, the
  // same as a server going away. Say so, but keep it retryable (they cannot be told apart here).
  const hint = code === 'ECONNRESET' ? 'if this persists, the appliance may not trust this client certificate' : undefined;
  return new PenstockError('PS_SYNC_UNAVAILABLE', `appliance unreachable or went away (${code || err.message})`, {
    path, cause: code || err.message, retryable: true, ...(hint ? { hint } : {}),
  }, { cause: err });
}
