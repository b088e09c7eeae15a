// The policy decision: a pure function of the action, the principal, the grants it holds, the time
// and the config's targets and profiles. Default deny: nothing is allowed that no rule allows.
//
// Precedence, among the rules of the principal's grants that name the target and are active now:
//   1. any matching `deny` rule      → deny (rule_denies)   — a deny rule always wins;
//   2. else any matching `approve`   → approve (a person must say yes first);
//   3. else any matching `allow`     → allow;
//   3b. else an `allow` rule of a grant in `mode: observe` matching anything but a read → approve;
//   4. else deny, with the most specific miss of the allow/approve rules as the reason
//      (function_not_granted < object_not_granted < metacharacters < value_out_of_bounds).
// Allow and approve rules match when the action lies wholly inside them; deny rules when it touches
// anything they name (see MatchMode).
import type { PrincipalConfig, RuleConfig } from '../config/schema.ts';
import type { FirmwareProfile, TargetConfig } from '../config/types.ts';
import type { HeldGrant } from '../grants/types.ts';
import { inactiveBecause, isGrantActive } from '../grants/window.ts';
import type { Action, Decision, DecisionReason, Effect, Verb } from './types.ts';
import { MISS_RANK, type MatchEnv, type MissReason } from './matcher.ts';
import { matcherFor, ruleParts } from './matchers.ts';

export interface DecisionContext {
  principal: PrincipalConfig;
  /** Every grant naming this principal, active or not (inactive ones explain a refusal). */
  grants: readonly HeldGrant[];
  /** Wall time, ms since the epoch. */
  now: number;
  profiles: ReadonlyMap<string, FirmwareProfile>;
  targets: ReadonlyMap<string, TargetConfig>;
}

export function ruleId(grantId: string, index: number): string {
  return `${grantId}#${index}`;
}

// Rules are immutable once loaded (config snapshots and runtime grants are replaced, never edited), so
// what decide() derives from a rule — its protocol part and its one-line text — is computed once per
// rule object and kept beside it. Every allowed read names its rule, so this is on the hot path.
interface RuleFacts {
  kind: string;
  body: { effect: Effect };
  text?: string;
}
const ruleFacts = new WeakMap<RuleConfig, RuleFacts>();
function factsOf(rule: RuleConfig): RuleFacts {
  let f = ruleFacts.get(rule);
  if (!f) {
    f = ruleParts(rule);
    ruleFacts.set(rule, f);
  }
  return f;
}

/** What a rule grants (or refuses), in one line: `allow <protocol>: <what its matcher says>`. */
export function explainRule(rule: RuleConfig): string {
  const f = factsOf(rule);
  if (f.text === undefined) {
    const m = matcherFor(f.kind);
    f.text = `${f.body.effect} ${m ? m.describe(f.body) : `${f.kind}: (no matcher for this protocol)`}`;
  }
  return f.text;
}

function deny(reason: DecisionReason, explanation: string): Decision {
  return { effect: 'deny', reason, explanation };
}

const EFFECT_REASON: Record<Effect, DecisionReason> = {
  deny: 'rule_denies',
  approve: 'rule_requires_approval',
  allow: 'rule_allows',
};
/** What an observe-mode grant allows without a person: the reads (design.md: reads are aggregated, the rest one by one). */
const OBSERVE_ALLOWS: ReadonlySet<Verb> = new Set(['read', 'browse', 'subscribe', 'history']);
const EFFECT_WORDS: Record<Effect, string> = { deny: 'denied', approve: 'needs approval', allow: 'allowed' };

/** A rule's id and the explanation of a decision it made: fixed per grant and rule, so made once. */
const hitTexts = new WeakMap<HeldGrant, { rule: string; explanation: string }[]>();
function hitText(grant: HeldGrant, index: number, effect: Effect): { rule: string; explanation: string } {
  let texts = hitTexts.get(grant);
  if (!texts) hitTexts.set(grant, (texts = []));
  let t = texts[index];
  if (!t) {
    const rule = ruleId(grant.id, index);
    const explanation = `${EFFECT_WORDS[effect]} by rule ${rule} (${explainRule(grant.rules[index]!)}) of grant ${grant.id}, ticket ${grant.task.ticket}`;
    texts[index] = t = { rule, explanation };
  }
  return t;
}

export function decide(action: Action, ctx: DecisionContext): Decision {
  const { principal, now } = ctx;
  if (principal.expires !== undefined && !(now < Date.parse(principal.expires))) {
    return deny('principal_expired', `principal ${principal.id} expired at ${principal.expires}`);
  }

  const matcher = matcherFor(action.object?.kind);
  if (!matcher) return deny('malformed', `no policy knows objects of kind ${String(action.object?.kind)}`);
  const problem = matcher.validate(action, action.object);
  if (problem !== undefined) return deny('malformed', `malformed ${action.object.kind} request: ${problem}`);

  const forTarget = ctx.grants.filter((g) => g.principal === principal.id && g.targets.includes(action.target));
  if (forTarget.length === 0) return deny('no_grant', `principal ${principal.id} holds no grant for target ${action.target}`);
  const active = forTarget.filter((g) => isGrantActive(g, now));
  if (active.length === 0) {
    const why = forTarget.map((g) => `grant ${g.id}: ${inactiveBecause(g, now) ?? 'inactive'}`);
    return deny('grant_not_active', `no grant of ${principal.id} for ${action.target} is active now: ${why.join('; ')}`);
  }

  const target = ctx.targets.get(action.target);
  const env: MatchEnv = { target, profile: target?.profile !== undefined ? ctx.profiles.get(target.profile) : undefined };

  const hits: Record<Effect, { grant: HeldGrant; index: number } | undefined> = { deny: undefined, approve: undefined, allow: undefined };
  let best: { reason: MissReason; detail: string; grant: HeldGrant; index: number } | undefined;
  let observed: { grant: HeldGrant; index: number } | undefined;
  for (const grant of active) {
    const rules = grant.rules;
    for (let index = 0; index < rules.length; index++) {
      const { kind, body } = factsOf(rules[index]!);
      if (kind !== action.object.kind) continue;
      const effect = body.effect;
      if (hits[effect]) continue; // the first match of each effect names the decision
      const r = matcher.match(body, action, action.object, env, effect === 'deny' ? 'overlap' : 'contain');
      if (r.fits) {
        // An observe-mode grant allows reads only; whatever else its rules allow waits for a person,
        // unless another grant allows it outright.
        if (effect === 'allow' && grant.mode === 'observe' && !OBSERVE_ALLOWS.has(action.verb)) observed ??= { grant, index };
        else hits[effect] = { grant, index };
      } else if (effect !== 'deny' && (!best || MISS_RANK[r.miss] > MISS_RANK[best.reason])) best = { reason: r.miss, detail: r.detail, grant, index };
    }
  }

  for (const effect of ['deny', 'approve', 'allow'] as const) {
    const hit = hits[effect];
    if (!hit) continue;
    const named = hitText(hit.grant, hit.index, effect);
    return { effect, reason: EFFECT_REASON[effect], grant: hit.grant.id, rule: named.rule, explanation: named.explanation };
  }

  if (observed) {
    const rule = ruleId(observed.grant.id, observed.index);
    const explanation = `needs approval: grant ${observed.grant.id} is in observe mode, where rule ${rule} (${explainRule(observed.grant.rules[observed.index]!)}) allows only reads without a person, ticket ${observed.grant.task.ticket}`;
    return { effect: 'approve', reason: 'rule_requires_approval', grant: observed.grant.id, rule, explanation };
  }

  if (!best) {
    // Only deny rules (or none) speak of this protocol: nothing here could ever allow it.
    return deny('function_not_granted', `no active grant of ${principal.id} for ${action.target} allows any ${action.object.kind} operation`);
  }
  const nearest = ruleId(best.grant.id, best.index);
  return deny(best.reason, `no rule allows this: ${best.detail} (nearest rule ${nearest}: ${explainRule(best.grant.rules[best.index]!)})`);
}
