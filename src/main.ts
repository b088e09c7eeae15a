// penstock: the daemon. `penstock --config /etc/penstock/penstock.yaml`
import { parseArgs } from 'node:util';
import { createLogger } from './common/log.ts';
import { isPenstockError } from './common/errors.ts';
import { formatIssue } from './config/load.ts';
import type { ConfigIssue } from './config/types.ts';
import { Daemon } from './daemon/daemon.ts';

const USAGE = 'usage: penstock --config FILE [--log-level LEVEL]';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ options: { config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' } } }).values;
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help || !args.config) {
    console.error(USAGE);
    return args.help ? 0 : 2;
  }
  const log = createLogger(args['log-level']);
  const daemon = new Daemon({ configFile: args.config, log });

  try {
    await daemon.start();
  } catch (err) {
    if (isPenstockError(err, 'PS_CONFIG_INVALID')) {
      const issues = (err.details?.issues ?? []) as ConfigIssue[];
      for (const i of issues) console.error(formatIssue(i));
      console.error(`penstock: ${issues.filter((i) => i.severity === 'error').length} configuration error(s); not starting`);
    } else {
      log.fatal({ err }, 'start-up failed');
      console.error(`penstock: start-up failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    await daemon.stop().catch(() => {});
    return 1;
  }

  process.on('SIGHUP', () => {
    void daemon.reload().then((r) => {
      for (const i of r.issues) log[i.severity === 'error' ? 'error' : 'warn'](formatIssue(i));
    });
  });
  await new Promise<void>((resolve) => {
    const onStop = (signal: string) => {
      log.info({ signal }, 'signal received');
      void daemon.stop().finally(resolve);
    };
    process.once('SIGTERM', onStop);
    process.once('SIGINT', onStop);
  });
  return 0;
}

process.exitCode = await main();
