// The Modbus tools an AI agent calls on the agent front door (adapters/types.ts AgentToolSpec): their arguments,
// results and which rules list them. Light, like the module: schemas and predicates only; agent-calls.ts
// runs them on the front door's shared links.
import { z } from 'zod';
import type { AgentToolSpec } from '../types.ts';
import { MODBUS_LIMITS as L } from './functions.ts';
import { ruleGrantsFunction } from './policy.ts';
import type { ModbusRuleConfig, ModbusTable } from './rules.ts';

/** The tables as the tools name them. */
export const AGENT_TABLES = { holding: 'holding_register', input: 'input_register', coil: 'coil', discrete: 'discrete_input' } as const satisfies Record<string, ModbusTable>;
export type AgentTable = keyof typeof AGENT_TABLES;

/** Registers one modbus_read may return (FC 3/4's limit), and bits (FC 1/2's). */
export const AGENT_READ_MAX = { registers: L.READ_REGISTERS_MAX, bits: L.READ_BITS_MAX } as const;
/** Registers one modbus_write may carry (FC 16's limit), and coils (FC 15's). */
export const AGENT_WRITE_MAX = { registers: L.WRITE_REGISTERS_MAX, coils: L.WRITE_COILS_MAX } as const;

const target = z.string().min(1).describe('Id of a Modbus target the grant names');
const unit = z.number().int().min(0).max(255).optional().describe('Modbus unit id toward the target (default: the target\'s configured unit)');
const point = z.string().min(1).max(256).describe('Name of a point of the target\'s firmware profile, e.g. controls.WMaxLimPct');
const address = z.number().int().min(0).max(L.ADDRESS_SPACE - 1).describe('0-based protocol address of the first register or bit (as on the wire, not 40001-style)');

export const modbusReadInput = z.strictObject({
  target,
  unit,
  point: point.optional(),
  table: z.enum(['holding', 'input', 'coil', 'discrete']).optional().describe('With address and count, instead of point'),
  address: address.optional(),
  count: z.number().int().min(1).max(AGENT_READ_MAX.bits).optional().describe(`How many registers (at most ${AGENT_READ_MAX.registers}) or bits (at most ${AGENT_READ_MAX.bits}); default 1`),
});
export type ModbusReadArgs = z.output<typeof modbusReadInput>;

export const modbusWriteInput = z.strictObject({
  target,
  unit,
  point: point.optional(),
  value: z.union([z.number(), z.boolean()]).optional().describe('With point: the value in the point\'s engineering units (a coil: true/false or 1/0)'),
  table: z.enum(['holding', 'coil']).optional().describe('With address and values, instead of point and value'),
  address: address.optional(),
  values: z.array(z.union([z.number().int().min(0).max(0xffff), z.boolean()])).min(1).max(AGENT_WRITE_MAX.coils).optional()
    .describe(`Raw values from address on: registers 0-65535 (at most ${AGENT_WRITE_MAX.registers}) or coils true/false/1/0 (at most ${AGENT_WRITE_MAX.coils})`),
});
export type ModbusWriteArgs = z.output<typeof modbusWriteInput>;

/** What a read by point also says: the point and its value in engineering units. */
const pointResult = z.strictObject({
  name: z.string(),
  type: z.string(),
  access: z.enum(['R', 'RW']),
  units: z.string().optional(),
  description: z.string().optional(),
  /** Engineering units; a string point's text; null while its scale factor cannot be read from the device. */
  value: z.union([z.number(), z.string(), z.null()]),
  /** The exponent applied (value = raw × 10^exponent): fixed, or read from the device; null while unreadable. */
  scale_exponent: z.number().int().nullable().optional(),
  /** The point the exponent was read from (SunSpec *_SF), when the scale is a register of the device. */
  scale_factor: z.string().optional(),
});

const location = {
  target: z.string(),
  unit: z.number().int(),
  table: z.enum(['holding', 'input', 'coil', 'discrete']),
  address: z.number().int(),
  count: z.number().int(),
};

export const modbusReadOutput = z.strictObject({
  ...location,
  /** Raw registers (0-65535) or bits (0/1) from address on, as the device answered. */
  values: z.array(z.number().int()),
  point: pointResult.optional(),
});

export const modbusWriteOutput = z.strictObject({
  ...location,
  function_code: z.number().int(),
  /** The raw values written from address on. */
  written: z.array(z.number().int()),
  point: pointResult.pick({ name: true, type: true, units: true, value: true, scale_exponent: true, scale_factor: true }).optional(),
  /** The values read just before the write (targets with read_back_before_write). */
  old_values: z.array(z.number().int()).optional(),
});

const READ_FUNCTIONS = [1, 2, 3, 4] as const;
const WRITE_FUNCTIONS = [5, 6, 15, 16] as const;

/** Whether the rule grants a function the tool sends (its units, tables, addresses and bounds are policy's to check per call). */
function grantsAny(rule: ModbusRuleConfig, fcs: readonly number[], dir: 'read' | 'write'): boolean {
  return fcs.some((fc) => ruleGrantsFunction(rule, fc, dir));
}

export const modbusAgentTools: readonly AgentToolSpec<ModbusRuleConfig>[] = [
  {
    name: 'modbus_read',
    title: 'Read Modbus registers or a device point',
    description: [
      'Read from a Modbus device through the gateway, as your grant allows.',
      'By point: {"target":"inverter-1","point":"inverter.W"} reads the firmware-profile point and returns its value in engineering units',
      '(scaled as the profile says; a SunSpec *_SF scale factor is read from the device), its units and the raw registers.',
      `By address: {"target":"plc-1","table":"holding","address":100,"count":10} returns raw values; table is holding, input, coil or discrete;`,
      `count is at most ${AGENT_READ_MAX.registers} registers or ${AGENT_READ_MAX.bits} bits. Addresses are 0-based. unit defaults to the target's.`,
      'Errors have a code: unknown_target, unknown_point, no_profile, invalid_arguments, count_too_large, device_exception (detail.exception: the Modbus exception code), device_timeout, device_unavailable.',
    ].join(' '),
    input: modbusReadInput,
    output: modbusReadOutput,
    readOnly: true,
    listedBy: (rule) => grantsAny(rule, READ_FUNCTIONS, 'read'),
  },
  {
    name: 'modbus_write',
    title: 'Write Modbus registers or a device point',
    description: [
      'Write to a Modbus device through the gateway, as your grant allows; the write is journaled before it is sent.',
      'By point: {"target":"inverter-1","point":"controls.WMaxLimPct","value":80} converts the value from engineering units to the raw registers',
      '(with the profile\'s scale, or the SunSpec *_SF factor read from the device) and refuses, without sending, a value outside the point\'s min/max',
      '(value_out_of_range), one its register type cannot hold (value_exceeds_type) or finer than its resolution (value_too_precise).',
      `By address: {"target":"plc-1","table":"holding","address":100,"values":[1,2]} writes raw registers (at most ${AGENT_WRITE_MAX.registers}; function 6 for one, 16 for more)`,
      `or coils with table "coil" (true/false; at most ${AGENT_WRITE_MAX.coils}; function 5 or 15). Addresses are 0-based.`,
      'A write that needs a person\'s approval returns the pending approval; call again with the same arguments once approved.',
      'Errors have a code: unknown_target, unknown_point, point_read_only, no_profile, invalid_arguments, count_too_large, scale_factor_unavailable, device_exception, device_timeout, device_unavailable.',
    ].join(' '),
    input: modbusWriteInput,
    output: modbusWriteOutput,
    readOnly: false,
    listedBy: (rule) => grantsAny(rule, WRITE_FUNCTIONS, 'write'),
  },
];
