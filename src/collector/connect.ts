// Connections to NATS and PostgreSQL from the collector config. Secrets are read from the files the
// config names, at connect time, and handed to the client libraries only: never argv, never a log.
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { PenstockError } from '../common/errors.ts';
import { natsCredentialOptions } from '../fleet/nats-credentials.ts';
import { jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { CollectorConfig } from './config.ts';

export async function connectNats(config: CollectorConfig, name: string): Promise<NatsConnection> {
  const n = config.nats;
  return connect({
    servers: n.servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    ...natsCredentialOptions(n, (problem, message) => new PenstockError(problem === 'unreadable' ? 'PS_CONFIG_READ' : 'PS_CONFIG_INVALID', `nats.${message}`)),
  });
}

/** The pg connection settings; the password comes from its file, never from the URL in the config. */
export function pgSettings(config: CollectorConfig): pg.ClientConfig {
  const p = config.postgres;
  if (p.url_file) return { connectionString: readFileSync(p.url_file, 'utf8').trim() };
  const passwordFile = p.password_file;
  return { connectionString: p.url!, ...(passwordFile ? { password: () => readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '') } : {}) };
}

/** Creates the stream, or brings an existing one to the configured settings (stream.create). */
export async function ensureStream(nc: NatsConnection, config: CollectorConfig, log: Logger): Promise<JetStreamManager> {
  const s = config.stream;
  const jsm = await jetstreamManager(nc, { timeout: 10_000 });
  if (!s.create) return jsm;
  const settings = {
    subjects: [`${s.subject_prefix}.>`],
    storage: StorageType.File,
    num_replicas: s.replicas,
    max_age: nanos(Math.round(s.max_age_days * 86_400_000)),
    duplicate_window: nanos(s.duplicate_window_seconds * 1000),
  };
  // A cluster that has just elected its leader may time the first API calls out: retry for a while.
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      try {
        await jsm.streams.info(s.name);
        await jsm.streams.update(s.name, settings);
      } catch (err) {
        if (!/stream not found/i.test((err as Error).message)) throw err;
        await jsm.streams.add({ name: s.name, ...settings });
        log.info({ stream: s.name, replicas: s.replicas }, 'evidence stream created');
      }
      return jsm;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      log.warn({ err: (err as Error).message, stream: s.name }, 'evidence stream not ready; retrying');
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
