// The grant to issue, from a YAML/JSON file (or stdin) in the same shape as a grant in the config file,
// or from quick flags. The daemon validates it in full; this only builds the object.
import { readFileSync } from 'node:fs';
import { UsageError } from './io.ts';
import { protocols } from '../adapters/registry.ts';
import { parse as parseYaml } from 'yaml';

/** A file's text (or stdin's, for -), read with the operator's rights. */
function readInput(file: string): string {
  try {
    return file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file === '-' ? 'stdin' : file}: ${(err as Error).message}`);
  }
}

export function readGrantFile(file: string): unknown {
  const text = readInput(file);
  let doc: unknown;
  try {
    // YAML 1.2 is a superset of JSON: one parser for both.
    doc = parseYaml(text);
  } catch (err) {
    throw new UsageError(`${file === '-' ? 'stdin' : file} is not valid YAML or JSON: ${(err as Error).message}`);
  }
  // Accept a file holding `grant: {…}` too, as written for the admin request.
  if (doc && typeof doc === 'object' && !Array.isArray(doc) && Object.keys(doc).length === 1 && 'grant' in doc) return (doc as { grant: unknown }).grant;
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`${file === '-' ? 'stdin' : file} must hold one grant (a mapping with id, principal, targets, task, rules, …)`);
  return doc;
}

/** Read a grant envelope (a compact JWS, one line of text) from a file or stdin, with the operator's rights. */
export function readEnvelopeFile(file: string): string {
  const envelope = readInput(file).trim();
  if (envelope === '') throw new UsageError(`${file === '-' ? 'stdin' : file} is empty; it must hold one envelope (a compact JWS)`);
  return envelope;
}

export interface QuickGrantOptions {
  id?: string;
  principal?: string;
  target?: string[];
  ticket?: string;
  purpose?: string;
  from?: string;
  until?: string;
  rule?: string[];
}

/**
 * `PROTOCOL:KEY=VALUE[,KEY=VALUE…]`: the protocol's module says which keys are lists and numbers, and
 * gives examples (`penstockctl grants issue --help`). A rule that needs more (nested maps, several lists
 * with commas) belongs in a grant file.
 */
export function parseQuickRule(text: string): Record<string, unknown> {
  const m = /^([a-z][a-z0-9_-]*):(.*)$/s.exec(text.trim());
  const names = [...protocols.values()].filter((p) => p.quickRule).map((p) => p.name);
  const protocol = m ? protocols.get(m[1]!) : undefined;
  if (!m || !protocol?.quickRule) throw new UsageError(`--rule ${text}: expected PROTOCOL:KEY=VALUE[,KEY=VALUE…] with PROTOCOL one of ${names.join(', ')}`);
  const keys = protocol.quickRule;
  const body: Record<string, unknown> = {};
  for (const pair of m[2]!.split(',')) {
    if (!pair.trim()) continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--rule ${text}: "${pair}" is not KEY=VALUE`);
    const key = pair.slice(0, eq).trim();
    const raw = pair.slice(eq + 1).trim();
    const isNumber = keys.numberKeys.includes(key);
    if (keys.listKeys.includes(key)) {
      const items = raw.split(/\s+/).filter(Boolean);
      body[key] = items.map((item) => (isNumber || (keys.numericItemKeys?.includes(key) && /^\d+$/.test(item)) ? Number(item) : item));
    } else if (isNumber) {
      body[key] = Number(raw);
    } else if (raw === 'true' || raw === 'false') {
      body[key] = raw === 'true';
    } else {
      body[key] = raw;
    }
  }
  return { [protocol.name]: body };
}

/** Examples of --rule for the help text, from every protocol that reads quick rules. */
export function quickRuleExamples(): string[] {
  return [...protocols.values()].flatMap((p) => p.quickRule?.examples ?? []);
}

export function quickGrant(o: QuickGrantOptions, nowMs: number): Record<string, unknown> {
  const missing = (['id', 'principal', 'ticket', 'until'] as const).filter((k) => !o[k]);
  if (!o.target?.length) missing.push('target' as never);
  if (!o.rule?.length) missing.push('rule' as never);
  if (missing.length) throw new UsageError(`grants issue needs --file, or all of --id --principal --target --ticket --until --rule (missing: ${missing.map((k) => `--${k}`).join(' ')})`);
  return {
    id: o.id,
    principal: o.principal,
    targets: o.target,
    task: { ticket: o.ticket, ...(o.purpose ? { purpose: o.purpose } : {}) },
    window: { from: o.from ?? new Date(nowMs).toISOString(), to: o.until },
    rules: o.rule!.map(parseQuickRule),
  };
}
