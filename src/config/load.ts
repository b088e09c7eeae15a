// Load the config file into one immutable snapshot, or report every problem in it.
//
// Pure: it reads files and returns a new snapshot or issues; it never changes anything it was given and
// never half-applies. Reload is: load a new snapshot, and if it loads, the daemon swaps it in whole.
//
// Order: YAML syntax → schema (config/schema.ts) → each listener and target by its protocol's own schema
// → cross-references and warnings (config/check.ts) → firmware and hardware profiles → defaults.
// All stages run even when an earlier one found problems (except after a YAML syntax error), so one
// run lists everything wrong.
import { resolve, posix } from 'node:path';
import type { Clock } from '../common/clock.ts';
import { PenstockError } from '../common/errors.ts';
import type { ProtocolSchemas } from '../adapters/types.ts';
import { configSchema, type RawConfig } from './schema.ts';
import type { ConfigIssue, FirmwareProfile, HardwareProfile, ListenerConfig, LoadedConfig, TargetConfig } from './types.ts';
import { checkFirmwareProfile, DEFAULT_PROFILES_DIR } from './profiles.ts';
import { checkHardwareProfile, DEFAULT_HARDWARE_DIR } from './hardware.ts';
import { crossCheck } from './check.ts';
import { dedupe, deepFreeze, sortIssues, hasErrors, issueAt, readBoundedText, readYaml, throwIfErrors, valueAt, zodToIssues, type UnreadableText, type YamlSource } from './yaml-issues.ts';
import { MAX_CONFIG_BYTES } from './limits.ts';

export { formatIssue } from './yaml-issues.ts';
export { MAX_CONFIG_BYTES } from './limits.ts';

/** A config file's text read with this process's rights, bounded like a config (for sending to config.check). */
export function readConfigText(file: string): { text: string } | UnreadableText {
  return readBoundedText(file, MAX_CONFIG_BYTES);
}

export interface LoadOptions {
  /** Folder of firmware profiles (default: firmware-profiles/ of this installation). */
  profilesDir?: string;
  /** Folder of hardware profiles (default: hardware/ of this installation). */
  hardwareDir?: string;
  /** The file's content, when the caller already has it (the file is then not read, only named). */
  text?: string;
  /** Time source for expiry warnings (default: the system clock). */
  clock?: Pick<Clock, 'now'>;
  /**
   * Grants issued at run time (admin socket), checked as if appended to the file's `grants` list:
   * their issues name `grants[N]…` with N = the file's grant count onward, located at the file's `grants` key.
   */
  extraGrants?: readonly unknown[];
}

export interface CheckResult {
  /** Present only when there are no errors. */
  config?: LoadedConfig;
  /** Every error and warning, in file order per file. */
  issues: ConfigIssue[];
  /** True when the file itself could not be read (loadConfig then throws PS_CONFIG_READ, or PS_CONFIG_TOO_LARGE). */
  unreadable?: boolean;
  /** True when the file or text is larger than MAX_CONFIG_BYTES. */
  tooLarge?: boolean;
}

/** The top-level keys of a config file: a map with none of them is some other file, and is not quoted. */
const CONFIG_KEYS = Object.keys(configSchema.shape);

/** Defaults that have no better source than a constant. */
export const VAULT_KEY_FILE_DEFAULT = '/etc/penstock/vault.key';

/**
 * Validate a config file without throwing for anything wrong in it.
 * Returns the snapshot (and its warnings) when there are no errors.
 */
export function checkConfig(file: string, protocols: ProtocolSchemas, opts: LoadOptions = {}): CheckResult {
  const path = resolve(file);
  const { source: fileSource, issues: yamlIssues, unreadable, tooLarge } = readYaml(path, opts.text, { maxBytes: MAX_CONFIG_BYTES, knownKeys: CONFIG_KEYS });
  if (!fileSource) return { issues: yamlIssues, ...(unreadable ? { unreadable } : {}), ...(tooLarge ? { tooLarge } : {}) };
  const source = withExtraGrants(fileSource, opts.extraGrants);
  const issues: ConfigIssue[] = [...yamlIssues];

  const parsed = configSchema.safeParse(source.data);
  if (!parsed.success) issues.push(...zodToIssues(source, parsed.error.issues));

  const listeners = validateByProtocol<ListenerConfig>(source, 'listeners', protocols, issues);
  const targets = validateByProtocol<TargetConfig>(source, 'targets', protocols, issues);

  // Firmware profiles named by targets (only those: an unused bad file elsewhere does not block start-up).
  const profiles = new Map<string, FirmwareProfile | null>();
  for (const t of asList(valueAt(source.data, ['targets']))) {
    const name = (t as { profile?: unknown } | null)?.profile;
    if (typeof name !== 'string' || profiles.has(name)) continue;
    const r = checkFirmwareProfile(name, opts.profilesDir ?? DEFAULT_PROFILES_DIR);
    const missing = r.missing === true;
    if (!missing) issues.push(...r.issues);
    // Missing: undefined (reported on the target as "no profile"); invalid: null (its file's issues above).
    if (r.profile) profiles.set(name, r.profile);
    else if (!missing) profiles.set(name, null);
  }

  let hardware: HardwareProfile | undefined;
  const hwName = valueAt(source.data, ['appliance', 'hardware']);
  if (typeof hwName === 'string') {
    const r = checkHardwareProfile(hwName, opts.hardwareDir ?? DEFAULT_HARDWARE_DIR);
    if (r.missing) issues.push(issueAt(source, ['appliance', 'hardware'], `no hardware profile ${hwName}`));
    else if (!r.hardware) {
      issues.push(...r.issues);
      issues.push(issueAt(source, ['appliance', 'hardware'], `hardware profile ${hwName} could not be loaded (see the issues in its file)`));
    } else {
      issues.push(...r.issues);
      hardware = r.hardware;
    }
  }

  issues.push(...crossCheck({ source, profiles, now: (opts.clock ?? { now: Date.now }).now() }));

  const all = sortIssues(dedupe(issues), path);
  if (hasErrors(all) || !parsed.success) return { issues: all };
  const loaded = new Map([...profiles].filter((e): e is [string, FirmwareProfile] => e[1] !== null));
  const config = buildSnapshot(path, source, parsed.data, listeners, targets, loaded, hardware, all.filter((i) => i.severity === 'warning'));
  return { config, issues: all };
}

/** Load a config file into an immutable snapshot; throws PS_CONFIG_INVALID with `details.issues` listing all issues. */
export function loadConfig(file: string, protocols: ProtocolSchemas, opts: LoadOptions = {}): LoadedConfig {
  const { config, issues, unreadable, tooLarge } = checkConfig(file, protocols, opts);
  if (unreadable) throw new PenstockError(tooLarge ? 'PS_CONFIG_TOO_LARGE' : 'PS_CONFIG_READ', issues[0]?.message ?? 'cannot read the configuration', { file: resolve(file), issues });
  throwIfErrors(`invalid configuration ${resolve(file)}`, issues);
  return config!;
}

function withExtraGrants(source: YamlSource, extra: readonly unknown[] | undefined): YamlSource {
  const data = source.data;
  if (!extra?.length || data === null || typeof data !== 'object' || Array.isArray(data)) return source;
  const grants = (data as { grants?: unknown }).grants;
  return { ...source, data: { ...data, grants: [...asList(grants), ...extra] } };
}

function asList(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** Each listener/target again, by its protocol's own strict schema; an unknown protocol is an error. */
function validateByProtocol<T extends ListenerConfig | TargetConfig>(source: YamlSource, section: 'listeners' | 'targets', protocols: ProtocolSchemas, issues: ConfigIssue[]): T[] {
  const out: T[] = [];
  const known = [...protocols.keys()].sort().join(', ') || '(none registered)';
  asList(valueAt(source.data, [section])).forEach((item, i) => {
    const protocol = (item as { protocol?: unknown } | null)?.protocol;
    if (typeof protocol !== 'string') return; // the base schema reports it
    const schemas = protocols.get(protocol);
    if (!schemas) {
      issues.push(issueAt(source, [section, i, 'protocol'], `unknown protocol ${protocol} (known: ${known})`));
      return;
    }
    const r = (section === 'listeners' ? schemas.listenerSchema : schemas.targetSchema).safeParse(item);
    if (r.success) out.push(r.data as T);
    else issues.push(...zodToIssues(source, r.error.issues, [section, i]));
  });
  return out;
}

/**
 * Defaults, in one place. Precedence for state_dir, runtime_dir and journal.map_size_mib: the config file
 * if it sets the key, else the hardware profile, else the schema's default. Whether the file sets a key is
 * read from the YAML document itself, since the schema has already filled its defaults in.
 */
function buildSnapshot(file: string, source: YamlSource, parsed: RawConfig, listeners: ListenerConfig[], targets: TargetConfig[], profiles: Map<string, FirmwareProfile>, hardware: HardwareProfile | undefined, warnings: ConfigIssue[]): LoadedConfig {
  const written = (...path: string[]) => valueAt(source.data, path) !== undefined;
  const applianceRaw = { ...parsed.appliance };
  const journalRaw = { ...parsed.journal };
  if (hardware) {
    if (!written('appliance', 'state_dir')) applianceRaw.state_dir = hardware.state_dir;
    if (!written('appliance', 'runtime_dir')) applianceRaw.runtime_dir = hardware.runtime_dir;
    if (!written('journal', 'map_size_mib')) journalRaw.map_size_mib = hardware.journal_map_size_mib;
  }
  const raw: RawConfig = { ...parsed, appliance: applianceRaw, journal: journalRaw, listeners, targets };
  const state = applianceRaw.state_dir;
  const appliance = {
    ...applianceRaw,
    admin_socket: raw.admin.socket ?? posix.join(applianceRaw.runtime_dir, 'admin.sock'),
    journal_path: raw.journal.path ?? posix.join(state, 'journal'),
    signing_key: raw.journal.signing_key ?? posix.join(state, 'keys', 'appliance-ed25519.pem'),
    vault_file: raw.vault.file ?? posix.join(state, 'vault.json'),
    vault_key_file: raw.vault.key_file ?? VAULT_KEY_FILE_DEFAULT,
  };
  const config: LoadedConfig = {
    file,
    raw,
    appliance,
    listeners,
    principals: new Map(raw.principals.map((p) => [p.id, p])),
    targets: new Map(targets.map((t) => [t.id, t])),
    grants: raw.grants,
    profiles,
    warnings,
  };
  if (hardware) config.hardware = hardware;
  return deepFreeze(config);
}
