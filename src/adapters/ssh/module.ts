// The SSH ProtocolModule: everything the rest of Penstock knows of SSH, in one descriptor. It stays
// light (schemas, the pure rule matcher, renderers, texts); the front door with ssh2 and the session
// machinery is loaded by `load()` only when a listener uses it.
import type { FrontDoor, ProtocolModule } from '../types.ts';
import { sshAgentTools } from './agent-tools.ts';
import { sshDryRun } from './dry-run.ts';
import { describeSshAction, renderSshObject } from './evidence.ts';
import { sshMatcher } from './policy.ts';
import { sshRefusals } from './refusals.ts';
import { ruleWarnings } from './rule-warnings.ts';
import { RAW_TUNNEL, sshCredentialSchemas, sshObjectSchema, sshRuleSchema, type SshObject, type SshRuleConfig } from './rules.ts';
import { sshListenerSchema, sshTargetSchema } from './schema.ts';
import { suggestSshRules } from './suggest.ts';

export const sshModule: ProtocolModule<SshObject, SshRuleConfig> = {
  name: 'ssh',
  title: 'SSH',
  listenerSchema: sshListenerSchema,
  targetSchema: sshTargetSchema,
  ruleSchema: sshRuleSchema,
  objectSchema: sshObjectSchema,
  credentialSchemas: sshCredentialSchemas,
  matcher: sshMatcher,
  ruleWarnings,
  // A tunnel rule that carries another protocol applies to that protocol's targets.
  ruleReaches: (rule) => (rule.tunnel !== undefined && rule.tunnel !== RAW_TUNNEL ? [rule.tunnel] : []),
  renderObject: renderSshObject,
  describeAction: describeSshAction,
  refusals: sshRefusals,
  // Registered before the module table existed (journal/codes.ts's snapshot keeps it): a channel kind refused before policy.
  events: { 'ssh.channel_refused': 'PS3006W' },
  // SIEM export: actions are OCSF SSH Activity (4007): a channel opened, refused, closed with its outcome, or malformed.
  ocsf: {
    classes: [{ uid: 4007, name: 'SSH Activity', category_uid: 4, category_name: 'Network Activity', activities: { 1: 'Open', 2: 'Close', 4: 'Fail', 5: 'Refuse' } }],
    actions: { class: 4007, activity: (event) => ({ 'action.denied': 5, 'action.malformed': 4, 'action.outcome': 2 } as Record<string, number>)[event] ?? 1 },
    events: { 'ssh.channel_refused': { class: 4007, activity: 5, status: 'failure', fields: 'status_detail = reason, src_endpoint = remote, dst_endpoint = target' } },
  },
  quickRule: { listKeys: ['exec'], numberKeys: [], examples: ['ssh:exec=systemctl status *'] },
  dryRun: sshDryRun,
  agentTools: sshAgentTools,
  // `penstockctl grants suggest`: rules from what the journal shows a principal did (suggest.ts).
  suggestRules: suggestSshRules,
  load: async (): Promise<FrontDoor> => (await import('./adapter.ts')).sshAdapter,
};
