// The one small interface a front door implements. An adapter decodes its wire format into Actions,
// asks the core (`core.authorize`), forwards what is allowed, and encodes answers and refusals in its
// own protocol. It never decides, never journals directly, never imports another adapter.
import type { z } from 'zod';
import type { Core } from '../core/core.ts';
import type { ListenerConfig } from '../config/types.ts';

export interface RunningListener {
  readonly id: string;
  /** The bound address (port 0 in config becomes the real port). */
  address(): { host: string; port: number };
  /** Stop accepting, end sessions cleanly (telling clients in their protocol), release upstreams. */
  close(): Promise<void>;
  /** What plant staff should see in `penstockctl status` beyond the address (e.g. upstream links). */
  status?(): Record<string, unknown>;
}

export interface ProtocolAdapter {
  readonly protocol: string;
  /** Strict schema of a listener of this protocol, including the base fields (id, protocol, host, port). */
  readonly listenerSchema: z.ZodType;
  /** Strict schema of a target of this protocol, including the base fields. */
  readonly targetSchema: z.ZodType;
  /** Bind and serve; resolves only once the listener is bound (readiness waits for every listener). */
  start(listener: ListenerConfig, core: Core): Promise<RunningListener>;
}

/** Per-protocol config schemas, as config/load.ts needs them (it must not import adapters). */
export type ProtocolSchemas = ReadonlyMap<string, { listenerSchema: z.ZodType; targetSchema: z.ZodType }>;
