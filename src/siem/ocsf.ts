// A stored journal event as an OCSF record (schema 1.8.0, the newest release), for SIEMs. Every event
// name in journal/codes.ts has a row in OCSF_MAPPING (test/siem/ocsf.test.ts checks it); a name added
// later without a row still goes out, as a Base Event, never dropped. Penstock's own fields ride along
// whole in `unmapped.penstock`, so nothing the journal holds is lost in the mapping.
//
// Agents: OCSF 1.8.0 has no AI-agent event class (an `ai_agent_activity` class was proposed but is not in
// the schema's main branch; 1.8.0 added the `ai_operation` profile to every Application, IAM and Network
// event instead). So the MCP door's events and actions taken through it are API Activity (6003) with
// `metadata.profiles: ['ai_operation']`; the agent's identity is the actor.
import type { StoredEvent } from '../journal/event.ts';

export const OCSF_VERSION = '1.8.0';

interface OcsfClass {
  uid: number;
  name: string;
  category_uid: number;
  category_name: string;
}

const CATEGORIES = { 0: 'Uncategorized', 2: 'Findings', 3: 'Identity & Access Management', 4: 'Network Activity', 6: 'Application Activity' } as const;
function ocsfClass(uid: number, name: string, category: keyof typeof CATEGORIES): OcsfClass {
  return { uid, name, category_uid: category, category_name: CATEGORIES[category] };
}

export const CLASSES = {
  base: ocsfClass(0, 'Base Event', 0),
  detection_finding: ocsfClass(2004, 'Detection Finding', 2),
  authentication: ocsfClass(3002, 'Authentication', 3),
  authorize_session: ocsfClass(3003, 'Authorize Session', 3),
  entity_management: ocsfClass(3004, 'Entity Management', 3),
  ssh_activity: ocsfClass(4007, 'SSH Activity', 4),
  application_lifecycle: ocsfClass(6002, 'Application Lifecycle', 6),
  api_activity: ocsfClass(6003, 'API Activity', 6),
} as const;
type ClassKey = keyof typeof CLASSES;

/** Activity ids and captions per class, as the schema defines them (only those used here). */
const ACTIVITIES: Record<ClassKey, Record<number, string>> = {
  base: { 99: 'Other' },
  detection_finding: { 1: 'Create', 2: 'Update', 3: 'Close' },
  authentication: { 1: 'Logon', 2: 'Logoff' },
  authorize_session: { 1: 'Assign Privileges' },
  entity_management: { 1: 'Create', 4: 'Delete', 11: 'Deactivate', 12: 'Suspend', 13: 'Resume' },
  ssh_activity: { 1: 'Open', 2: 'Close', 4: 'Fail', 5: 'Refuse' },
  application_lifecycle: { 3: 'Start', 4: 'Stop', 8: 'Update' },
  api_activity: { 1: 'Create', 2: 'Read', 3: 'Update', 4: 'Delete', 99: 'Other' },
};

/** How one event name maps: its class (or, for actions, by the door that carried it), activity, status. */
interface Rule {
  /** `by_door`: SSH Activity for the SSH door, API Activity (ai_operation) for agents, API Activity otherwise. */
  class: ClassKey | 'by_door';
  /** A fixed activity id, or one worked out from the event (the verb, for actions). */
  activity: number | 'by_verb' | 'by_door';
  /** Success/Failure from the decision, or fixed. */
  status: 'success' | 'failure' | 'by_decision' | 'by_outcome' | 'pending' | 'none';
  /** What the docs table says about the fields this row fills besides the common ones. */
  fields: string;
}

const ACTION_FIELDS = 'api.operation = verb, api.service.name = protocol, resources = [target, object], actor.authorizations = decision (grant, rule)';
const rule = (c: Rule['class'], activity: Rule['activity'], status: Rule['status'], fields: string): Rule => ({ class: c, activity, status, fields });

/** The mapping table: every journal event name (journal/codes.ts), shared and per protocol. */
export const OCSF_MAPPING: Readonly<Record<string, Rule>> = {
  'daemon.started': rule('application_lifecycle', 3, 'success', 'app.name = Penstock, app.version'),
  'daemon.stopping': rule('application_lifecycle', 4, 'success', 'app.name = Penstock'),
  'config.loaded': rule('application_lifecycle', 8, 'success', 'message = config file'),
  'config.reloaded': rule('application_lifecycle', 8, 'success', 'message = config file'),
  'config.reload_refused': rule('application_lifecycle', 8, 'failure', 'status_detail = first issue'),
  'checkpoint.signed': rule('base', 99, 'success', 'unmapped.penstock.detail (size, root)'),
  'session.opened': rule('authorize_session', 1, 'success', 'user, session.uid, privileges = session attributes and grants named, src_endpoint = remote, dst_endpoint = target'),
  'session.closed': rule('authentication', 2, 'success', 'user, session.uid, status_detail = reason'),
  'session.killed': rule('authentication', 2, 'success', 'user, session.uid, status_detail = reason (who killed it in unmapped)'),
  'auth.failed': rule('authentication', 1, 'failure', 'user (when named), src_endpoint = remote, status_detail = reason, auth_protocol = door'),
  'auth.rate_limited': rule('authentication', 1, 'failure', 'src_endpoint = remote, status_detail = rate_limited'),
  'action.allowed': rule('by_door', 'by_door', 'by_decision', ACTION_FIELDS),
  'action.denied': rule('by_door', 'by_door', 'by_decision', ACTION_FIELDS),
  'action.outcome': rule('by_door', 'by_door', 'by_outcome', `${ACTION_FIELDS}; outcome in unmapped`),
  'reads.aggregate': rule('by_door', 'by_door', 'success', 'counts per object in unmapped'),
  'action.malformed': rule('by_door', 'by_door', 'failure', 'status_detail = reason, src_endpoint = remote'),
  'grant.issued': rule('entity_management', 1, 'success', 'entity = grant (uid, type Grant), comment = ticket'),
  'grant.revoked': rule('entity_management', 4, 'success', 'entity = grant, comment = reason'),
  'grant.expired': rule('entity_management', 11, 'success', 'entity = grant'),
  'approval.requested': rule('authorize_session', 1, 'pending', 'user, session.uid, privileges = [the action asked for]'),
  'approval.granted': rule('authorize_session', 1, 'success', 'user, session.uid, privileges = [the action approved]'),
  'approval.refused': rule('authorize_session', 1, 'failure', 'user, session.uid, status_detail = refused'),
  'approval.timed_out': rule('authorize_session', 1, 'failure', 'user, session.uid, status_detail = timed_out'),
  'alert.journal_unavailable': rule('detection_finding', 1, 'none', 'finding_info (uid, title = event, types = [kind]), is_alert'),
  'alert.journal_recovered': rule('detection_finding', 3, 'none', 'finding_info'),
  'alert.denial_burst': rule('detection_finding', 1, 'none', 'finding_info, actor.user'),
  'alert.out_of_window': rule('detection_finding', 1, 'none', 'finding_info, actor.user, resources = target'),
  'alert.delegation_mismatch': rule('detection_finding', 1, 'none', 'finding_info, actor.user, src_endpoint'),
  'alert.new_target': rule('detection_finding', 1, 'none', 'finding_info, actor.user, resources = target'),
  'alert.privilege_expansion': rule('detection_finding', 1, 'none', 'finding_info, actor.user'),
  'alert.unexpected_delegation': rule('detection_finding', 1, 'none', 'finding_info, actor.user'),
  'alert.probing': rule('detection_finding', 1, 'none', 'finding_info, actor.user, resources = target'),
  'alert.cross_zone': rule('detection_finding', 1, 'none', 'finding_info, actor.user'),
  'alert.programming': rule('detection_finding', 1, 'none', 'finding_info, actor.user, resources = target'),
  'alert.unusual_write': rule('detection_finding', 1, 'none', 'finding_info, actor.user, resources = target'),
  'containment.applied': rule('entity_management', 12, 'by_outcome', 'entity = session or grant contained'),
  'containment.lifted': rule('entity_management', 13, 'success', 'entity = session or grant released'),
  'admin.request': rule('api_activity', 99, 'by_outcome', 'api.operation = admin command, api.service.name = admin, actor.user = operator'),
  'admin.refused': rule('api_activity', 99, 'failure', 'api.operation = admin command, status_detail = error code'),
  'sync.acknowledged': rule('api_activity', 3, 'success', 'api.operation = acknowledge, api.service.name = sync, actor.user = client'),
  'sync.cosigned': rule('api_activity', 3, 'success', 'api.operation = cosign, api.service.name = sync, actor.user = witness'),
  'ssh.channel_refused': rule('ssh_activity', 5, 'failure', 'status_detail = reason, src_endpoint = remote, dst_endpoint = target'),
  'mcp.tool_called': rule('api_activity', 99, 'success', 'api.operation = tools/call, api.service.name = mcp, resources = [tool], profile ai_operation'),
  'mcp.tool_refused': rule('api_activity', 99, 'failure', 'api.operation = tools/call, status_detail = reason, profile ai_operation'),
  'mcp.session_refused': rule('api_activity', 99, 'failure', 'api.operation = initialize, status_detail = reason, profile ai_operation'),
  'mcp.envelope_refused': rule('api_activity', 99, 'failure', 'api.operation = present_envelope, status_detail = reason, profile ai_operation'),
};

const FALLBACK: Rule = rule('base', 99, 'none', 'unmapped.penstock');

export interface OcsfOptions {
  /** metadata.product.vendor_name. */
  vendorName?: string;
  /** metadata.product.version (Penstock's). */
  productVersion?: string;
  /** metadata.log_name: where the event came from (`journal` on a gateway, `collector` centrally). */
  logName?: string;
}

export type OcsfRecord = Record<string, unknown> & {
  class_uid: number;
  category_uid: number;
  activity_id: number;
  type_uid: number;
  severity_id: number;
  time: number;
  metadata: Record<string, unknown> & { uid: string; event_code: string };
};

/** Which OCSF class and activity an event goes to (the docs table, the exporter's filter, tests). */
export function classify(e: StoredEvent): { cls: OcsfClass; key: ClassKey; activity: number; agent: boolean; rule: Rule } {
  const r = OCSF_MAPPING[e.event] ?? FALLBACK;
  const agent = byAgent(e);
  let key: ClassKey;
  if (r.class !== 'by_door') key = r.class;
  else key = !agent && protocolOf(e) === 'ssh' ? 'ssh_activity' : 'api_activity';
  let activity: number;
  if (typeof r.activity === 'number') activity = r.activity;
  else if (key === 'ssh_activity') activity = sshActivity(e);
  else activity = apiActivity(e);
  return { cls: CLASSES[key], key, activity, agent, rule: r };
}

/** The OCSF record for one stored event. Pure: the same event gives the same record. */
export function toOcsf(e: StoredEvent, opts: OcsfOptions = {}): OcsfRecord {
  const { cls, key, activity, agent, rule: r } = classify(e);
  const detail = e.detail ?? {};
  const status = statusOf(e, r);
  const severity = severityOf(e);
  const user = e.principal !== undefined ? { uid: e.principal, name: e.principal, type_id: agent ? 99 : 1, type: agent ? 'AI Agent' : 'User' } : undefined;
  const protocol = protocolOf(e);
  const remote = typeof detail.remote === 'string' ? endpointOf(detail.remote) : undefined;
  const out: Record<string, unknown> = {
    class_uid: cls.uid,
    class_name: cls.name,
    category_uid: cls.category_uid,
    category_name: cls.category_name,
    activity_id: activity,
    activity_name: ACTIVITIES[key][activity] ?? 'Other',
    type_uid: cls.uid * 100 + activity,
    type_name: `${cls.name}: ${ACTIVITIES[key][activity] ?? 'Other'}`,
    severity_id: severity.id,
    severity: severity.name,
    time: Date.parse(e.time),
    message: messageOf(e),
    metadata: {
      product: { name: 'Penstock', vendor_name: opts.vendorName ?? 'Penstock', ...(opts.productVersion ? { version: opts.productVersion } : {}) },
      version: OCSF_VERSION,
      uid: `${e.appliance}:${e.seq}`,
      event_code: e.code,
      log_name: opts.logName ?? 'journal',
      original_time: e.time,
      sequence: e.seq,
      ...(typeof detail.correlation === 'string' ? { correlation_uid: detail.correlation } : e.session ? { correlation_uid: e.session } : {}),
      ...(agent ? { profiles: ['ai_operation'] } : {}),
    },
    ...(status ? { status_id: status.id, status: status.name } : {}),
    ...(statusDetail(e) ? { status_detail: statusDetail(e) } : {}),
    unmapped: { penstock: penstockFields(e) },
  };
  const actor: Record<string, unknown> = {};
  if (user) actor.user = user;
  if (e.session) actor.session = { uid: e.session };
  if (e.decision) actor.authorizations = [{ decision: String(e.decision.effect), policy: { name: e.decision.grant, uid: e.decision.rule, desc: e.decision.explanation } }];
  if (Object.keys(actor).length > 0) out.actor = actor;
  if (remote) out.src_endpoint = remote;
  if (e.target) out.dst_endpoint = { name: e.target, uid: e.target, ...(e.listener ? { svc_name: e.listener } : {}) };
  if (e.session && (key === 'authentication' || key === 'authorize_session')) out.session = { uid: e.session, ...(remote ? { is_remote: true } : {}) };

  switch (key) {
    case 'authentication':
      out.user = user ?? { name: typeof detail.principal === 'string' ? detail.principal : 'unknown' };
      if (protocol) out.auth_protocol = protocol;
      if (remote) out.is_remote = true;
      break;
    case 'authorize_session':
      out.user = user ?? { name: 'unknown' };
      out.privileges = privilegesOf(e);
      break;
    case 'entity_management':
      out.entity = entityOf(e);
      if (typeof detail.reason === 'string' || typeof detail.ticket === 'string') out.comment = String(detail.reason ?? detail.ticket);
      break;
    case 'detection_finding':
      out.finding_info = { uid: `${e.appliance}:${e.seq}`, title: e.event, types: [e.event.replace(/^alert\./, '')] };
      out.is_alert = true;
      if (e.target) out.resources = [{ uid: e.target, name: e.target, type: 'target' }];
      break;
    case 'application_lifecycle':
      out.app = { name: 'Penstock', ...(typeof detail.version === 'string' ? { version: detail.version } : {}) };
      break;
    case 'api_activity':
    case 'ssh_activity':
      if (key === 'api_activity' || e.action) out.api = apiOf(e, protocol);
      if (e.action || e.target) out.resources = resourcesOf(e, protocol);
      // API Activity requires an actor and a src_endpoint: the gateway itself stands in when none is known.
      if (key === 'api_activity' && !out.actor) out.actor = { app_name: 'Penstock' };
      if (key === 'api_activity' && !out.src_endpoint) out.src_endpoint = { name: e.listener ?? e.appliance };
      break;
    default:
      break;
  }
  return out as OcsfRecord;
}

/** Acted through the MCP door: an mcp.* event, a session the door opened, or an action carrying a tool call's correlation id. */
function byAgent(e: StoredEvent): boolean {
  if (e.event.startsWith('mcp.')) return true;
  if (e.detail?.protocol === 'mcp') return true;
  return e.event.startsWith('action.') && typeof e.detail?.correlation === 'string';
}

/** The protocol an event concerns: the action's block, or the door named in the detail. */
function protocolOf(e: StoredEvent): string | undefined {
  if (e.action) {
    const k = Object.keys(e.action).find((x) => x !== 'verb' && x !== 'target');
    if (k) return k;
  }
  if (typeof e.detail?.protocol === 'string') return e.detail.protocol;
  if (e.event.includes('.') && !(e.event.split('.')[0]! in SHARED_PREFIXES)) return e.event.split('.')[0];
  return undefined;
}
const SHARED_PREFIXES = { daemon: 1, config: 1, checkpoint: 1, session: 1, auth: 1, action: 1, reads: 1, grant: 1, approval: 1, alert: 1, containment: 1, admin: 1, sync: 1 };

function verbOf(e: StoredEvent): string | undefined {
  return typeof e.action?.verb === 'string' ? e.action.verb : undefined;
}

const READ_VERBS = new Set(['read', 'browse', 'subscribe', 'history', 'download', 'diagnostic']);
const UPDATE_VERBS = new Set(['write', 'program', 'upload']);
function apiActivity(e: StoredEvent): number {
  if (e.event === 'reads.aggregate') return 2;
  const verb = verbOf(e);
  if (verb && READ_VERBS.has(verb)) return 2;
  if (verb && UPDATE_VERBS.has(verb)) return 3;
  return 99;
}

function sshActivity(e: StoredEvent): number {
  if (e.event === 'action.denied') return 5;
  if (e.event === 'action.malformed') return 4;
  if (e.event === 'action.outcome') return 2;
  return 1;
}

const SUCCESS = { id: 1, name: 'Success' };
const FAILURE = { id: 2, name: 'Failure' };
function statusOf(e: StoredEvent, r: Rule): { id: number; name: string } | undefined {
  switch (r.status) {
    case 'success':
      return SUCCESS;
    case 'failure':
      return FAILURE;
    case 'pending':
      return { id: 99, name: 'Pending approval' };
    case 'by_decision':
      return e.decision?.effect === 'allow' ? SUCCESS : e.decision?.effect === 'approve' ? { id: 99, name: 'Pending approval' } : FAILURE;
    case 'by_outcome': {
      const o = { ...e.detail, ...e.outcome };
      const failed = o.ok === false || o.exception !== undefined || o.error !== undefined || (typeof o.exit_status === 'number' && o.exit_status !== 0) || o.applied === false;
      return failed ? FAILURE : SUCCESS;
    }
    case 'none':
      return undefined;
  }
}

function statusDetail(e: StoredEvent): string | undefined {
  const d = e.detail ?? {};
  if (e.decision && e.decision.effect !== 'allow') return String(e.decision.reason);
  if (typeof d.reason === 'string') return d.reason;
  if (typeof d.error === 'string') return d.error;
  return undefined;
}

/** OCSF severity: info events Informational, warnings Low (alerts Medium), errors High. */
function severityOf(e: StoredEvent): { id: number; name: string } {
  const suffix = e.code.at(-1);
  if (suffix === 'E') return { id: 4, name: 'High' };
  if (suffix === 'W') return e.event.startsWith('alert.') ? { id: 3, name: 'Medium' } : { id: 2, name: 'Low' };
  return { id: 1, name: 'Informational' };
}

/** `a.b.c.d:port` or `[v6]:port` (the journal's `remote`) as an OCSF network endpoint. */
function endpointOf(remote: string): Record<string, unknown> | undefined {
  const m = /^\[?([^\]]*?)\]?:(\d+|\?)$/.exec(remote);
  if (!m) return { name: remote };
  const port = Number(m[2]);
  return { ...(m[1] && m[1] !== '?' ? { ip: m[1] } : {}), ...(Number.isInteger(port) ? { port } : {}) };
}

function privilegesOf(e: StoredEvent): string[] {
  const d = e.detail ?? {};
  const out: string[] = [];
  if (Array.isArray(d.grants)) out.push(...d.grants.map((g) => `grant:${String(g)}`));
  if (typeof d.grant === 'string') out.push(`grant:${d.grant}`);
  if (d.attributes && typeof d.attributes === 'object') for (const [k, v] of Object.entries(d.attributes)) out.push(`${k}:${String(v)}`);
  if (e.action) out.push(actionText(e));
  else if (d.action && typeof d.action === 'object') out.push(actionText({ ...e, action: d.action as Record<string, unknown> }));
  if (typeof d.protocol === 'string') out.push(`door:${d.protocol}`);
  return out;
}

function actionText(e: Pick<StoredEvent, 'action'>): string {
  const a = e.action ?? {};
  return `${String(a.verb ?? 'act')} ${String(a.target ?? '')}`.trim();
}

function entityOf(e: StoredEvent): Record<string, unknown> {
  const d = e.detail ?? {};
  if (typeof d.grant === 'string') return { uid: d.grant, name: d.grant, type: 'Grant' };
  if (typeof d.session === 'string') return { uid: d.session, name: d.session, type: 'Session' };
  if (e.session) return { uid: e.session, name: e.session, type: 'Session' };
  return { name: e.principal ?? e.event, type: 'Other' };
}

function apiOf(e: StoredEvent, protocol: string | undefined): Record<string, unknown> {
  const d = e.detail ?? {};
  let operation = verbOf(e) ?? e.event;
  let service = protocol ?? 'penstock';
  if (e.event.startsWith('admin.')) {
    operation = String(d.command ?? 'unknown');
    service = 'admin';
  } else if (e.event === 'sync.acknowledged') {
    [operation, service] = ['acknowledge', 'sync'];
  } else if (e.event === 'sync.cosigned') {
    [operation, service] = ['cosign', 'sync'];
  } else if (e.event === 'mcp.tool_called' || e.event === 'mcp.tool_refused') {
    [operation, service] = ['tools/call', 'mcp'];
  } else if (e.event === 'mcp.session_refused') {
    [operation, service] = ['initialize', 'mcp'];
  } else if (e.event === 'mcp.envelope_refused') {
    [operation, service] = ['present_envelope', 'mcp'];
  }
  return { operation, service: { name: service }, ...(typeof d.tool === 'string' ? { request: { uid: typeof d.correlation === 'string' ? d.correlation : undefined, data: { tool: d.tool } } } : {}) };
}

function resourcesOf(e: StoredEvent, protocol: string | undefined): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  if (e.target) out.push({ uid: e.target, name: e.target, type: 'target' });
  const block = protocol && e.action ? e.action[protocol] : undefined;
  if (block && typeof block === 'object') out.push({ type: `${protocol} object`, data: block });
  if (typeof e.detail?.tool === 'string') out.push({ name: e.detail.tool, type: 'mcp tool' });
  return out;
}

function messageOf(e: StoredEvent): string {
  const who = e.principal ? ` ${e.principal}` : '';
  const what = e.action ? ` ${actionText(e)}` : e.target ? ` on ${e.target}` : '';
  return `${e.event}${who}${what}`;
}

/** Everything the journal holds of the event, under Penstock's own names (nothing is lost in mapping). */
function penstockFields(e: StoredEvent): Record<string, unknown> {
  const { time: _time, mono: _mono, ...rest } = e;
  return rest;
}

/** The mapping table as markdown (docs/siem.md holds it; test/siem/ocsf.test.ts keeps the two the same). */
export function mappingTableMarkdown(codes: Readonly<Record<string, string>>): string {
  const rows = Object.entries(codes).map(([name, code]) => {
    const r = OCSF_MAPPING[name] ?? FALLBACK;
    const cls = r.class === 'by_door' ? 'SSH Activity (4007) on the SSH door; API Activity (6003) on Modbus, OPC UA and others; API Activity + ai_operation for agents' : `${CLASSES[r.class].name} (${CLASSES[r.class].uid})`;
    const activity = typeof r.activity === 'number' ? `${ACTIVITIES[r.class as ClassKey][r.activity]} (${r.activity})` : 'SSH: Open 1 / Refuse 5 / Close 2 / Fail 4; API: Read 2 / Update 3 / Other 99 by verb';
    const status = { success: 'Success', failure: 'Failure', by_decision: 'allow → Success, deny → Failure, approve → Other', by_outcome: 'Success, Failure when the outcome failed', pending: 'Other (pending)', none: '—' }[r.status];
    return `| \`${code}\` | \`${name}\` | ${cls} | ${activity} | ${status} | ${r.fields} |`;
  });
  return ['| code | event | OCSF class (class_uid) | activity (activity_id) | status_id | key fields |', '| --- | --- | --- | --- | --- | --- |', ...rows].join('\n');
}
