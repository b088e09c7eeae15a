// The OPC UA protocol as the rest of Penstock sees it (adapters/types.ts ProtocolModule). This file is
// loaded on every gateway, with or without an OPC UA listener, so it imports nothing that loads the
// OPC UA stack: the front door (adapter.ts and what it imports) comes only through `load()`.
// test/adapters/opcua/module.test.ts checks that importing it leaves node-opcua unloaded.
import { z } from 'zod';
import type { FirmwareProfile } from '../../config/types.ts';
import type { ProfilePointIssue, ProtocolModule } from '../types.ts';
import { opcuaListenerSchema, opcuaTargetSchema } from './schema.ts';
import { opcuaObjectSchema, opcuaRuleSchema, opcuaUserCredentialSchema, type OpcuaObject, type OpcuaRuleConfig } from './rules.ts';
export { opcuaUserCredentialSchema } from './rules.ts';
import { opcuaMatcher } from './policy.ts';
import { describeOpcuaAction, opcuaWrittenValues, renderOpcuaObject } from './render.ts';
import { OPCUA_REFUSALS } from './refusals.ts';
import { opcuaDryRun } from './dry-run.ts';
import { hashOpcuaPassword } from './identity.ts';
import { opcuaAgentTools } from './agent-tools.ts';
import { suggestOpcuaRules } from './suggest.ts';


/** What a firmware-profile point of an OPC UA device may carry besides the common fields (`check` requires `node`). */
export const opcuaProfilePointFields = {
  /** Node id or browse path on the upstream server. */
  node: z.string().min(1).optional(),
} as const;

/** Fields of a point that address registers, not nodes: meaningless on an OPC UA device. */
const REGISTER_FIELDS = ['table', 'address'] as const;

/** Problems with one point of an OPC UA profile. */
export function checkOpcuaProfilePoint(point: Record<string, unknown>, _profile: FirmwareProfile): ProfilePointIssue[] {
  const issues: ProfilePointIssue[] = [];
  if (point.node === undefined) issues.push({ path: [], message: 'an opcua point needs `node`' });
  const register = REGISTER_FIELDS.find((f) => point[f] !== undefined);
  if (register) issues.push({ path: [register], message: '`table` and `address` are not fields of an opcua point (it names a `node`)' });
  // A run-time scale factor is read from a register of the device; an OPC UA server sends engineering values.
  if (point.scale_factor !== undefined) issues.push({ path: ['scale_factor'], message: 'an opcua point has no run-time scale factor (use scale_exponent, or none: OPC UA values are engineering values)' });
  return issues;
}

export const opcuaModule: ProtocolModule<OpcuaObject, OpcuaRuleConfig> = {
  name: 'opcua',
  title: 'OPC UA',
  listenerSchema: opcuaListenerSchema,
  targetSchema: opcuaTargetSchema,
  ruleSchema: opcuaRuleSchema,
  objectSchema: opcuaObjectSchema,
  credentialSchemas: { opcua_user: opcuaUserCredentialSchema },
  profilePoint: { fields: opcuaProfilePointFields, check: checkOpcuaProfilePoint },
  matcher: opcuaMatcher,
  renderObject: renderOpcuaObject,
  writtenValues: opcuaWrittenValues,
  describeAction: describeOpcuaAction,
  refusals: OPCUA_REFUSALS,
  dryRun: opcuaDryRun,
  quickRule: { listKeys: ['verbs', 'nodes', 'browse_paths', 'points'], numberKeys: ['min', 'max'], examples: ['opcua:verbs=read browse,browse_paths=Objects/Boiler'] },
  secretForms: {
    'opcua-password': {
      description: "the scrypt hash of the password, not the password (for a principal's opcua_user.password)",
      encode: hashOpcuaPassword,
    },
  },
  agentTools: opcuaAgentTools,
  servesStreams: false,
  // `penstockctl grants suggest`: rules from what the journal shows a principal did (suggest.ts).
  suggestRules: suggestOpcuaRules,
  load: async () => (await import('./adapter.ts')).opcuaAdapter,
};
