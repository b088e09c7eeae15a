// Shared fixtures for policy tests: grants go through the real config schema, so defaults
// (effect: allow) and range forms ("100-110") are what the loader would produce.
import { grantSchema, principalSchema } from '../../src/config/schema.ts';
import type { FirmwareProfile, TargetConfig } from '../../src/config/types.ts';
import type { HeldGrant } from '../../src/grants/types.ts';
import type { DecisionContext } from '../../src/policy/decide.ts';

export const T0 = Date.parse('2026-06-15T10:00:00Z');

export const modbusProfile: FirmwareProfile = {
  name: 'inverter-x',
  vendor: 'Example',
  model: 'X',
  protocol: 'modbus',
  source: 'test fixture',
  word_order: 'big',
  points: [
    { name: 'setpoints.WMaxLimPct', table: 'holding_register', address: 40100, type: 'uint16', words: 1, scale_exponent: -1, units: '%', access: 'RW', min: 0, max: 100 },
    { name: 'setpoints.VRef', table: 'holding_register', address: 40102, type: 'float32', words: 2, units: 'V', access: 'RW', min: 200, max: 260 },
    { name: 'setpoints.Offset', table: 'holding_register', address: 40104, type: 'int32', words: 2, access: 'RW', min: -10, max: 10 },
    { name: 'setpoints.deep.X', table: 'holding_register', address: 40106, type: 'uint16', words: 1, access: 'RW' },
    { name: 'status.St', table: 'holding_register', address: 40110, type: 'uint16', words: 1, access: 'R' },
    { name: 'status.W', table: 'holding_register', address: 40111, type: 'int16', words: 1, access: 'R' },
    { name: 'controls.Enable', table: 'coil', address: 10, type: 'uint16', words: 1, access: 'RW' },
    // SunSpec style: scaled by another register of the device, read at run time.
    { name: 'limits.VArPct', table: 'holding_register', address: 40120, type: 'uint16', words: 1, scale_factor: 'limits.VArPct_SF', units: '%', access: 'RW', min: 0, max: 100 },
    { name: 'limits.VArPct_SF', table: 'holding_register', address: 40121, type: 'int16', words: 1, access: 'R' },
  ],
};

export const littleEndianProfile: FirmwareProfile = { ...modbusProfile, name: 'inverter-le', word_order: 'little' };

export const opcuaProfile: FirmwareProfile = {
  name: 'boiler',
  vendor: 'Example',
  model: 'B',
  protocol: 'opcua',
  source: 'test fixture',
  word_order: 'big',
  points: [
    { name: 'drum.level', node: 'ns=1;s=boiler/Drum/Level', type: 'float32', words: 2, access: 'R' },
    { name: 'setpoints.temp', node: 'ns=1;s=boiler/Setpoint', type: 'float32', words: 2, access: 'RW', min: 0, max: 80 },
  ],
};

export const profiles: ReadonlyMap<string, FirmwareProfile> = new Map([
  ['inverter-x', modbusProfile],
  ['inverter-le', littleEndianProfile],
  ['boiler', opcuaProfile],
]);

export const targets: ReadonlyMap<string, TargetConfig> = new Map<string, TargetConfig>([
  ['plc-1', { id: 'plc-1', protocol: 'modbus', zone: 'cell-1', profile: 'inverter-x' }],
  ['plc-le', { id: 'plc-le', protocol: 'modbus', zone: 'cell-1', profile: 'inverter-le' }],
  ['plc-raw', { id: 'plc-raw', protocol: 'modbus', zone: 'cell-1' }],
  ['hmi-1', { id: 'hmi-1', protocol: 'opcua', zone: 'cell-1', profile: 'boiler' }],
  ['gw-1', { id: 'gw-1', protocol: 'ssh', zone: 'cell-1' }],
]);

export const principal = principalSchema.parse({ id: 'vendor-a', kind: 'vendor', owner: 'Example GmbH', purpose: 'maintenance' });

/** A config grant for vendor-a from rules as written in YAML. */
export function grant(id: string, rules: unknown[], extra: Record<string, unknown> = {}): HeldGrant {
  const g = grantSchema.parse({ id, principal: 'vendor-a', targets: ['plc-1', 'plc-le', 'plc-raw', 'hmi-1', 'gw-1'], task: { ticket: 'WO-1' }, rules, ...extra });
  return { ...g, source: 'config' };
}

export function ctx(grants: HeldGrant[], now = T0, p = principal): DecisionContext {
  return { principal: p, grants, now, profiles, targets };
}

/** Registers of a 32-bit value, high word first. */
export function words32(kind: 'float32' | 'int32' | 'uint32', v: number): [number, number] {
  const b = Buffer.alloc(4);
  if (kind === 'float32') b.writeFloatBE(v);
  else if (kind === 'int32') b.writeInt32BE(v);
  else b.writeUInt32BE(v);
  return [b.readUInt16BE(0), b.readUInt16BE(2)];
}
