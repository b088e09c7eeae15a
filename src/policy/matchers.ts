// The protocol matchers, keyed by the kind of object an adapter decodes. A new protocol adds its
// matcher here (and its rule schema in config/schema.ts); decide() itself never changes.
import type { ModbusRuleConfig, OpcuaRuleConfig, RuleConfig, SshRuleConfig } from '../config/schema.ts';
import type { ActionObject } from './types.ts';
import type { ProtocolMatcher } from './matcher.ts';
import { modbusMatcher } from '../adapters/modbus/policy.ts';
import { opcuaMatcher } from './opcua.ts';
import { sshMatcher } from './ssh.ts';

type ObjectKind = ActionObject['kind'];
interface RuleOf {
  modbus: ModbusRuleConfig;
  opcua: OpcuaRuleConfig;
  ssh: SshRuleConfig;
}
type MatcherTable = { readonly [K in ObjectKind]: ProtocolMatcher<Extract<ActionObject, { kind: K }>, RuleOf[K]> };

export const MATCHERS: MatcherTable = {
  modbus: modbusMatcher,
  opcua: opcuaMatcher,
  ssh: sshMatcher,
};

/** A matcher with its types erased, for callers that pair it with a rule part of the same kind. */
export type AnyMatcher = ProtocolMatcher<ActionObject, unknown>;

export function matcherFor(kind: string): AnyMatcher | undefined {
  return Object.hasOwn(MATCHERS, kind) ? (MATCHERS[kind as ObjectKind] as unknown as AnyMatcher) : undefined;
}

/** The protocol a rule is for and its body: `{ modbus: {...} }` → { kind: 'modbus', body: {...} }. */
export function ruleParts(rule: RuleConfig): { kind: string; body: { effect: 'allow' | 'deny' | 'approve' } } {
  // The schema admits exactly one protocol key per rule.
  const [kind, body] = Object.entries(rule)[0] as [string, { effect: 'allow' | 'deny' | 'approve' }];
  return { kind, body };
}
