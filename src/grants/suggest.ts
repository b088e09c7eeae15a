// Grants from observation (`penstockctl grants suggest`): fold what the journal shows a principal did
// into observations per target and protocol, ask each protocol's module for the smallest rules that
// cover the allowed ones (ProtocolModule.suggestRules), and print one grant per target as YAML a config
// accepts, with comments saying what each rule covers and what was denied (listed, never granted).
// Knows no protocol: the journal's action block is keyed by the protocol's name, and the module table
// says which keys those are.
import { Document, isMap, isSeq, type YAMLMap } from 'yaml';
import type { FirmwareProfile, TargetConfig } from '../config/types.ts';
import type { ObservedAction, ProtocolTable } from '../adapters/types.ts';
import type { Verb } from '../policy/types.ts';

/** An action event or a read aggregate, as `journal.observed` returns it. */
export interface ObservedEvent {
  seq: number;
  time: string;
  event: string;
  session?: string;
  target?: string;
  /** The journal's action: `{ verb, target, <protocol>: block }`. */
  action?: Record<string, unknown>;
  decision?: { effect?: string; reason?: string };
  /** reads.aggregate: the session's reads (object: the action object without values, with its `kind`). */
  reads?: { target: string; verb: string; object: Record<string, unknown>; count: number; first: string; last: string }[];
}

/** A target as the daemon describes it for a suggestion: its protocol and firmware profile. */
export interface ObservedTarget {
  protocol: string;
  zone?: string;
  profile?: FirmwareProfile;
}

interface Folded extends ObservedAction {
  reason?: string;
}

/** Observations of one principal, folded: identical actions are one entry with a count and times. */
export class Observations {
  readonly #protocols: ProtocolTable;
  // target → protocol → key → observation
  readonly #byTarget = new Map<string, Map<string, Map<string, Folded>>>();
  events = 0;
  firstSeq: number | undefined;
  lastSeq: number | undefined;

  constructor(protocols: ProtocolTable) {
    this.#protocols = protocols;
  }

  add(e: ObservedEvent): void {
    this.events++;
    this.firstSeq ??= e.seq;
    this.lastSeq = e.seq;
    if (e.event === 'reads.aggregate') {
      for (const r of e.reads ?? []) {
        const kind = r.object.kind;
        const m = typeof kind === 'string' ? this.#protocols.get(kind) : undefined;
        if (!m) continue;
        // Rendered as the journal renders a single action, so every observation has one shape.
        this.#fold(r.target, kind as string, r.verb as Verb, m.renderObject(r.object as never), 'allowed', undefined, r.count, r.first, r.last);
      }
      return;
    }
    const a = e.action;
    const target = typeof a?.target === 'string' ? a.target : e.target;
    if (!a || target === undefined || typeof a.verb !== 'string') return;
    const kind = Object.keys(a).find((k) => this.#protocols.has(k));
    const block = kind !== undefined ? a[kind] : undefined;
    if (kind === undefined || !block || typeof block !== 'object') return;
    const effect = e.event === 'action.allowed' ? 'allowed' : 'denied';
    this.#fold(target, kind, a.verb as Verb, block as Record<string, unknown>, effect, e.decision?.reason, 1, e.time, e.time);
  }

  #fold(target: string, protocol: string, verb: Verb, object: Record<string, unknown>, effect: 'allowed' | 'denied', reason: string | undefined, count: number, first: string, last: string): void {
    let byProtocol = this.#byTarget.get(target);
    if (!byProtocol) this.#byTarget.set(target, (byProtocol = new Map()));
    let byKey = byProtocol.get(protocol);
    if (!byKey) byProtocol.set(protocol, (byKey = new Map()));
    const key = JSON.stringify([effect, reason ?? null, verb, object]);
    const seen = byKey.get(key);
    if (seen) {
      seen.count += count;
      if (first < seen.first) seen.first = first;
      if (last > seen.last) seen.last = last;
    } else {
      byKey.set(key, { verb, object, effect, ...(reason !== undefined ? { reason } : {}), count, first, last });
    }
  }

  targets(): string[] {
    return [...this.#byTarget.keys()].sort();
  }

  protocolsOf(target: string): Map<string, Folded[]> {
    return new Map([...(this.#byTarget.get(target) ?? new Map<string, Map<string, Folded>>())].map(([p, byKey]) => [p, [...byKey.values()]]));
  }
}

export interface SuggestOptions {
  principal: string;
  /** The placeholder ticket every suggested grant carries (a person replaces it). */
  ticket: string;
  targets: Readonly<Record<string, ObservedTarget>>;
  protocols: ProtocolTable;
  /** Lines for the header comment (what was read: journal range, filters). */
  header: readonly string[];
}

/** A grant id from principal and target, within the id syntax (64 characters). */
export function suggestedGrantId(principal: string, target: string): string {
  const idText = `suggested-${principal}-${target}`.replace(/[^A-Za-z0-9._:-]/g, '-');
  return idText.length <= 64 ? idText : `${idText.slice(0, 55)}-${fnv(idText)}`;
}

function fnv(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

function deniedLine(d: Folded): string {
  const { values: _v, value: _w, ...object } = d.object;
  const parts = Object.entries(object).filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return `  ${d.verb} ${parts.join(' ')} (${d.reason ?? 'denied'}) x${d.count}, last ${d.last}`;
}

/** The suggestion as YAML text: `grants:` with one grant per target that saw an allowed action. */
export function suggestGrantsYaml(obs: Observations, opts: SuggestOptions): string {
  const grants: Record<string, unknown>[] = [];
  const ruleComments: string[][] = [];
  const grantComments: string[] = [];
  const skipped: string[] = [];
  for (const target of obs.targets()) {
    const info = opts.targets[target];
    const rules: Record<string, unknown>[] = [];
    const comments: string[] = [];
    const denied: Folded[] = [];
    const notes: string[] = [];
    for (const [protocol, seen] of obs.protocolsOf(target)) {
      denied.push(...seen.filter((s) => s.effect === 'denied'));
      const allowed = seen.filter((s) => s.effect === 'allowed');
      if (allowed.length === 0) continue;
      const m = opts.protocols.get(protocol);
      if (!m?.suggestRules) {
        notes.push(`${allowed.length} allowed ${protocol} action(s): this protocol suggests no rules; write them by hand`);
        continue;
      }
      const described: TargetConfig | undefined = info ? { id: target, protocol: info.protocol, zone: info.zone ?? '', ...(info.profile ? { profile: info.profile.name } : {}) } : undefined;
      const context = { target: described, profile: info?.profile };
      for (const s of m.suggestRules(allowed, context)) {
        rules.push({ [protocol]: s.rule });
        comments.push(s.comment);
      }
    }
    const header = [`target ${target}${info ? '' : ' (no longer in the configuration)'}`, ...notes];
    if (denied.length > 0) {
      header.push(`denied, not granted (${denied.reduce((n, d) => n + d.count, 0)}):`);
      header.push(...denied.sort((a, b) => (a.last < b.last ? -1 : 1)).slice(0, 50).map(deniedLine));
      if (denied.length > 50) header.push(`  … and ${denied.length - 50} more`);
    }
    if (rules.length === 0) {
      skipped.push(...header);
      continue;
    }
    grants.push({
      id: suggestedGrantId(opts.principal, target),
      principal: opts.principal,
      targets: [target],
      task: { ticket: opts.ticket, purpose: `suggested from observation of ${opts.principal} on ${target}` },
      rules,
    });
    ruleComments.push(comments);
    grantComments.push(header.join('\n'));
  }

  const doc = new Document({ grants });
  doc.commentBefore = [
    ' Suggested by `penstockctl grants suggest`: the smallest grants that would have allowed what was observed.',
    ...opts.header.map((l) => ` ${l}`),
    ' Review every rule, set a real ticket and a window, then add the grants to the config (`penstockctl config check`).',
    ...(grants.length === 0 ? [' No allowed action was observed: nothing to suggest.'] : []),
    ...skipped.flatMap((l) => l.split('\n')).map((l) => ` ${l}`),
  ].join('\n');
  const list = doc.get('grants', true);
  if (isSeq(list)) {
    list.items.forEach((g, i) => {
      if (!isMap(g)) return;
      g.commentBefore = grantComments[i]!.split('\n').map((l) => ` ${l}`).join('\n');
      const rulesNode = g.get('rules', true);
      if (!isSeq(rulesNode)) return;
      rulesNode.items.forEach((r, j) => {
        const rule = r as YAMLMap;
        rule.commentBefore = ` ${ruleComments[i]![j]}`;
        // Each rule body on one line, as people write them in a config.
        for (const item of rule.items) if (isMap(item.value)) item.value.flow = true;
      });
      const targetsNode = g.get('targets', true);
      if (isSeq(targetsNode)) targetsNode.flow = true;
      const task = g.get('task', true);
      if (isMap(task)) task.flow = true;
    });
  }
  return doc.toString({ lineWidth: 0 });
}
