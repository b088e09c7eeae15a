// A stored journal event as an OCSF record (schema 1.8.0, the newest release), for SIEMs. Every shared
// event code has a row in SHARED_RULES and every protocol event a rule in its module's `ocsf.events`
// (test/siem/ocsf.test.ts checks both); a name registered later without one still goes out, as a Base
// Event, never dropped. Penstock's own fields ride along whole in `unmapped.penstock`, so nothing the
// journal holds is lost in the mapping. Protocol knowledge stays in each module's `ocsf` (adapters/types.ts).
//
// Agents: OCSF 1.8.0 has no AI-agent event class (one was proposed but is not in the schema's main
// branch; 1.8.0 added the `ai_operation` profile to the Application, IAM and Network classes instead). So
// an agent door's events, and the actions an agent takes through it, are API Activity (6003) with
// `metadata.profiles: ['ai_operation']` and the agent as the actor.
import { protocols } from '../adapters/registry.ts';
import type { OcsfClassDef, OcsfRule, ProtocolModule } from '../adapters/types.ts';
import type { StoredEvent } from '../journal/event.ts';

export const OCSF_VERSION = '1.8.0';

function ocsfClass(uid: number, name: string, category_uid: number, category_name: string, activities: Record<number, string>): OcsfClassDef {
  return { uid, name, category_uid, category_name, activities };
}

/** The classes shared events use (a protocol adds its own through `ocsf.classes`). */
export const CLASSES = {
  base: ocsfClass(0, 'Base Event', 0, 'Uncategorized', { 99: 'Other' }),
  detectionFinding: ocsfClass(2004, 'Detection Finding', 2, 'Findings', { 1: 'Create', 2: 'Update', 3: 'Close' }),
  authentication: ocsfClass(3002, 'Authentication', 3, 'Identity & Access Management', { 1: 'Logon', 2: 'Logoff' }),
  authorizeSession: ocsfClass(3003, 'Authorize Session', 3, 'Identity & Access Management', { 1: 'Assign Privileges' }),
  entityManagement: ocsfClass(3004, 'Entity Management', 3, 'Identity & Access Management', { 1: 'Create', 4: 'Delete', 11: 'Deactivate', 12: 'Suspend', 13: 'Resume' }),
  applicationLifecycle: ocsfClass(6002, 'Application Lifecycle', 6, 'Application Activity', { 3: 'Start', 4: 'Stop', 8: 'Update' }),
  apiActivity: ocsfClass(6003, 'API Activity', 6, 'Application Activity', { 1: 'Create', 2: 'Read', 3: 'Update', 4: 'Delete', 99: 'Other' }),
} as const;
const { base, detectionFinding, authentication, authorizeSession, entityManagement, applicationLifecycle, apiActivity } = CLASSES;

const rule = (cls: OcsfClassDef | 'door', activity: number | 'door', status: OcsfRule['status'], fields: string, operation?: string): OcsfRule => ({
  class: cls === 'door' ? 'door' : cls.uid,
  activity,
  status,
  fields,
  ...(operation ? { operation } : {}),
});

const ACTION_FIELDS = 'api.operation = verb, api.service.name = protocol, resources = [target, protocol object], actor.authorizations = decision (grant, rule)';
const ALERT_FIELDS = 'finding_info (uid, title = event, types = [kind]), is_alert, actor.user, resources = target';

/**
 * The shared events' rules, keyed by code (journal/codes.ts: stable, never reused). Rules for a
 * protocol's own events are in its module's `ocsf.events`.
 */
export const SHARED_RULES: Readonly<Record<string, OcsfRule>> = {
  PS1001I: rule(applicationLifecycle, 3, 'success', 'app.name = Penstock, app.version'),
  PS1002I: rule(applicationLifecycle, 4, 'success', 'app.name = Penstock'),
  PS1003I: rule(applicationLifecycle, 8, 'success', 'message = config file'),
  PS1004I: rule(applicationLifecycle, 8, 'success', 'message = config file'),
  PS1005W: rule(applicationLifecycle, 8, 'failure', 'issues in unmapped'),
  PS1006I: rule(base, 99, 'success', 'unmapped.penstock.detail (size, root)'),
  PS2001I: rule(authorizeSession, 1, 'success', 'user, session.uid, privileges = session attributes, grants and door, src_endpoint = remote, dst_endpoint = target'),
  PS2002I: rule(authentication, 2, 'success', 'user, session.uid, status_detail = reason'),
  PS2003W: rule(authentication, 2, 'success', 'user, session.uid, status_detail = reason (who killed it in unmapped)'),
  PS2004W: rule(authentication, 1, 'failure', 'user (when named), src_endpoint = remote, status_detail = reason, auth_protocol = door'),
  PS2005W: rule(authentication, 1, 'failure', 'src_endpoint = remote, status_detail = rate_limited'),
  PS3001I: rule('door', 'door', 'by_decision', ACTION_FIELDS),
  PS3002W: rule('door', 'door', 'by_decision', ACTION_FIELDS),
  PS3003I: rule('door', 'door', 'by_outcome', `${ACTION_FIELDS}; outcome in unmapped`),
  PS3004I: rule('door', 'door', 'success', 'counts per object in unmapped'),
  PS3005W: rule('door', 'door', 'failure', 'status_detail = reason, src_endpoint = remote'),
  PS4001I: rule(entityManagement, 1, 'success', 'entity = grant (uid, type Grant), comment = ticket'),
  PS4002W: rule(entityManagement, 4, 'success', 'entity = grant, comment = reason'),
  PS4003I: rule(entityManagement, 11, 'success', 'entity = grant'),
  PS4004I: rule(authorizeSession, 1, 'pending', 'user, session.uid, privileges = [the action asked for]'),
  PS4005I: rule(authorizeSession, 1, 'success', 'user, session.uid, privileges = [the action approved]'),
  PS4006W: rule(authorizeSession, 1, 'failure', 'user, session.uid, status_detail = refused'),
  PS4007W: rule(authorizeSession, 1, 'failure', 'user, session.uid, status_detail = timed_out'),
  PS5001E: rule(detectionFinding, 1, 'none', ALERT_FIELDS),
  PS5002I: rule(detectionFinding, 3, 'none', ALERT_FIELDS),
  PS5003W: rule(detectionFinding, 1, 'none', ALERT_FIELDS),
  PS5004W: rule(detectionFinding, 1, 'none', ALERT_FIELDS),
  PS5005W: rule(detectionFinding, 1, 'none', `${ALERT_FIELDS}, src_endpoint`),
  PS5006W: rule(detectionFinding, 1, 'none', ALERT_FIELDS),
  PS5007W: rule(detectionFinding, 1, 'none', ALERT_FIELDS),
  PS5008W: rule(detectionFinding, 1, 'none', ALERT_FIELDS),
  PS5009W: rule(detectionFinding, 1, 'none', ALERT_FIELDS),
  PS5010W: rule(detectionFinding, 1, 'none', ALERT_FIELDS),
  PS5011W: rule(detectionFinding, 1, 'none', ALERT_FIELDS),
  PS5012W: rule(detectionFinding, 1, 'none', ALERT_FIELDS),
  PS5013I: rule(entityManagement, 12, 'by_outcome', 'entity = the session or grant contained'),
  PS5014I: rule(entityManagement, 13, 'success', 'entity = the session or grant released'),
  PS6001I: rule(apiActivity, 99, 'by_outcome', 'api.operation = admin command, api.service.name = admin, actor.user = operator'),
  PS6002W: rule(apiActivity, 99, 'failure', 'api.operation = admin command, status_detail = error code'),
  PS6003I: rule(apiActivity, 3, 'success', 'api.operation = acknowledge, api.service.name = sync', 'acknowledge'),
  PS6004I: rule(apiActivity, 3, 'success', 'api.operation = cosign, api.service.name = sync', 'cosign'),
};

const FALLBACK: OcsfRule = rule(base, 99, 'none', 'unmapped.penstock');

/** The rule for an event: the shared table by code, else its protocol module's, else none. */
export function ruleFor(name: string, code: string): OcsfRule | undefined {
  return SHARED_RULES[code] ?? moduleOf(name)?.ocsf?.events?.[name];
}

function moduleOf(name: string): ProtocolModule | undefined {
  return protocols.get(name.split('.')[0]!);
}

/** Every class there is: the shared ones and each protocol's. */
function classByUid(uid: number): OcsfClassDef {
  for (const c of Object.values(CLASSES)) if (c.uid === uid) return c;
  for (const m of protocols.values()) for (const c of m.ocsf?.classes ?? []) if (c.uid === uid) return c;
  return base;
}

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

/** Which OCSF class and activity an event goes to, and whether an agent acted. */
export function classify(e: StoredEvent): { cls: OcsfClassDef; activity: number; agent: boolean; rule: OcsfRule } {
  const r = ruleFor(e.event, e.code) ?? FALLBACK;
  const agent = byAgent(e);
  const door = protocolOf(e);
  const doorActions = agent ? undefined : door ? protocols.get(door)?.ocsf?.actions : undefined;
  const cls = r.class !== 'door' ? classByUid(r.class) : doorActions ? classByUid(doorActions.class) : apiActivity;
  let activity: number;
  if (typeof r.activity === 'number') activity = r.activity;
  else if (doorActions) activity = doorActions.activity(e.event);
  else activity = apiActivityOf(e);
  return { cls, activity, agent, rule: r };
}

/** The OCSF record for one stored event. Pure: the same event gives the same record. */
export function toOcsf(e: StoredEvent, opts: OcsfOptions = {}): OcsfRecord {
  const { cls, activity, agent, rule: r } = classify(e);
  const detail = e.detail ?? {};
  const status = statusOf(e, r);
  const severity = severityOf(e);
  const detailText = statusDetail(e);
  const user = e.principal !== undefined ? { uid: e.principal, name: e.principal, type_id: agent ? 99 : 1, type: agent ? 'AI Agent' : 'User' } : undefined;
  const protocol = protocolOf(e);
  const remote = typeof detail.remote === 'string' ? endpointOf(detail.remote) : undefined;
  const activityName = cls.activities[activity] ?? 'Other';
  const out: Record<string, unknown> = {
    class_uid: cls.uid,
    class_name: cls.name,
    category_uid: cls.category_uid,
    category_name: cls.category_name,
    activity_id: activity,
    activity_name: activityName,
    type_uid: cls.uid * 100 + activity,
    type_name: `${cls.name}: ${activityName}`,
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
    ...(detailText ? { status_detail: detailText } : {}),
    unmapped: { penstock: penstockFields(e) },
  };
  const actor: Record<string, unknown> = {};
  if (user) actor.user = user;
  if (e.session) actor.session = { uid: e.session };
  if (e.decision) actor.authorizations = [{ decision: String(e.decision.effect), policy: { name: e.decision.grant, uid: e.decision.rule, desc: e.decision.explanation } }];
  if (Object.keys(actor).length > 0) out.actor = actor;
  if (remote) out.src_endpoint = remote;
  if (e.target) out.dst_endpoint = { name: e.target, uid: e.target, ...(e.listener ? { svc_name: e.listener } : {}) };

  switch (cls.uid) {
    case authentication.uid:
      out.user = user ?? { name: typeof detail.principal === 'string' ? detail.principal : 'unknown' };
      if (e.session) out.session = { uid: e.session, ...(remote ? { is_remote: true } : {}) };
      if (protocol) out.auth_protocol = protocol;
      if (remote) out.is_remote = true;
      break;
    case authorizeSession.uid:
      out.user = user ?? { name: 'unknown' };
      if (e.session) out.session = { uid: e.session, ...(remote ? { is_remote: true } : {}) };
      out.privileges = privilegesOf(e);
      break;
    case entityManagement.uid:
      out.entity = entityOf(e);
      if (typeof detail.reason === 'string' || typeof detail.ticket === 'string') out.comment = String(detail.reason ?? detail.ticket);
      break;
    case detectionFinding.uid:
      out.finding_info = { uid: `${e.appliance}:${e.seq}`, title: e.event, types: [e.event.replace(/^alert\./, '')] };
      out.is_alert = true;
      if (e.target) out.resources = [{ uid: e.target, name: e.target, type: 'target' }];
      break;
    case applicationLifecycle.uid:
      out.app = { name: 'Penstock', ...(typeof detail.version === 'string' ? { version: detail.version } : {}) };
      break;
    case base.uid:
      break;
    case apiActivity.uid:
      // The operation, the service (door) and what was acted on.
      out.api = apiOf(e, r, protocol);
      if (e.action || e.target || typeof detail.tool === 'string') out.resources = resourcesOf(e, protocol);
      // API Activity requires an actor and a src_endpoint: the gateway stands in when none is journaled.
      if (!out.actor) out.actor = { app_name: 'Penstock' };
      if (!out.src_endpoint) out.src_endpoint = { name: e.listener ?? e.appliance };
      break;
    default:
      // A door's own class (a Network Activity class): endpoints, actor and status say it; the action is in unmapped.
      break;
  }
  return out as OcsfRecord;
}

/** An agent acted: an agent door's own event, a session it opened, or an action carrying a tool call's correlation id. */
function byAgent(e: StoredEvent): boolean {
  if (moduleOf(e.event)?.ocsf?.agent) return true;
  if (typeof e.detail?.protocol === 'string' && protocols.get(e.detail.protocol)?.ocsf?.agent) return true;
  return e.event.startsWith('action.') && typeof e.detail?.correlation === 'string';
}

/** The protocol an event concerns: the action's block, the door named in the detail, or the event's own module. */
function protocolOf(e: StoredEvent): string | undefined {
  if (e.action) {
    const k = Object.keys(e.action).find((x) => x !== 'verb' && x !== 'target');
    if (k) return k;
  }
  if (typeof e.detail?.protocol === 'string') return e.detail.protocol;
  return moduleOf(e.event)?.name;
}

function verbOf(e: StoredEvent): string | undefined {
  return typeof e.action?.verb === 'string' ? e.action.verb : undefined;
}

const READ_VERBS = new Set(['read', 'browse', 'subscribe', 'history', 'download', 'diagnostic']);
const UPDATE_VERBS = new Set(['write', 'program', 'upload']);
/** API Activity's activity for an action: Read, Update or Other by the verb. */
function apiActivityOf(e: StoredEvent): number {
  if (e.code === 'PS3004I') return 2; // reads.aggregate
  const verb = verbOf(e);
  if (verb && READ_VERBS.has(verb)) return 2;
  if (verb && UPDATE_VERBS.has(verb)) return 3;
  return 99;
}

const SUCCESS = { id: 1, name: 'Success' };
const FAILURE = { id: 2, name: 'Failure' };
const PENDING = { id: 99, name: 'Pending approval' };
function statusOf(e: StoredEvent, r: OcsfRule): { id: number; name: string } | undefined {
  switch (r.status) {
    case 'success':
      return SUCCESS;
    case 'failure':
      return FAILURE;
    case 'pending':
      return PENDING;
    case 'by_decision':
      return e.decision?.effect === 'allow' ? SUCCESS : e.decision?.effect === 'approve' ? PENDING : FAILURE;
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
function endpointOf(remote: string): Record<string, unknown> {
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
  if (e.action) out.push(actionText(e.action));
  else if (d.action && typeof d.action === 'object') out.push(actionText(d.action as Record<string, unknown>));
  if (typeof d.protocol === 'string') out.push(`door:${d.protocol}`);
  return out;
}

function actionText(a: Record<string, unknown>): string {
  return `${String(a.verb ?? 'act')} ${String(a.target ?? '')}`.trim();
}

function entityOf(e: StoredEvent): Record<string, unknown> {
  const d = e.detail ?? {};
  if (typeof d.grant === 'string') return { uid: d.grant, name: d.grant, type: 'Grant' };
  if (typeof d.session === 'string') return { uid: d.session, name: d.session, type: 'Session' };
  if (e.session) return { uid: e.session, name: e.session, type: 'Session' };
  return { name: e.principal ?? e.event, type: 'Other' };
}

function apiOf(e: StoredEvent, r: OcsfRule, protocol: string | undefined): Record<string, unknown> {
  const d = e.detail ?? {};
  const admin = e.event.startsWith('admin.');
  const sync = e.event.startsWith('sync.');
  const operation = admin ? String(d.command ?? 'unknown') : (r.operation ?? verbOf(e) ?? e.event);
  const service = admin ? 'admin' : sync ? 'sync' : (protocol ?? 'penstock');
  return { operation, service: { name: service }, ...(typeof d.correlation === 'string' ? { request: { uid: d.correlation } } : {}) };
}

function resourcesOf(e: StoredEvent, protocol: string | undefined): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  if (e.target) out.push({ uid: e.target, name: e.target, type: 'target' });
  const block = protocol && e.action ? e.action[protocol] : undefined;
  if (block && typeof block === 'object') out.push({ type: `${protocol} object`, data: block });
  if (typeof e.detail?.tool === 'string') out.push({ name: e.detail.tool, type: 'tool' });
  return out;
}

function messageOf(e: StoredEvent): string {
  const who = e.principal ? ` ${e.principal}` : '';
  const what = e.action ? ` ${actionText(e.action)}` : e.target ? ` on ${e.target}` : '';
  return `${e.event}${who}${what}`;
}

/** Everything the journal holds of the event, under Penstock's own names (nothing is lost in mapping). */
function penstockFields(e: StoredEvent): Record<string, unknown> {
  const { time: _time, mono: _mono, ...rest } = e;
  return rest;
}

/** The mapping table as markdown (docs/siem.md holds it; test/siem/ocsf.test.ts keeps the two the same). */
export function mappingTableMarkdown(codes: Readonly<Record<string, string>>): string {
  const doors = [...protocols.values()].filter((m) => m.ocsf?.actions);
  const agents = [...protocols.values()].filter((m) => m.ocsf?.agent).map((m) => m.title);
  const byDoor = [
    ...doors.map((m) => `${classByUid(m.ocsf!.actions!.class).name} (${m.ocsf!.actions!.class}) on the ${m.title} door`),
    'API Activity (6003) on the other doors',
    ...(agents.length ? [`API Activity (6003) + ai_operation for agents (${agents.join(', ')})`] : []),
  ].join('; ');
  const rows = Object.entries(codes).map(([name, code]) => {
    const r = ruleFor(name, code) ?? FALLBACK;
    const cls = r.class === 'door' ? byDoor : `${classByUid(r.class).name} (${r.class})`;
    const activity = typeof r.activity === 'number'
      ? `${classByUid(r.class as number).activities[r.activity]} (${r.activity})`
      : [...doors.map((m) => {
        const a = m.ocsf!.actions!;
        return `${m.title}: ${classByUid(a.class).activities[a.activity(name)]} (${a.activity(name)})`;
      }), 'API Activity by verb: Read (2), Update (3), Other (99)'].join('; ');
    const status = { success: 'Success', failure: 'Failure', by_decision: 'allow → Success, deny → Failure, approve → Other', by_outcome: 'Success, Failure when the outcome failed', pending: 'Other (pending)', none: '—' }[r.status];
    return `| \`${code}\` | \`${name}\` | ${cls} | ${activity} | ${status} | ${r.fields} |`;
  });
  return ['| code | event | OCSF class (class_uid) | activity (activity_id) | status_id | key fields |', '| --- | --- | --- | --- | --- | --- |', ...rows].join('\n');
}
