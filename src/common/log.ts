// The daemon's log (pino, JSON lines to stderr; journald keeps them). Logs may be lossy; the journal
// never is. Secrets are Secret instances and print as <secret>; the redact list is a second fence for
// fields that must never appear even if someone passes a raw string.
import { pino, type Logger } from 'pino';

export function createLogger(level: string = process.env.PENSTOCK_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { service: 'penstock' },
    redact: { paths: ['*.password', '*.secret', '*.privateKey', '*.key', 'password', 'secret'], censor: '<secret>' },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, pino.destination({ fd: 2, sync: false }));
}
