// Which gateway's link to a target the agent tools of a core use: an OPC UA listener of that core offers
// the targets it serves (their upstream client and mirror) while it runs, so an agent and a vendor's
// UaExpert share the one session to the plant and the one mirror (the same node ids, the same
// visibility), and the agent's calls go through the same upstream functions that require an
// Authorization. Withdrawn when the listener closes (its links close with it).
import type { Core } from '../../core/core.ts';
import type { OpcuaGateway } from './gateway.ts';

export interface ServedTarget {
  gateway: OpcuaGateway;
  /** How long the listener keeps a mirror before a browse re-reads the plant's structure. */
  browseCacheMs: number;
}

const offered = new WeakMap<Core, Map<string, ServedTarget[]>>();

/** Offer the gateway's targets to the agent tools of its core; the returned function withdraws them. */
export function offerTargets(gateway: OpcuaGateway, browseCacheMs: number): () => void {
  let byTarget = offered.get(gateway.core);
  if (!byTarget) offered.set(gateway.core, (byTarget = new Map()));
  const served: ServedTarget = { gateway, browseCacheMs };
  const targets = [...gateway.mirrors.keys()];
  for (const t of targets) byTarget.set(t, [...(byTarget.get(t) ?? []), served]);
  return () => {
    for (const t of targets) {
      const rest = (byTarget.get(t) ?? []).filter((s) => s !== served);
      if (rest.length > 0) byTarget.set(t, rest);
      else byTarget.delete(t);
    }
  };
}

/** The link to `target` for the agent tools of `core`: a listener's whose upstream is up, else any listener's. */
export function servedTarget(core: Core, target: string): ServedTarget | undefined {
  const all = offered.get(core)?.get(target) ?? [];
  return all.find((s) => s.gateway.upstreams.get(target)?.up) ?? all[0];
}
