// penstockctl grants suggest: the smallest grants that would have allowed what a principal was seen
// doing, printed as YAML for a person to review (grants/suggest.ts builds it; each protocol's module
// generalises its own actions). Reads the journal page by page through `journal.observed`, which
// filters on the daemon so only this principal's events cross the socket.
import type { Command } from 'commander';
import { protocols } from '../adapters/registry.ts';
import { Observations, suggestGrantsYaml, type ObservedEvent, type ObservedTarget } from '../grants/suggest.ts';
import { UsageError, type Io } from './io.ts';

export interface SuggestCliHelpers {
  io: Io;
  call(command: string, params?: unknown): Promise<unknown>;
  json(): boolean;
  now(): number;
}

interface ObservedPage {
  events: ObservedEvent[];
  next: number;
  size: number;
  first_retained: number;
  targets: Record<string, ObservedTarget>;
}

const DURATION = /^(\d+)([smhd])$/;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--since`: an ISO time with a zone, or a duration back from now (`90m`, `8h`, `7d`). */
export function sinceArg(value: string, nowMs: number): string {
  const d = DURATION.exec(value);
  if (d) return new Date(nowMs - Number(d[1]) * UNIT_MS[d[2]!]!).toISOString();
  if (!/(Z|[+-]\d{2}:\d{2})$/.test(value) || Number.isNaN(Date.parse(value))) {
    throw new UsageError(`--since must be an ISO 8601 time with a zone or a duration such as 8h or 7d (got ${value})`);
  }
  return new Date(Date.parse(value)).toISOString();
}

export function addSuggestCommand(grants: Command, h: SuggestCliHelpers): void {
  grants.command('suggest')
    .description('print the smallest grants (YAML) that would have allowed what the journal shows a principal did; denied actions are listed, not granted')
    .requiredOption('--principal <id>', 'whose actions')
    .option('--session <id>', 'only this session')
    .option('--since <time>', 'only from this time on: ISO 8601 with zone, or a duration back from now (8h, 7d)')
    .option('--target <id>', 'only this target')
    .option('--ticket <ref>', 'ticket the suggested grants carry (a placeholder to replace by default)', 'CHANGE-ME')
    .action(async (o: { principal: string; session?: string; since?: string; target?: string; ticket: string }) => {
      const since = o.since !== undefined ? sinceArg(o.since, h.now()) : undefined;
      const obs = new Observations(protocols);
      const targets: Record<string, ObservedTarget> = {};
      let from = 0;
      let firstRetained = 0;
      for (;;) {
        const page = (await h.call('journal.observed', {
          principal: o.principal,
          ...(o.session !== undefined ? { session: o.session } : {}),
          ...(o.target !== undefined ? { target: o.target } : {}),
          ...(since !== undefined ? { since } : {}),
          from,
        })) as ObservedPage;
        firstRetained = page.first_retained;
        for (const e of page.events) obs.add(e);
        Object.assign(targets, page.targets);
        if (page.next >= page.size || page.next <= from) break;
        from = page.next;
      }
      const filters = [`principal ${o.principal}`, ...(o.session ? [`session ${o.session}`] : []), ...(o.target ? [`target ${o.target}`] : []), ...(since ? [`since ${since}`] : [])];
      const yaml = suggestGrantsYaml(obs, {
        principal: o.principal,
        ticket: o.ticket,
        targets,
        protocols,
        header: [
          `From ${obs.events} journal event(s)${obs.firstSeq !== undefined ? ` (seq ${obs.firstSeq}..${obs.lastSeq})` : ''} of ${filters.join(', ')}.`,
          ...(firstRetained > 0 ? [`Events before seq ${firstRetained} were pruned and are not counted.`] : []),
        ],
      });
      h.io.out(h.json() ? JSON.stringify({ yaml, events: obs.events }, null, 2) : yaml);
    });
}
