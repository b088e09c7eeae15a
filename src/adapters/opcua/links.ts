// Which link to a target the agent tools of a core use. An OPC UA listener of that core offers the targets
// it serves (their upstream client and mirror) while it runs, so an agent and a vendor's UaExpert share
// the one session to the plant and the one mirror (the same node ids, the same visibility); withdrawn
// when the listener closes. A target no listener serves gets a link of the agent tools' own, made the
// same way (OpcuaUpstream with the gateway's client certificate and the target's credential, a
// TargetMirror in an address space of its own, without a server): opened on first use, shared by every
// agent call on that core, closed once every session that used it has ended (so a daemon that drains its
// sessions at shutdown is not held up by the link's sockets), after AGENT_LINK_IDLE_MS without a call, or
// by closeAgentLinks.
// Either way calls go through the upstream functions that require an Authorization.
import { join } from 'node:path';
import { AddressSpace, generateAddressSpace, nodesets } from 'node-opcua';
import type { Core } from '../../core/core.ts';
import type { Session } from '../../sessions/registry.ts';
import { OpcuaGateway } from './gateway.ts';
import { TargetMirror } from './address-space.ts';
import { OpcuaUpstream } from './upstream.ts';
import { openGatewayPki } from './pki.ts';
import { opcuaTargetSchema } from './schema.ts';

export interface ServedTarget {
  gateway: OpcuaGateway;
  /** How long a mirror is kept before a browse re-reads the plant's structure. */
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

/** A listener's link to `target`: one whose upstream is up, else any (undefined: no listener serves it). */
export function servedTarget(core: Core, target: string): ServedTarget | undefined {
  const all = offered.get(core)?.get(target) ?? [];
  return all.find((s) => s.gateway.upstreams.get(target)?.up) ?? all[0];
}

/** How long the agent tools keep a link of their own open without a call. */
export const AGENT_LINK_IDLE_MS = 5 * 60_000;
/** How often an own link looks whether a session that used it is still open. */
const SESSIONS_CHECK_MS = 1000;
/** Defaults of the listener settings an own link has no listener to take from. */
const OWN_BROWSE_CACHE_MS = 300_000;
const OWN_VISIBILITY_MS = 30_000;
/** The name the own links' certificates and logs go by, where a listener's id would be. */
const OWN_LINK_NAME = 'agent-tools';

interface OwnLink {
  /** The target's config it was opened with: a reload that changes it opens a new link. */
  key: string;
  opened: Promise<{ served: ServedTarget; close: () => Promise<void> }>;
  calls: number;
  idle: NodeJS.Timeout | undefined;
  /** The sessions that have used it (the agents' sessions); when all have ended, it closes. */
  users: Set<Session>;
  watch: NodeJS.Timeout;
}

const own = new WeakMap<Core, Map<string, OwnLink>>();

/**
 * The link an agent call on `target` uses, held until `release`: a listener's, else the agent tools' own
 * (opened now if need be).
 */
export async function acquireLink(core: Core, target: string, session: Session): Promise<{ served: ServedTarget; release: () => void }> {
  const listener = servedTarget(core, target);
  if (listener) return { served: listener, release: () => {} };
  let links = own.get(core);
  if (!links) own.set(core, (links = new Map()));
  const key = JSON.stringify(core.config().targets.get(target) ?? null);
  const drop = (l: OwnLink) => {
    if (links.get(target) !== l) return;
    links.delete(target);
    clearTimeout(l.idle);
    clearInterval(l.watch);
    void l.opened.then((o) => o.close(), () => {});
  };
  let link = links.get(target);
  if (link && link.key !== key && link.calls === 0) {
    // The target changed under a reload (endpoint, certificate, credential): its next call opens anew.
    drop(link);
    link = undefined;
  }
  if (!link) {
    const made: OwnLink = { key, opened: openOwnLink(core, target), calls: 0, idle: undefined, users: new Set(), watch: undefined! };
    made.watch = setInterval(() => {
      for (const s of made.users) if (!s.active) made.users.delete(s);
      if (made.users.size === 0 && made.calls === 0) drop(made);
    }, SESSIONS_CHECK_MS).unref();
    made.opened.catch(() => drop(made));
    links.set(target, made);
    link = made;
  }
  const held = link;
  held.calls++;
  held.users.add(session);
  clearTimeout(held.idle);
  held.idle = undefined;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    if (--held.calls > 0) return;
    held.idle = setTimeout(() => drop(held), AGENT_LINK_IDLE_MS).unref();
  };
  try {
    return { served: (await held.opened).served, release };
  } catch (err) {
    release();
    throw err;
  }
}

/** The targets the agent tools of `core` hold a link of their own to (status, tests). */
export function agentLinkTargets(core: Core): string[] {
  return [...(own.get(core)?.keys() ?? [])];
}

/** Close the agent tools' own links of `core` (shutdown, tests); how many there were. */
export async function closeAgentLinks(core: Core): Promise<number> {
  const links = own.get(core);
  if (!links) return 0;
  const all = [...links.values()];
  links.clear();
  for (const l of all) {
    clearTimeout(l.idle);
    clearInterval(l.watch);
  }
  await Promise.allSettled(all.map((l) => l.opened.then((o) => o.close())));
  return all.length;
}

async function openOwnLink(core: Core, targetId: string): Promise<{ served: ServedTarget; close: () => Promise<void> }> {
  const config = core.config();
  const cfg = opcuaTargetSchema.parse(config.targets.get(targetId));
  const log = core.log.child({ protocol: 'opcua', link: OWN_LINK_NAME, target: targetId });
  // One store per target: a store's trusted/ folder is rebuilt from the target it pins.
  const pki = await openGatewayPki({
    dir: join(config.appliance.state_dir, 'opcua', OWN_LINK_NAME, targetId),
    trustedClients: [],
    trustedUsers: [],
    pinnedUpstreams: cfg.server_certificate ? [cfg.server_certificate] : [],
    userFingerprints: () => new Set(),
    onRefused: () => {},
    identity: {
      applianceId: config.appliance.id,
      site: config.appliance.site,
      listener: OWN_LINK_NAME,
      names: [],
      serverUri: `urn:penstock:${config.appliance.id}:${OWN_LINK_NAME}`,
      clientUri: `urn:penstock:${config.appliance.id}:${OWN_LINK_NAME}:client`,
    },
  });
  // The mirror needs an address space (the standard types, its node ids in namespace 1 as a listener's).
  const addressSpace = AddressSpace.create();
  const dispose = async () => {
    addressSpace.dispose();
    await Promise.allSettled([pki.server.dispose(), pki.users.dispose(), pki.client.dispose()]);
  };
  try {
    await generateAddressSpace(addressSpace, [nodesets.standard]);
    const ns = addressSpace.registerNamespace(`urn:penstock:${config.appliance.id}:${OWN_LINK_NAME}`);
    const password = cfg.username && cfg.credential ? core.vault.resolve(cfg.credential) : undefined;
    const upstream = new OpcuaUpstream(cfg, { certificateManager: pki.client, certificate: pki.clientCertificate, ...(password ? { password } : {}), log });
    const mirror = new TargetMirror(ns, cfg.id, upstream, { root: cfg.root, maxNodes: cfg.max_nodes, maxDepth: cfg.max_depth, log });
    const gateway = new OpcuaGateway(core, OWN_LINK_NAME, OWN_VISIBILITY_MS);
    gateway.upstreams.set(cfg.id, upstream);
    gateway.mirrors.set(cfg.id, mirror);
    upstream.onUp(() => {
      if (mirror.syncedAt === 0 || core.clock.now() - mirror.syncedAt > OWN_BROWSE_CACHE_MS) {
        mirror.sync().catch((err: unknown) => log.warn({ err: (err as Error).message }, 'opcua mirror failed'));
      }
    });
    upstream.start();
    log.info('opcua agent tools link opened');
    return {
      served: { gateway, browseCacheMs: OWN_BROWSE_CACHE_MS },
      close: async () => {
        gateway.dispose();
        await upstream.close();
        await dispose();
        log.info('opcua agent tools link closed');
      },
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}
