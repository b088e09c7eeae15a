// A real DaemonCore for tests that drive it in-process: the config loaded from YAML as the daemon loads
// it, a real LMDB journal and grant store, the vault the config names (or an empty one); and a front
// door's listeners started on top of it (startTestGateway).
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { systemClock, type Clock } from '../src/common/clock.ts';
import { loadConfig } from '../src/config/load.ts';
import type { LoadedConfig } from '../src/config/types.ts';
import { protocols } from '../src/adapters/registry.ts';
import { LmdbJournal } from '../src/journal/journal.ts';
import { generateSigningKeyPem } from '../src/journal/checkpoint.ts';
import type { StoredEvent } from '../src/journal/event.ts';
import { GrantStore } from '../src/grants/store.ts';
import { validateRuntimeGrant } from '../src/grants/validate.ts';
import { Approvals } from '../src/approvals/approvals.ts';
import { Vault } from '../src/vault/vault.ts';
import { DaemonCore } from '../src/core/daemon-core.ts';
import type { Session } from '../src/sessions/registry.ts';
import type { AgentCall, FrontDoor, RunningListener } from '../src/adapters/types.ts';

export interface TestCore {
  config: LoadedConfig;
  core: DaemonCore;
  journal: LmdbJournal;
  /** Every journaled event so far, parsed. */
  events(): StoredEvent[];
  /** Drain the core (ending sessions, writing read aggregates) and close the journal. */
  stop(): Promise<void>;
}

/** Write `yaml` as DIR/penstock.yaml and build the core from it (journal under DIR/journal). */
export async function startTestCore(dir: string, yaml: string, opts: { clock?: Clock; runtimeGrants?: boolean; takeGrantUse?: (grantId: string, sessionId: string) => boolean; mapSizeMiB?: number } = {}): Promise<TestCore> {
  const clock = opts.clock ?? systemClock;
  const file = join(dir, 'penstock.yaml');
  writeFileSync(file, yaml);
  const config = loadConfig(file, protocols);
  const log = pino({ level: process.env.PENSTOCK_TEST_LOG ?? 'silent' });
  const journal = await LmdbJournal.open({
    path: join(dir, 'journal'),
    mapSizeMiB: opts.mapSizeMiB ?? 256,
    appliance: config.appliance.id,
    signingKeyPem: generateSigningKeyPem(),
    clock,
    checkpointEvery: 100_000,
    checkpointSeconds: 3600,
    log,
  });
  // Runtime grants are checked as the daemon checks them, when the test asks for them.
  const grants = new GrantStore({ clock, validateGrant: (g) => { if (!opts.runtimeGrants) throw new Error('no runtime grants in this test'); return validateRuntimeGrant(config, g); } });
  grants.replaceConfigGrants(config.grants);
  const approvals = new Approvals({ clock, timeoutMs: 60_000 });
  const vault = existsSync(config.appliance.vault_file) ? Vault.open(config.appliance.vault_file, config.appliance.vault_key_file) : Vault.empty();
  const core = new DaemonCore({ clock, log, config, journal, grants, approvals, vault, ...(opts.takeGrantUse ? { takeGrantUse: opts.takeGrantUse } : {}) });
  return {
    config,
    core,
    journal,
    events: () => journal.readEvents(0, 1_000_000).map((e) => JSON.parse(e.bytes) as StoredEvent),
    stop: async () => {
      await core.drain();
      await core.recorded(); // fire-and-forget records (session ends, outcomes) land before the journal closes
      await journal.close();
    },
  };
}

export interface TestGateway {
  core: DaemonCore;
  journal: LmdbJournal;
  listeners: Map<string, RunningListener>;
  events(): StoredEvent[];
  /** Close the listeners, then stop the core. */
  stop(): Promise<void>;
}

/** startTestCore, then every listener of the config started with `adapter`. */
export async function startTestGateway(dir: string, yaml: string, adapter: FrontDoor, opts: Parameters<typeof startTestCore>[2] = {}): Promise<TestGateway> {
  const t = await startTestCore(dir, yaml, opts);
  const listeners = new Map<string, RunningListener>();
  for (const l of t.config.listeners) listeners.set(l.id, await adapter.start(l, t.core));
  return {
    core: t.core,
    journal: t.journal,
    listeners,
    events: t.events,
    stop: async () => {
      await Promise.allSettled([...listeners.values()].map((l) => l.close()));
      await t.stop();
    },
  };
}

/** A session of `principal` on `target`, as a front door on loopback would open it (no wire behind it). */
export function openTestSession(core: DaemonCore, principal: string, target = 'plc-1'): Session {
  return core.sessions.open({ principal: core.config().principals.get(principal)!, chain: [principal], target, listener: 'test', protocol: 'modbus', remote: '127.0.0.1:1', attributes: {} }, () => {});
}

/**
 * The AgentCall the MCP door would make for one tool call (src/adapters/types.ts), for tests that run a
 * protocol's agent tools in-process: authorize and outcome go through the real core with a correlation id.
 */
export function testAgentCall(core: DaemonCore, session: Session, opts: { correlation?: string; binding?: string } = {}): AgentCall {
  const correlation = opts.correlation ?? `call-${Math.random().toString(16).slice(2, 10)}`;
  return {
    core,
    session,
    authorize: (action, o = {}) => core.authorize(session, action, { ...o, correlation, ...(opts.binding !== undefined ? { approvalBinding: opts.binding } : {}) }),
    outcome: (action, outcome) => core.recordOutcome(session, action, outcome, { correlation }),
    signal: new AbortController().signal,
  };
}
