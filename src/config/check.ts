// Checks that need more than one part of the config at once: references between principals, grants,
// targets and firmware profiles, duplicate ids, delegation cycles, and rules that cannot mean what the
// author wanted. They read the plain document defensively (a part the schema already rejected is
// skipped here), so one run reports schema and reference problems together.
import type { FirmwareProfile } from './types.ts';
import { matchPoints } from './profiles.ts';
import { issueAt, type Path, type YamlSource } from './yaml-issues.ts';
import type { ConfigIssue } from './types.ts';
import { sshRuleWarnings } from './ssh-warnings.ts';
import { MODBUS_TABLE_WRITES } from '../policy/modbus.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** An external delegation reference such as `work-order:WO-4411` or `ticket:INC-99`. */
const externalRefRe = /^[a-z][a-z0-9-]*:\S+$/;

/**
 * Stable codes of the rule warnings below: tests and tools match on these, never on the message text.
 * SSH exec rules have their own (W_SSH_EXEC_…, src/config/ssh-warnings.ts).
 */
export const WARNING_CODES = {
  /** A Modbus rule allowing writes to every address 0-65535 (or naming no addresses at all). */
  modbusWriteEverywhere: 'W_MODBUS_WRITE_ALL_ADDRESSES',
  /** An SFTP rule allowing uploads to any top-level path (`/*`, `/**`). */
  sftpUploadAnywhere: 'W_SFTP_UPLOAD_ANYWHERE',
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
      for (const target of grantTargets) {
        // A tunnel rule reaches a target of the tunnel's protocol (the tunnel is decided as the rule's protocol).
        if (target.protocol !== protocol && !(isObj(body) && body.tunnel === target.protocol)) err(at, `a ${protocol} rule cannot apply to target ${String(target.id)} (protocol ${String(target.protocol)})`);
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
      if (protocol === 'ssh') for (const w of sshRuleWarnings(body)) warn([...at, w.field], w.message, w.code);
      if (body.effect !== 'deny') for (const w of widestRuleWarnings(protocol, body)) warn([...at, ...w.path], w.message, w.code);
    });
  });
  return out;
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

// ---------------------------------------------------------------- rules that grant (nearly) everything

interface RuleWarning {
  /** Inside the rule's body. */
  path: Path;
  message: string;
  code: string;
}

/** Warnings for an allowing rule whose reach is the whole of what its protocol can do. */
function widestRuleWarnings(protocol: string, body: Obj): RuleWarning[] {
  if (protocol === 'ssh') return sftpUploadAnywhere(body);
  if (protocol === 'modbus') return modbusWriteEverywhere(body);
  return [];
}

/** An upload path pattern whose first segment is a wildcard can write anywhere from the root down. */
function sftpUploadAnywhere(body: Obj): RuleWarning[] {
  const sftp = isObj(body.sftp) ? body.sftp : undefined;
  if (!sftp || (sftp.direction !== 'upload' && sftp.direction !== 'both')) return [];
  const out: RuleWarning[] = [];
  list(sftp.paths).forEach((p, i) => {
    if (typeof p !== 'string') return;
    const first = p.split('/').find((seg) => seg !== '');
    if (first === undefined || /^\*+$/.test(first)) {
      out.push({ path: ['sftp', 'paths', i], code: WARNING_CODES.sftpUploadAnywhere, message: `allows uploads anywhere: \`${p}\` matches every top-level path; name the directory uploads go to` });
    }
  });
  return out;
}

const MODBUS_ADDRESS_SPACE = 65_536;

/** Writes to every address: `readwrite`/`write` (or write codes) over 0-65535, or with no addresses or points at all. */
function modbusWriteEverywhere(body: Obj): RuleWarning[] {
  const writes = body.access === 'write' || body.access === 'readwrite' || body.preset === 'readwrite' || body.preset === 'programming'
    || list(body.function_codes).some((fc) => typeof fc === 'number' && MODBUS_TABLE_WRITES.has(fc));
  if (!writes || body.points !== undefined) return [];
  if (body.addresses !== undefined) {
    // The schema refuses overlapping ranges, so the covered count is the sum of the ranges' sizes.
    let covered = 0;
    for (const r of list(body.addresses)) {
      const range = addressRange(r);
      if (!range) return []; // malformed: the schema reports it
      covered += range.to - range.from + 1;
    }
    if (covered < MODBUS_ADDRESS_SPACE) return [];
  }
  const what = body.addresses === undefined ? 'no addresses or points' : 'addresses 0-65535';
  return [{ path: body.addresses === undefined ? [] : ['addresses'], code: WARNING_CODES.modbusWriteEverywhere, message: `allows writes to every address (${what}); name the registers and coils that may be written` }];
}

function addressRange(r: unknown): { from: number; to: number } | undefined {
  if (typeof r === 'number' && Number.isInteger(r)) return { from: r, to: r };
  if (typeof r === 'string') {
    const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(r);
    return m ? { from: Number(m[1]), to: Math.min(Number(m[2]), MODBUS_ADDRESS_SPACE - 1) } : undefined;
  }
  if (isObj(r) && typeof r.from === 'number' && typeof r.to === 'number') return { from: r.from, to: Math.min(r.to, MODBUS_ADDRESS_SPACE - 1) };
  return undefined;
}
