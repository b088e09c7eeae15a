// The grant to issue, from a YAML/JSON file (or stdin) in the same shape as a grant in the config file,
// or from quick flags. The daemon validates it in full; this only builds the object.
import { readFileSync } from 'node:fs';
import { UsageError } from './io.ts';
import { parse as parseYaml } from 'yaml';

export function readGrantFile(file: string): unknown {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file === '-' ? 'stdin' : file}: ${(err as Error).message}`);
  }
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

/** Rule keys whose value is a list; items are separated by spaces (`exec=systemctl status *`). */
const LIST_KEYS = new Set(['units', 'tables', 'addresses', 'points', 'function_codes', 'verbs', 'nodes', 'browse_paths', 'exec']);
const NUMBER_KEYS = new Set(['units', 'function_codes', 'min', 'max']);

/**
 * `PROTOCOL:KEY=VALUE[,KEY=VALUE…]`, e.g. `modbus:preset=readonly`, `modbus:access=write,tables=holding_register,addresses=100-110,max=500`,
 * `ssh:exec=systemctl status *`, `opcua:verbs=read browse,browse_paths=Objects/Boiler`. A rule that needs more
 * (sftp, several lists with commas) belongs in a grant file.
 */
export function parseQuickRule(text: string): Record<string, unknown> {
  const m = /^(modbus|opcua|ssh):(.*)$/s.exec(text.trim());
  if (!m) throw new UsageError(`--rule ${text}: expected PROTOCOL:KEY=VALUE[,KEY=VALUE…] with PROTOCOL modbus, opcua or ssh`);
  const body: Record<string, unknown> = {};
  for (const pair of m[2]!.split(',')) {
    if (!pair.trim()) continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--rule ${text}: "${pair}" is not KEY=VALUE`);
    const key = pair.slice(0, eq).trim();
    const raw = pair.slice(eq + 1).trim();
    if (LIST_KEYS.has(key)) {
      const items = raw.split(/\s+/).filter(Boolean);
      body[key] = items.map((item) => (NUMBER_KEYS.has(key) || (key === 'addresses' && /^\d+$/.test(item)) ? Number(item) : item));
    } else if (NUMBER_KEYS.has(key)) {
      body[key] = Number(raw);
    } else if (raw === 'true' || raw === 'false') {
      body[key] = raw === 'true';
    } else {
      body[key] = raw;
    }
  }
  return { [m[1]!]: body };
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
