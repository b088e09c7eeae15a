// What every penstockctl sub-command shares: where its output goes and how a command-line mistake is
// raised. Sub-command files import this, never penstockctl.ts (which imports them).
import { DryRunUsageError } from '../adapters/types.ts';

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** A command-line mistake: printed with usage, exit status 3. One class with a protocol's dry-run parser's. */
export const UsageError = DryRunUsageError;
export type UsageError = DryRunUsageError;
