import type { PrincipalConfig } from '../config/schema.ts';
import type { AlertRef } from '../alerts/types.ts';

export interface SessionCounters {
  allowed: number;
  denied: number;
  bytesIn: number;
  bytesOut: number;
}

export interface SessionInit {
  principal: PrincipalConfig;
  /** Delegation chain, the principal first. */
  chain: string[];
  /** Target id, when the front door already knows it (a front door that routes per request may learn it then). */
  target?: string;
  /** Listener id (the front door). */
  listener: string;
  protocol: string;
  /** Peer address as `host:port`. */
  remote: string;
  /** What the front door learned at authentication (certificate role, key fingerprint, client name). */
  attributes?: Record<string, string>;
}

export interface SessionView {
  id: string;
  principal: string;
  kind: PrincipalConfig['kind'];
  chain: string[];
  target?: string;
  listener: string;
  protocol: string;
  remote: string;
  started: string;
  grants: string[];
  attributes: Record<string, string>;
  counters: SessionCounters;
  /** Suspended by containment: which alert, since when (ISO 8601). */
  suspended?: { alert: AlertRef; since: string };
}
