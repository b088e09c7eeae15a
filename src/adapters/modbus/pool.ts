// One upstream link per target, shared by every front door of one core (TLS, plain TCP, tunnels of other front doors):
// a PLC sees one gateway connection however many vendors are connected. Links open lazily on the first
// request and close when the last front door using the pool lets go.
import type { Core } from '../../core/core.ts';
import type { Logger } from 'pino';
import type { ModbusTargetConfig } from './schema.ts';
import { createUpstream, type Upstream } from './upstream.ts';

/** The fields that make a link: a reload that changes one of them replaces the link. */
function linkKey(t: ModbusTargetConfig & { max_in_flight?: number }): string {
  return JSON.stringify([t.host, t.port, t.serial, t.timeout_ms, t.max_in_flight]);
}

export class UpstreamPool {
  readonly #log: Logger;
  readonly #links = new Map<string, { key: string; target: ModbusTargetConfig; upstream: Upstream }>();
  #users = 0;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Register a user (a listener or a stream); the returned function releases it. */
  acquire(): () => void {
    this.#users++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.#users === 0) this.closeAll();
    };
  }

  get(target: ModbusTargetConfig): Upstream {
    const have = this.#links.get(target.id);
    // The same parsed target as last time (parsedTarget keeps one per config snapshot): nothing can
    // have changed, so no key to build on every request.
    if (have && have.target === target) return have.upstream;
    const key = linkKey(target);
    if (have && have.key === key) {
      have.target = target;
      return have.upstream;
    }
    have?.upstream.close();
    const upstream = createUpstream(target, this.#log);
    this.#links.set(target.id, { key, target, upstream });
    return upstream;
  }

  /** Links by target id (status, tests). */
  links(): ReadonlyMap<string, Upstream> {
    return new Map([...this.#links].map(([id, l]) => [id, l.upstream]));
  }

  closeAll(): void {
    for (const l of this.#links.values()) l.upstream.close();
    this.#links.clear();
  }
}

const pools = new WeakMap<Core, UpstreamPool>();

/** The pool every Modbus front door of `core` shares. */
export function upstreamsFor(core: Core): UpstreamPool {
  let pool = pools.get(core);
  if (!pool) {
    pool = new UpstreamPool(core.log);
    pools.set(core, pool);
  }
  return pool;
}
