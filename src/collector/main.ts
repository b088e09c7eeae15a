// penstock-collector: the verifying collector, a service of its own.
//   penstock-collector run --config FILE        verify the fleet's evidence into PostgreSQL
//   penstock-collector status --config FILE     per appliance: state, verified size, lag, stop reason
//   penstock-collector resume APPLIANCE --config FILE   clear a stop after investigation
//   penstock-collector schema                   print the PostgreSQL schema
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createLogger } from '../common/log.ts';
import { isPenstockError } from '../common/errors.ts';
import { formatIssue } from '../config/yaml-issues.ts';
import type { ConfigIssue } from '../config/types.ts';
import { createNotifier } from '../daemon/notify.ts';
import { startCollector } from './collector.ts';
import { loadCollectorConfig, type CollectorConfig } from './config.ts';
import { pgSettings } from './connect.ts';
import { SCHEMA_SQL, migrate } from './schema.ts';
import { CollectorStore } from './store.ts';
import { applianceLag } from './status.ts';

const USAGE = `usage: penstock-collector run --config FILE [--log-level LEVEL]
       penstock-collector status --config FILE [--json]
       penstock-collector resume APPLIANCE --config FILE
       penstock-collector schema`;

function load(file: string | undefined): CollectorConfig | undefined {
  if (!file) {
    console.error(USAGE);
    return undefined;
  }
  try {
    return loadCollectorConfig(file);
  } catch (err) {
    if (isPenstockError(err)) {
      const issues = (err.details?.issues ?? []) as ConfigIssue[];
      for (const i of issues) console.error(formatIssue(i));
      console.error(`penstock-collector: ${issues.filter((i) => i.severity === 'error').length || 1} configuration error(s)`);
      return undefined;
    }
    throw err;
  }
}

async function run(config: CollectorConfig, level: string | undefined): Promise<number> {
  const log = createLogger(level).child({ program: 'penstock-collector' });
  const notifier = createNotifier(log);
  let collector;
  try {
    collector = await startCollector(config, log);
  } catch (err) {
    log.fatal({ err }, 'start-up failed');
    console.error(`penstock-collector: start-up failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  await notifier.ready(`verifying ${config.appliances.length} appliance(s)`);
  const stopWatchdog = notifier.startWatchdog();
  await new Promise<void>((resolve) => {
    const onStop = (signal: string) => {
      log.info({ signal }, 'signal received');
      stopWatchdog();
      void notifier.stopping().then(() => collector.close()).finally(resolve);
    };
    process.once('SIGTERM', onStop);
    process.once('SIGINT', onStop);
  });
  return 0;
}

async function withStore<T>(config: CollectorConfig, fn: (store: CollectorStore, client: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ ...pgSettings(config), max: 2 });
  try {
    const c = await pool.connect();
    try {
      await migrate(c);
    } finally {
      c.release();
    }
    return await fn(new CollectorStore(pool), pool);
  } finally {
    await pool.end();
  }
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ allowPositionals: true, options: { config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values: args, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  switch (command) {
    case 'schema':
      process.stdout.write(`${SCHEMA_SQL.trim()}\n`);
      return 0;
    case 'run': {
      const config = load(args.config);
      return config ? run(config, args['log-level']) : 2;
    }
    case 'status': {
      const config = load(args.config);
      if (!config) return 2;
      const lags = await applianceLag(config).catch((err: Error) => ({ error: err.message }) as const);
      const rows = await withStore(config, (store) => store.rows());
      const out = config.appliances.map((a) => {
        const r = rows.find((x) => x.appliance === a.id);
        const lag = 'error' in lags ? undefined : lags.get(a.id);
        return {
          appliance: a.id,
          state: r?.state ?? 'new',
          verified_seq: r ? r.position.next - 1 : -1,
          checkpoint_size: r?.checkpointSize ?? 0,
          stream_seq: r?.position.streamSeq ?? 0,
          lag_messages: lag ?? null,
          stop_reason: r?.stopReason ?? null,
          stop_detail: r?.stopDetail ?? null,
          updated_at: r?.updatedAt.toISOString() ?? null,
        };
      });
      if (args.json) console.log(JSON.stringify({ appliances: out, ...('error' in lags ? { nats_error: lags.error } : {}) }, null, 2));
      else {
        if ('error' in lags) console.log(`(stream lag unknown: ${lags.error})`);
        for (const o of out) {
          console.log(`${o.appliance}  ${o.state}  verified seq ${o.verified_seq}  checkpoint ${o.checkpoint_size}  lag ${o.lag_messages ?? '?'} message(s)${o.stop_reason ? `  stopped: ${o.stop_reason} ${(o.stop_detail as { message?: string } | null)?.message ?? ''}` : ''}`);
        }
      }
      return 0;
    }
    case 'resume': {
      const appliance = rest[0];
      const config = load(args.config);
      if (!config || !appliance) return 2;
      if (!config.appliances.some((a) => a.id === appliance)) {
        console.error(`penstock-collector: ${appliance} is not an appliance of this config`);
        return 2;
      }
      const by = `${process.env.SUDO_USER ?? process.env.USER ?? `uid ${process.getuid?.()}`} via penstock-collector resume`;
      const resumed = await withStore(config, (store) => store.resume(appliance, config.collector.id, by));
      console.log(resumed ? `${appliance}: resumed; verification retries from the stored position` : `${appliance}: was not stopped`);
      return resumed ? 0 : 1;
    }
    default:
      console.error(USAGE);
      return 2;
  }
}

process.exitCode = await main();
