// What the loader hands to the rest of the daemon: validated, cross-checked, with defaults filled in.
// Readers get one immutable snapshot; a reload builds a new one and swaps it whole (config/load.ts).
import type { GrantConfig, PrincipalConfig, RawConfig, TargetBase, ListenerBase } from './schema.ts';

/** One problem found in a config file, located by file, line and column, and named by field path. */
export interface ConfigIssue {
  file: string;
  line: number;
  column: number;
  /** Field path as written in the file, e.g. `grants[2].rules[0].<protocol>.min`. */
  field: string;
  message: string;
  severity: 'error' | 'warning';
  /** Stable code, where the issue has one (PS_CONFIG_TOO_LARGE, or a warning's W_… code): match on it, not on the message. */
  code?: string;
}

/** A target with its protocol options, validated by the adapter's own schema. */
export type TargetConfig = TargetBase & Record<string, unknown>;
/** A listener with its protocol options, validated by the adapter's own schema. */
export type ListenerConfig = ListenerBase & Record<string, unknown>;

export type PointType = 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'string';

/**
 * A named point of a device's map, from firmware-profiles/: the fields every protocol shares, and the
 * fields that say where the point is on the wire, which are the profile's protocol's own (its module's
 * `profilePoint.fields`: a register table and address, a node id…).
 */
export interface ProfilePoint {
  /** Dotted name, e.g. `setpoints.WMaxLimPct` or `status.St`. */
  name: string;
  description?: string;
  type: PointType;
  /** 16-bit words the point spans (1 for 16-bit, 2 for 32-bit; strings say their length). */
  words: number;
  /** Engineering value = raw * 10^scale_exponent (SunSpec style fixed scale) when given. */
  scale_exponent?: number;
  /**
   * Engineering value = raw * 10^(the value of this other point, read from the device): SunSpec's
   * run-time scale factors (`controls.WMaxLimPct_SF`). Bounds on such a point are checked only once
   * the gateway has read the factor; until then a bounded write is refused.
   */
  scale_factor?: string;
  units?: string;
  access: 'R' | 'RW';
  /** Safe engineering range for writes. */
  min?: number;
  max?: number;
  /** The protocol's own fields. */
  [field: string]: unknown;
}

export interface FirmwareProfile {
  name: string;
  vendor: string;
  model: string;
  firmware?: string;
  /** The protocol whose module reads the points' wire fields. */
  protocol: string;
  /** The public document the map was taken from. */
  source: string;
  /** Order of 16-bit words in 32-bit values: big (high word first, the SunSpec rule) or little. */
  word_order: 'big' | 'little';
  points: ProfilePoint[];
}

export interface HardwareProfile {
  name: string;
  description: string;
  state_dir: string;
  runtime_dir: string;
  journal_map_size_mib: number;
  /** RAM of the box (MiB): front doors size what unauthenticated clients may make them buffer from it. */
  memory_mib: number;
  service: { memory_max_mib: number; tasks_max: number };
  serial_ports: { name: string; device: string; kind: 'rs485' | 'rs232'; baud?: number }[];
  nics: { name: string; role: 'plant' | 'uplink' | 'management' }[];
  watchdog_seconds: number;
  key_storage: string;
}

export interface LoadedConfig {
  /** Absolute path of the file this snapshot was loaded from ('<embedded demo>' for the built-in one). */
  file: string;
  raw: RawConfig;
  appliance: RawConfig['appliance'] & { admin_socket: string; journal_path: string; signing_key: string; vault_file: string; vault_key_file: string };
  listeners: ListenerConfig[];
  principals: Map<string, PrincipalConfig>;
  targets: Map<string, TargetConfig>;
  grants: GrantConfig[];
  profiles: Map<string, FirmwareProfile>;
  hardware?: HardwareProfile;
  warnings: ConfigIssue[];
}
