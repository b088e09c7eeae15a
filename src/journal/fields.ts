// How actions and decisions appear in journal events. Each protocol's block is rendered by its module
// (`renderObject`), in the names OT analysts know from network sensors (Zeek, Suricata), so a SIEM rule
// written for them reads Penstock evidence unchanged.
import { protocols } from '../adapters/registry.ts';
import type { Action, Decision } from '../policy/types.ts';

/** `{ verb, target, <protocol>: {...} }`: the protocol block is keyed by the protocol's name. */
export function renderAction(action: Action): Record<string, unknown> {
  const o = action.object;
  const m = protocols.get(o.kind);
  // An object of no registered protocol is journaled as it came (it can only be a bug; policy denies it).
  const { kind: _kind, ...fields } = o;
  return { verb: action.verb, target: action.target, [o.kind]: m ? m.renderObject(o) : fields };
}

export function renderDecision(d: Decision): Record<string, unknown> {
  return { effect: d.effect, reason: d.reason, grant: d.grant, rule: d.rule, explanation: d.explanation };
}
