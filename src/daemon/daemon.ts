// The composition root: the one place that knows every part and wires them together (core, the front
// doors from the module table, admin socket, pull API). Nothing imports it but main.ts and the tests.
// Start-up and shut-down, in the order design.md gives:
//   config → journal → core → adapters → admin → sync → ready
// Readiness (sd_notify READY=1) is sent only after every listener is bound. SIGHUP reloads the config
// atomically (or not at all); SIGTERM drains sessions, signs a last checkpoint and exits.
import v8 from 'node:v8';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFileAtomic } from '../common/files.ts';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { systemScheduler, type Clock, type Scheduler } from '../common/clock.ts';
import { PenstockError, isPenstockError } from '../common/errors.ts';
import { checkConfig, loadConfig } from '../config/load.ts';
import type { ConfigIssue, LoadedConfig } from '../config/types.ts';
import { loadFrontDoor, protocols } from '../adapters/registry.ts';
import type { RunningListener } from '../adapters/types.ts';
import { LmdbJournal } from '../journal/journal.ts';
import { generateSigningKeyPem } from '../journal/checkpoint.ts';
import { GrantStore } from '../grants/store.ts';
import { EnvelopeLedger, describeEnvelope, importEnvelope, revokeSpent } from '../grants/envelope.ts';
import type { Operator } from '../grants/types.ts';
import { validateRuntimeGrant } from '../grants/validate.ts';
import { Approvals } from '../approvals/approvals.ts';
import { Vault } from '../vault/vault.ts';
import { startAdminServer } from '../admin/server.ts';
import { adminCommands } from '../admin/commands.ts';
import { journalCommands } from '../admin/journal-commands.ts';
import { eventCommands } from '../admin/event-commands.ts';
import { startSyncServer } from '../sync/server.ts';
import { currentClientRules } from '../sync/clients.ts';
import type { SyncAuditEvent } from '../sync/types.ts';
import { RateLimitedRefusals } from '../core/refusals.ts';
import { createNotifier } from './notify.ts';
import { DaemonCore } from '../core/daemon-core.ts';
import { AlertEngine, coreEnvironment } from '../alerts/engine.ts';
import { Containment } from '../alerts/containment.ts';
import { startPusher, type Pusher } from '../push/pusher.ts';
import { journalSource, startSiemExports, type SiemExports } from '../siem/exporter.ts';

export const VERSION = '0.1.0';
/** Retention runs once a minute. */
const RETENTION_EVERY_TICKS = 60;

export interface DaemonOptions {
  configFile: string;
  log: Logger;
  clock?: Clock;
}

interface Closable {
  close(): Promise<void>;
}

export class Daemon {
  readonly #opts: DaemonOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  #core: DaemonCore | undefined;
  #envelopes: EnvelopeLedger | undefined;
  #journal: LmdbJournal | undefined;
  #alerts: AlertEngine | undefined;
  #listeners: RunningListener[] = [];
  #admin: (Closable & { path: string }) | undefined;
  #sync: (Closable & { address(): { host: string; port: number } }) | undefined;
  #syncRefusals: RateLimitedRefusals | undefined;
  /** The evidence push to JetStream (push: in the config), and the section it runs with. */
  #pusher: { pusher: Pusher; section: string } | undefined;
  /** The SIEM exports (siem: in the config), and the section they run with. */
  #siem: { exports: SiemExports; section: string } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopWatchdog: (() => void) | undefined;
  #startedMs = 0;
  #stopping: Promise<void> | undefined;
  #reloading: Promise<{ ok: boolean; issues: ConfigIssue[] }> | undefined;
  readonly #notifier;

  constructor(opts: DaemonOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? systemScheduler; // a Scheduler: approvals time out on timers of their own
    this.#log = opts.log;
    this.#notifier = createNotifier(opts.log);
  }

  get core(): DaemonCore {
    if (!this.#core) throw new PenstockError('PS_INTERNAL', 'daemon not started');
    return this.#core;
  }

  async start(): Promise<void> {
    this.#startedMs = this.#clock.now();
    const config = await loadConfig(this.#opts.configFile, protocols);
    for (const w of config.warnings) this.#log.warn({ file: w.file, line: w.line, field: w.field }, w.message);
    const app = config.appliance;
    ensureDir(app.state_dir, 0o750);

    this.#journal = await LmdbJournal.open({
      path: app.journal_path,
      mapSizeMiB: config.raw.journal.map_size_mib,
      appliance: app.id,
      signingKeyPem: loadOrCreateSigningKey(app.signing_key, this.#log),
      clock: this.#clock,
      checkpointEvery: config.raw.journal.checkpoint_every,
      checkpointSeconds: config.raw.journal.checkpoint_seconds,
      log: this.#log,
      onAlert: (a) => this.#onJournalAlert(a),
    });

    const vault = openVault(config, this.#log);
    const grantsFile = join(app.state_dir, 'grants.json');
    // Until the core exists (restoring grants.json), grants are checked against the config just loaded:
    // asking the core then threw, and every runtime grant was silently dropped at each restart.
    const grants = new GrantStore({ clock: this.#clock, validateGrant: (g) => validateRuntimeGrant(this.#core?.config() ?? config, g) });
    if (existsSync(grantsFile)) {
      const { skipped } = grants.fromJSON(JSON.parse(readFileSync(grantsFile, 'utf8')));
      for (const s of skipped) this.#log.warn({ grant: s.id }, `runtime grant not restored: ${s.message}`);
    }
    grants.replaceConfigGrants(config.grants);
    // Runtime grants and revocations survive restarts: persist on every change, atomically.
    grants.onChange(() => writeFileAtomic(grantsFile, JSON.stringify(grants.toJSON(), null, 2)));
    // Envelopes imported (by jti) and their grants' uses, beside grants.json (see grants/envelope.ts).
    const envelopes = new EnvelopeLedger(join(app.state_dir, 'envelopes.json'));
    this.#envelopes = envelopes;
    const approvals = new Approvals({ clock: this.#clock, timeoutMs: config.raw.approvals.timeout_seconds * 1000 });

    this.#core = new DaemonCore({ clock: this.#clock, log: this.#log, config, journal: this.#journal, grants, approvals, vault, takeGrantUse: (g, s) => envelopes.takeUse(g, s), importEnvelope: (text, by) => this.#importEnvelope(text, by) });
    // Detectors over the committed events (src/alerts): each alert is journaled as alert.<kind>;
    // onAlert is where containment acts on it.
    const core = this.#core;
    // Each alert: containment acts as the config says, and the service's status line tells systemd (and
    // whatever watches the unit) that something needs a person.
    const containment = new Containment(core);
    this.#alerts = new AlertEngine({
      journal: this.#journal,
      clock: this.#clock,
      log: this.#log,
      settings: () => core.config().raw.alerts,
      env: coreEnvironment(core),
      onAlert: (alert, seq) => {
        void this.#notifier.status(`ALERT ${alert.kind} (${alert.severity}): ${alert.principal}${alert.target ? ` on ${alert.target}` : ''}, journal seq ${seq}`);
        void containment.apply(alert, seq);
      },
    });
    this.#alerts.start();
    await this.#journal.append({ event: 'daemon.started', detail: { version: VERSION, config: config.file, node: process.version } });

    for (const listener of config.listeners) {
      const adapter = await loadFrontDoor(listener.protocol);
      if (!adapter) throw new PenstockError('PS_PROTOCOL_UNKNOWN', `listener ${listener.id}: no front door for protocol ${listener.protocol}`);
      this.#listeners.push(await adapter.start(listener, this.#core));
    }

    ensureDir(dirname(app.admin_socket), 0o750);
    this.#admin = await startAdminServer({
      socketPath: app.admin_socket,
      ...(config.raw.admin.group ? { group: config.raw.admin.group } : {}),
      commands: { ...adminCommands, ...journalCommands, ...eventCommands },
      context: {
        core: this.#core,
        reload: () => this.reload(),
        // Text the operator's penstockctl read with its own rights; the daemon opens no path for this.
        checkConfig: (text: string, name: string) => checkConfig(name, protocols, { text }),
        importEnvelope: (text: string, by: Operator) => this.#importEnvelope(text, by),
        status: () => this.status(),
        journal: this.#journal,
      },
      log: this.#log,
      // Read-only requests arrive counted, one record per command, operator and outcome per interval.
      aggregateReadsMs: config.raw.journal.aggregate_reads_seconds * 1000,
      audit: async (e) => {
        // An envelope refused (replayed, expired, foreign…) is a refusal, with what it claimed to be.
        const refused = e.ok === false && (e.error === 'PS_ADMIN_UNKNOWN_COMMAND' || e.error?.startsWith('PS_ENVELOPE_') === true);
        const envelope = e.command === 'grants.import' ? describeEnvelope((e.params as { envelope?: unknown } | undefined)?.envelope) : undefined;
        await this.#journal!.append({
          event: refused ? 'admin.refused' : 'admin.request',
          detail: {
            command: e.command,
            operator: e.operator,
            ok: e.ok,
            ...(e.error ? { error: e.error } : {}),
            ...(envelope ? { envelope } : {}),
            ...(e.phase === 'aggregate' ? { count: e.count, first: e.first, last: e.last } : {}),
          },
        });
      },
    });

    if (config.raw.sync) {
      const s = config.raw.sync;
      this.#syncRefusals = new RateLimitedRefusals(this.#core, 'sync', 'https');
      this.#sync = await startSyncServer({
        host: s.host,
        port: s.port,
        tls: { cert: readFileSync(s.tls.cert, 'utf8'), key: readFileSync(s.tls.key, 'utf8'), clientCa: readFileSync(s.tls.client_ca, 'utf8') },
        journal: this.#journal,
        pageSize: s.page_size,
        clients: currentClientRules(() => this.core.config().raw.sync?.clients ?? []),
        log: this.#log,
        onAudit: (e) => this.#onSyncAudit(e),
      });
    }

    this.#startPush(config);
    await this.#startSiem(config);

    let ticks = 0;
    this.#timer = setInterval(() => {
      void this.#core?.tick().catch((err: unknown) => this.#log.error({ err }, 'housekeeping failed'));
      this.#revokeSpentEnvelopes();
      if (++ticks % RETENTION_EVERY_TICKS === 0) this.#applyRetention();
    }, 1000);
    this.#timer.unref();

    // Every listener is bound: only now is the daemon ready.
    await this.#notifier.ready(`serving ${this.#listeners.length} front door(s)`);
    this.#stopWatchdog = this.#notifier.startWatchdog();
    this.#log.info({ listeners: this.#listeners.map((l) => ({ id: l.id, ...l.address() })), admin: app.admin_socket }, 'penstock ready');
  }

  /** Load the config file again and swap it in whole, or keep the old one and report why. */
  reload(): Promise<{ ok: boolean; issues: ConfigIssue[] }> {
    // One reload at a time; a second request while one runs gets the same answer.
    this.#reloading ??= this.#reloadOnce().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #reloadOnce(): Promise<{ ok: boolean; issues: ConfigIssue[] }> {
    const core = this.core;
    const { config, issues } = checkConfig(this.#opts.configFile, protocols);
    const errors = issues.filter((i) => i.severity === 'error');
    const why = unreloadable(core.config(), config);
    if (!config || errors.length > 0 || why) {
      const all = why ? [...issues, { file: this.#opts.configFile, line: 1, column: 1, field: why.field, message: why.message, severity: 'error' as const }] : issues;
      this.#log.warn({ issues: all.length }, 'config reload refused; keeping the running configuration');
      await core.journal.append({ event: 'config.reload_refused', detail: { file: this.#opts.configFile, issues: all.filter((i) => i.severity === 'error').map(brief) } }).catch(() => {});
      return { ok: false, issues: all };
    }
    core.swapConfig(config);
    await this.#restartPushIfChanged(config);
    await this.#restartSiemIfChanged(config);
    await core.journal.append({ event: 'config.reloaded', detail: { file: config.file, warnings: issues.map(brief) } }).catch(() => {});
    this.#log.info('configuration reloaded');
    return { ok: true, issues };
  }

  status(): Record<string, unknown> {
    const core = this.core;
    const config = core.config();
    return {
      appliance: config.appliance.id,
      site: config.appliance.site,
      zone: config.appliance.zone,
      version: VERSION,
      node: process.version,
      pid: process.pid,
      uptime_seconds: Math.round((this.#clock.now() - this.#startedMs) / 1000),
      config: config.file,
      listeners: this.#listeners.map((l) => ({ id: l.id, protocol: config.listeners.find((c) => c.id === l.id)?.protocol, ...l.address(), ...l.status?.() })),
      admin_socket: this.#admin?.path,
      sync: this.#sync ? this.#sync.address() : null,
      push: this.#pusher ? this.#pusher.pusher.status() : null,
      // Per export: its cursor, how far the journal is ahead of it (lag), and why it is not getting through.
      siem: this.#siem?.exports.status() ?? [],
      sessions: core.sessions.list().length,
      pending_approvals: core.approvals.list().length,
      grants: { total: core.grants.list().length, active: core.grants.list().filter((g) => core.grants.isActive(g, this.#clock.now())).length },
      journal: core.journal.health(),
      rss_bytes: process.memoryUsage.rss(),
      // The V8 heap against its limit (--max-old-space-size): raise the limit before it is reached.
      heap_used_bytes: v8.getHeapStatistics().used_heap_size,
      heap_limit_bytes: v8.getHeapStatistics().heap_size_limit,
    };
  }

  /** Drain: stop accepting, end sessions (each front door tells its peers), sign a last checkpoint. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stopOnce();
    return this.#stopping;
  }

  async #stopOnce(): Promise<void> {
    this.#log.info('stopping: draining sessions');
    await this.#notifier.stopping();
    this.#stopWatchdog?.();
    if (this.#timer) clearInterval(this.#timer);
    await Promise.allSettled(this.#listeners.map((l) => l.close()));
    await this.#sync?.close();
    if (this.#core) {
      await this.#core.drain();
      // Session records and outcomes are appended in the background; they go in before the journal closes.
      await this.#core.recorded();
      this.#alerts?.stop();
      await this.#alerts?.settled();
      await this.#core.journal.append({ event: 'daemon.stopping', detail: { reason: 'signal' } }).catch(() => {});
    }
    // Before the journal closes: a clean end moves each export's cursor over what its receiver read.
    await this.#siem?.exports.stop();
    await this.#admin?.close();
    // Bounded: a dead link does not hold shutdown (what is not acknowledged goes after the restart).
    await this.#pusher?.pusher.close();
    await this.#journal?.close();
    this.#log.info('stopped');
  }

  /** The evidence push runs when the config has a push: section (src/push/pusher.ts). */
  #startPush(config: LoadedConfig): void {
    const push = config.raw.push;
    if (!push) return;
    this.#pusher = { pusher: startPusher({ journal: this.#journal!, appliance: config.appliance.id, config: push, log: this.#log, clock: asScheduler(this.#clock) }), section: JSON.stringify(push) };
  }

  /** A changed push: section (servers, windows, rate, credentials) restarts the pusher; it resumes from its cursor. */
  async #restartPushIfChanged(config: LoadedConfig): Promise<void> {
    if ((this.#pusher?.section ?? 'null') === JSON.stringify(config.raw.push ?? null)) return;
    await this.#pusher?.pusher.close();
    this.#pusher = undefined;
    this.#startPush(config);
    this.#log.info({ push: config.raw.push ? 'restarted' : 'stopped' }, 'push configuration changed');
  }

  /** SIEM exports read the journal after their own cursors, woken by its commits: no front door waits on them. */
  async #startSiem(config: LoadedConfig): Promise<void> {
    this.#siem = { exports: await startSiemExports(config.raw.siem, journalSource(this.#journal!), this.#log, { productVersion: VERSION }), section: JSON.stringify(config.raw.siem) };
  }

  /** A changed siem: section restarts the exports; each resumes from its cursor (a new one from the start). */
  async #restartSiemIfChanged(config: LoadedConfig): Promise<void> {
    if (this.#siem?.section === JSON.stringify(config.raw.siem)) return;
    await this.#siem?.exports.stop();
    await this.#startSiem(config);
    this.#log.info({ siem: config.raw.siem.map((x) => x.id) }, 'SIEM export configuration changed');
  }

  #importEnvelope(text: string, by: Operator) {
    const core = this.core;
    return importEnvelope(text, {
      config: core.config().raw.envelopes,
      ledger: this.#envelopes!,
      grants: core.grants,
      validateGrant: (g) => validateRuntimeGrant(core.config(), g),
      nowMs: this.#clock.now(),
      by,
    });
  }

  /** Envelope grants whose uses are all taken are revoked once their last session has ended. */
  #revokeSpentEnvelopes(): void {
    if (!this.#core || !this.#envelopes) return;
    try {
      const live = new Set(this.#core.sessions.list().map((s) => s.id));
      revokeSpent(this.#envelopes, this.#core.grants, live, { uid: process.getuid?.() ?? 0, user: 'penstock', verified: true });
    } catch (err) {
      this.#log.error({ err }, 'revoking spent envelope grants failed');
    }
  }

  /** Retention by size and age; the journal itself never removes what upstream has not acknowledged. */
  #applyRetention(): void {
    const r = this.core.config().raw.journal.retention;
    if (r.max_mib === undefined && r.max_age_days === undefined) return;
    try {
      const pruned = this.#journal!.prune({
        ...(r.max_mib !== undefined ? { maxBytes: r.max_mib * 2 ** 20 } : {}),
        ...(r.max_age_days !== undefined ? { maxAgeMs: r.max_age_days * 86_400_000 } : {}),
        acknowledgedBy: r.acknowledged_by,
      });
      if (pruned.removed > 0) this.#log.info({ removed: pruned.removed, first: pruned.first }, 'journal retention pruned acknowledged events');
    } catch (err) {
      this.#log.error({ err }, 'journal retention failed');
    }
  }

  #onSyncAudit(e: SyncAuditEvent): void {
    const journal = this.#journal!;
    if (e.kind === 'acknowledged') {
      void journal.append({ event: 'sync.acknowledged', detail: { by: e.by, seq: e.seq, checkpoint_size: e.checkpointSize } }).catch(() => {});
    } else if (e.kind === 'cosigned') {
      void journal.append({ event: 'sync.cosigned', detail: { by: e.by, size: e.size, witness: e.witness } }).catch(() => {});
    } else if (e.kind === 'auth_refused') {
      // Already folded per source by the sync server; the core's refusal path bounds the total.
      this.#syncRefusals?.record('auth.failed', e.remote, e.client, { reason: e.reason, folded: e.folded, ...(e.reasons ? { reasons: e.reasons } : {}) });
    }
  }

  #onJournalAlert(a: { kind: 'unavailable' | 'recovered'; reason: string }): void {
    if (a.kind === 'unavailable') {
      this.#log.error({ reason: a.reason }, 'ALERT journal cannot be written: privileged actions are refused');
      void this.#notifier.status(`DEGRADED: journal unavailable (${a.reason})`);
    } else {
      this.#log.warn({ reason: a.reason }, 'journal writable again');
      void this.#notifier.status('journal recovered');
    }
  }
}

/** The pusher backs off and waits on timers: an injected plain Clock gets the system's timers. */
function asScheduler(clock: Clock): Scheduler {
  return 'setTimeout' in clock ? (clock as Scheduler) : { ...systemScheduler, now: () => clock.now(), monotonic: () => clock.monotonic() };
}

function brief(i: ConfigIssue): string {
  return `${i.line}:${i.column} ${i.field}: ${i.message}`;
}

/** Some settings cannot change under a running daemon; a reload that changes them is refused, not half-applied. */
function unreloadable(current: LoadedConfig, next: LoadedConfig | undefined): { field: string; message: string } | undefined {
  if (!next) return undefined;
  const a = current.appliance;
  const b = next.appliance;
  for (const key of ['id', 'state_dir', 'journal_path', 'admin_socket', 'signing_key'] as const) {
    if (a[key] !== b[key]) return { field: `appliance.${key}`, message: `cannot change while running (restart the daemon to change ${key})` };
  }
  if (JSON.stringify(current.listeners) !== JSON.stringify(next.listeners)) {
    return { field: 'listeners', message: 'listeners cannot change while running (restart the daemon to change front doors)' };
  }
  return undefined;
}

function ensureDir(path: string, mode: number): void {
  mkdirSync(path, { recursive: true, mode });
}

function loadOrCreateSigningKey(path: string, log: Logger): string {
  if (existsSync(path)) return readFileSync(path, 'utf8');
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const pem = generateSigningKeyPem();
  writeFileSync(path, pem, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
  log.warn({ path }, 'generated a new appliance signing key');
  return pem;
}

function openVault(config: LoadedConfig, log: Logger): Vault {
  const needed = [...config.targets.values()].some((t) => t.credential !== undefined);
  try {
    return Vault.open(config.appliance.vault_file, config.appliance.vault_key_file);
  } catch (err) {
    if (!needed && isPenstockError(err, 'PS_VAULT')) {
      log.info('no vault key; no target needs a credential');
      return Vault.empty();
    }
    throw err;
  }
}
