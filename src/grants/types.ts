import type { GrantConfig } from '../config/schema.ts';

/** Who did something through the admin socket: the peer's uid as the kernel reports it. */
export interface Operator {
  uid: number;
  user?: string;
  /** False when the platform could not confirm the uid and the client's own claim was used. */
  verified: boolean;
}

/** A grant as held at run time: from the config file or issued over the admin socket. */
export interface HeldGrant extends GrantConfig {
  source: 'config' | 'runtime';
  issued?: { by: Operator; at: string };
  revoked?: { by: Operator; at: string; reason: string };
}

export type GrantChange =
  | { kind: 'issued'; grant: HeldGrant }
  | { kind: 'revoked'; grant: HeldGrant }
  | { kind: 'expired'; grant: HeldGrant };
