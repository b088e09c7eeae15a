// `penstockctl grants suggest` for OPC UA: the smallest rules that would have allowed what a principal
// was seen doing. One rule per verb naming the exact node ids used (a call names its method's node);
// a write rule bounds values by the least and greatest numeric value written, when every write carried
// a number (a value given as the decimal text of a 64-bit integer is not rounded into a bound).
import { coverageText } from '../../grants/observed.ts';
import type { ObservedAction, SuggestContext, SuggestedRule } from '../types.ts';
import type { OpcuaRuleConfig, OpcuaVerb } from './rules.ts';
import { opcuaVerbs } from './rules.ts';


export function suggestOpcuaRules(actions: readonly ObservedAction[], _ctx: SuggestContext): SuggestedRule<OpcuaRuleConfig>[] {
  const byVerb = new Map<OpcuaVerb, ObservedAction[]>();
  for (const a of actions) {
    if (a.effect !== 'allowed' || typeof a.object.node_id !== 'string') continue;
    if (!(opcuaVerbs as readonly string[]).includes(a.verb)) continue;
    const verb = a.verb as OpcuaVerb;
    let list = byVerb.get(verb);
    if (!list) byVerb.set(verb, (list = []));
    list.push(a);
  }
  return opcuaVerbs.filter((v) => byVerb.has(v)).map((verb) => {
    const seen = byVerb.get(verb)!;
    // Exact ids (a rare id ending in `*` reads as a prefix there: broader than seen, and visible in the rule).
    const nodes = [...new Set(seen.map((a) => a.object.node_id as string))].sort();
    const rule: OpcuaRuleConfig = { effect: 'allow', verbs: [verb], nodes };
    let what = `${verb} ${nodes.join(', ')}`;
    if (verb === 'write') {
      const values = seen.map((a) => a.object.value);
      if (values.every((v): v is number => typeof v === 'number' && Number.isFinite(v))) {
        rule.min = values.reduce((a, b) => Math.min(a, b));
        rule.max = values.reduce((a, b) => Math.max(a, b));
        what += `; values ${rule.min}..${rule.max} as written`;
      } else {
        what += '; values not bounded (some write carried no plain number)';
      }
    }
    return { rule, comment: `${what}: ${coverageText(seen)}` };
  });
}
