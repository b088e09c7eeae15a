// Checks that need more than one part of the config at once: references between principals, grants,
// targets and firmware profiles, duplicate ids, delegation cycles, and rules that cannot mean what the
// author wanted. They read the plain document defensively (a part the schema already rejected is
// skipped here), so one run reports schema and reference problems together.
import type { FirmwareProfile } from './types.ts';
import { matchPoints } from './profiles.ts';
import { issueAt, type Path, type YamlSource } from './yaml-issues.ts';
import type { ConfigIssue } from './types.ts';
import { protocols } from '../adapters/registry.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** An external delegation reference such as `work-order:WO-4411` or `ticket:INC-99`. */
const externalRefRe = /^[a-z][a-z0-9-]*:\S+$/;

/**
 * Stable codes of the warnings below: tests and tools match on these, never on the message text. Rules
 * get theirs from their protocol's module (`ruleWarnings`, W_<PROTOCOL>_…).
 */
export const WARNING_CODES = {
  /** A pull API client named by subject (any certificate with it) may acknowledge, and so prune. */
  syncSubjectMayAck: 'W_SYNC_SUBJECT_MAY_ACK',
} as const;

export interface CrossCheckInput {
  source: YamlSource;
  /** Firmware profiles by name; null when the named profile could not be loaded (already reported). */
  profiles: ReadonlyMap<string, FirmwareProfile | null>;
  /** Current time (ms), for expiry warnings. */
  now: number;
}

export function crossCheck({ source, profiles, now }: CrossCheckInput): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const err = (path: Path, message: string) => out.push(issueAt(source, path, message));
  const warn = (path: Path, message: string, code?: string) => out.push({ ...issueAt(source, path, message, 'warning'), ...(code ? { code } : {}) });
  const root = isObj(source.data) ? source.data : {};

  // Duplicate ids: the later one is the error, naming where the first was written.
  const ids = (section: string): Map<string, Obj> => {
    const seen = new Map<string, Obj>();
    const firstIndex = new Map<string, number>();
    list(root[section]).forEach((item, i) => {
      const id = isObj(item) ? str(item.id) : undefined;
      if (id === undefined) return;
      const first = firstIndex.get(id);
      if (first !== undefined) {
        err([section, i, 'id'], `duplicate id ${id} (first defined at ${section}[${first}], line ${issueAt(source, [section, first, 'id'], '').line})`);
      } else {
        seen.set(id, item as Obj);
        firstIndex.set(id, i);
      }
    });
    return seen;
  };
  const principals = ids('principals');
  const targets = ids('targets');
  ids('grants');
  ids('listeners');
  syncClientWarnings(root, warn);
  retentionUpstreams(root, err);

  // Two listeners cannot bind the same host and port (port 0 asks the kernel for a free one).
  const binds = new Map<string, number>();
  list(root.listeners).forEach((l, i) => {
    if (!isObj(l) || typeof l.port !== 'number' || l.port === 0) return;
    const key = `${str(l.host) ?? '127.0.0.1'}:${l.port}`;
    const first = binds.get(key);
    if (first !== undefined) err(['listeners', i, 'port'], `listeners[${first}] already binds ${key}`);
    else binds.set(key, i);
  });

  // Principals: delegation must lead to a known principal or an external reference, never around in a circle.
  list(root.principals).forEach((p, i) => {
    if (!isObj(p)) return;
    const expires = str(p.expires);
    if (expires !== undefined && Date.parse(expires) <= now) warn(['principals', i, 'expires'], `principal ${String(p.id)} expired at ${expires}; it cannot authenticate`);
    const actingFor = str(p.acting_for);
    if (actingFor === undefined) return;
    if (actingFor === p.id) err(['principals', i, 'acting_for'], `principal ${actingFor} cannot act for itself`);
    else if (!principals.has(actingFor) && !externalRefRe.test(actingFor)) {
      err(['principals', i, 'acting_for'], `acting_for ${actingFor} names no principal and is not an external reference KIND:REF (e.g. work-order:WO-4411)`);
    }
  });
  const reported = new Set<string>();
  list(root.principals).forEach((p, i) => {
    if (!isObj(p) || typeof p.id !== 'string') return;
    const chain = [p.id];
    let cur = principals.get(p.id);
    while (cur && typeof cur.acting_for === 'string' && principals.has(cur.acting_for)) {
      if (cur.acting_for === cur.id) return; // reported above
      if (chain.includes(cur.acting_for)) {
        const cycle = chain.slice(chain.indexOf(cur.acting_for));
        const key = [...cycle].sort().join(',');
        if (cycle[0] === p.id && !reported.has(key)) {
          reported.add(key);
          err(['principals', i, 'acting_for'], `delegation cycle: ${[...cycle, cycle[0]].join(' → ')}`);
        }
        return;
      }
      chain.push(cur.acting_for);
      cur = principals.get(cur.acting_for);
    }
  });

  // Targets: a named firmware profile must load and speak the target's protocol.
  list(root.targets).forEach((t, i) => {
    if (!isObj(t)) return;
    const name = str(t.profile);
    if (name === undefined) return;
    const profile = profiles.get(name);
    if (!profile) err(['targets', i, 'profile'], profile === null ? `firmware profile ${name} could not be loaded (see the issues in its file)` : `no firmware profile ${name}`);
    else if (profile.protocol !== t.protocol) err(['targets', i, 'profile'], `firmware profile ${name} is for ${profile.protocol}, but target ${String(t.id)} speaks ${String(t.protocol)}`);
  });

  // Grants: who, on what, and rules that can apply to every target named.
  list(root.grants).forEach((g, gi) => {
    if (!isObj(g)) return;
    const principal = str(g.principal);
    if (principal !== undefined && !principals.has(principal)) err(['grants', gi, 'principal'], `no principal ${principal}`);
    const grantTargets: Obj[] = [];
    list(g.targets).forEach((t, ti) => {
      if (typeof t !== 'string') return;
      const target = targets.get(t);
      if (!target) err(['grants', gi, 'targets', ti], `no target ${t}`);
      else grantTargets.push(target);
    });
    list(g.rules).forEach((r, ri) => {
      if (!isObj(r)) return;
      const keys = Object.keys(r);
      if (keys.length !== 1) return; // the schema reports this
      const protocol = keys[0]!;
      const body = r[protocol];
      const at: Path = ['grants', gi, 'rules', ri, protocol];
      const m = protocols.get(protocol);
      const parsed = m?.ruleSchema.safeParse(body);
      // A rule applies to targets of its protocol, and of those its module says it reaches (a tunnel's).
      const reaches = parsed?.success && m?.ruleReaches ? m.ruleReaches(parsed.data) : [];
      for (const target of grantTargets) {
        if (target.protocol !== protocol && !reaches.includes(String(target.protocol))) err(at, `a ${protocol} rule cannot apply to target ${String(target.id)} (protocol ${String(target.protocol)})`);
      }
      if (!isObj(body)) return;
      list(body.points).forEach((glob, pi) => {
        if (typeof glob !== 'string') return;
        for (const target of grantTargets) {
          if (target.protocol !== protocol) continue; // already reported
          const name = str(target.profile);
          if (name === undefined) {
            err([...at, 'points', pi], `target ${String(target.id)} has no firmware profile, so points cannot name anything on it`);
            continue;
          }
          const profile = profiles.get(name);
          if (!profile) continue; // reported on the target
          if (matchPoints(profile, glob).length === 0) err([...at, 'points', pi], `${glob} matches no point of firmware profile ${name} (target ${String(target.id)})`);
        }
      });
      // Rules that grant more than they seem to, and references only the protocol can check: its module says.
      if (m?.ruleWarnings && parsed?.success) {
        for (const w of m.ruleWarnings(parsed.data, { protocols })) {
          if (w.severity === 'error') out.push({ ...issueAt(source, [...at, ...w.path], w.message), code: w.code });
          else warn([...at, ...w.path], w.message, w.code);
        }
      }
    });
  });
  return out;
}

/**
 * Retention waits for each upstream `acknowledged_by` names: one that is not configured would never
 * acknowledge, and the journal would fill.
 */
function retentionUpstreams(root: Obj, err: (path: Path, message: string) => void): void {
  const journal = isObj(root.journal) ? root.journal : {};
  const retention = isObj(journal.retention) ? journal.retention : {};
  const siemIds = new Set(list(root.siem).map((x) => (isObj(x) ? str(x.id) : undefined)));
  list(retention.acknowledged_by).forEach((name, i) => {
    const at = ['journal', 'retention', 'acknowledged_by', i];
    if (name === 'pull' && root.sync === undefined) err(at, 'pull counts, but there is no sync: section (no pull API to acknowledge): nothing would ever be pruned');
    if (name === 'push' && root.push === undefined) err(at, 'push counts, but there is no push: section: nothing would ever be pruned');
    if (typeof name === 'string' && name.startsWith('siem:') && !siemIds.has(name.slice(5))) err(at, `${name} counts, but siem: has no export with id ${name.slice(5)}: nothing would ever be pruned`);
  });
}

/**
 * A pull client named by subject is any certificate client_ca issues with that subject. With the ack role
 * such a certificate lets retention remove events, so say so: a fingerprint names one certificate.
 */
function syncClientWarnings(root: Obj, warn: (path: Path, message: string, code: string) => void): void {
  const sync = isObj(root.sync) ? root.sync : {};
  list(sync.clients).forEach((c, i) => {
    if (!isObj(c) || typeof c.subject !== 'string' || c.fingerprint !== undefined) return;
    if (!list(c.roles).includes('ack')) return;
    warn(['sync', 'clients', i, 'subject'], 'any certificate sync.tls.client_ca issues with this subject may acknowledge, letting retention remove events; name this client by its certificate fingerprint instead', WARNING_CODES.syncSubjectMayAck);
  });
}
