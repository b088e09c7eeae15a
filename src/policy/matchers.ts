// The rule matchers, looked up by the kind of object an action carries: each protocol's module brings
// its own (src/adapters/<name>/module.ts). decide() itself never changes when a protocol is added.
import { protocols } from '../adapters/registry.ts';
import type { RuleConfig } from '../config/schema.ts';
import type { ActionObject } from './types.ts';
import type { ProtocolMatcher } from './matcher.ts';

/** A matcher with its types erased, for callers that pair it with a rule part of the same kind. */
export type AnyMatcher = ProtocolMatcher<ActionObject, unknown>;

export function matcherFor(kind: string): AnyMatcher | undefined {
  return protocols.get(kind)?.matcher as AnyMatcher | undefined;
}

/** The protocol a rule is for and its body: `{ <protocol>: {...} }` → { kind: '<protocol>', body: {...} }. */
export function ruleParts(rule: RuleConfig): { kind: string; body: { effect: 'allow' | 'deny' | 'approve' } } {
  // The schema admits exactly one protocol key per rule.
  const [kind, body] = Object.entries(rule)[0] as [string, { effect: 'allow' | 'deny' | 'approve' }];
  return { kind, body };
}
