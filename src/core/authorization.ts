// Proof that the core allowed one action. Forwarding functions take an Authorization, not a Decision, so
// an adapter cannot reach a target without having asked: there is no `effect === 'allow'` check to
// forget. Only DaemonCore mints them (test/architecture/boundaries.test.ts checks that nothing else
// imports mintAuthorization); a forged or copied object fails requireAuthorization at run time.
import { PenstockError } from '../common/errors.ts';
import type { Action, Decision } from '../policy/types.ts';

export interface Authorization {
  /** The session the action was allowed for. */
  readonly session: string;
  /** The action as it was decided and journaled. */
  readonly action: Readonly<Action>;
  readonly decision: Readonly<Decision> & { readonly effect: 'allow' };
}

/** What core.authorize answers: an allow carries its proof; anything else carries none. */
export type Verdict =
  | (Decision & { effect: 'allow'; authorization: Authorization })
  | (Decision & { effect: 'deny' | 'approve'; authorization?: undefined; approval?: PendingApprovalRef });

/** A deferred approval the verdict waits on (AuthorizeOptions.approvalBinding): ask again once a person has approved. */
export interface PendingApprovalRef {
  readonly id: string;
  /** When it times out unless someone answers (ISO 8601). */
  readonly expiresAt: string;
  /** The SHA-256 of the canonical arguments it is bound to. */
  readonly binding: string;
}

const MINT = Symbol('mint');

/**
 * The one class proofs are made of. Its private field is the brand: a copy (`{ ...auth }`), a look-alike
 * or a JSON round trip has none, and only this module holds the token its constructor wants. (A WeakSet
 * of minted proofs did the same, at the price of an ephemeron entry per allowed action for the garbage
 * collector to trace: measurable on the read path.)
 */
class MintedAuthorization implements Authorization {
  readonly #minted = true;
  readonly session: string;
  readonly action: Readonly<Action>;
  readonly decision: Readonly<Decision> & { readonly effect: 'allow' };

  constructor(token: symbol, session: string, action: Action, decision: Decision & { effect: 'allow' }) {
    if (token !== MINT) throw new PenstockError('PS_INTERNAL', 'authorizations are minted by the core only');
    this.session = session;
    this.action = action;
    this.decision = decision;
    Object.freeze(this);
  }

  static is(a: unknown): a is MintedAuthorization {
    return typeof a === 'object' && a !== null && #minted in a && (a as MintedAuthorization).#minted;
  }
}

/** For DaemonCore only: the proof that goes with an allow it has decided and journaled. */
export function mintAuthorization(session: string, action: Action, decision: Decision & { effect: 'allow' }): Authorization {
  // The action and decision are the core's own objects, made for this one request: no copies.
  return new MintedAuthorization(MINT, session, action, decision);
}

/**
 * What a forwarding function calls first: the proof is one the core minted, for this session (and, when
 * given, this verb on this target). Throws PS_INTERNAL otherwise: that is a bug, never a peer's doing.
 */
export function requireAuthorization(a: Authorization | undefined, session: string, expect?: { target?: string; verb?: Action['verb'] }): Authorization {
  if (!MintedAuthorization.is(a)) throw new PenstockError('PS_INTERNAL', 'forwarding without an authorization the core issued');
  if (a.session !== session) throw new PenstockError('PS_INTERNAL', `authorization for session ${a.session} used in session ${session}`);
  if (expect?.target !== undefined && a.action.target !== expect.target) throw new PenstockError('PS_INTERNAL', `authorization for target ${a.action.target} used toward ${expect.target}`);
  if (expect?.verb !== undefined && a.action.verb !== expect.verb) throw new PenstockError('PS_INTERNAL', `authorization for ${a.action.verb} used for ${expect.verb}`);
  return a;
}
