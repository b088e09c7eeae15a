// What a Modbus grant and a Modbus action look like, as schemas; the TypeScript types are derived from
// them, so a rule read from YAML, an action object sent by `penstockctl policy check` and the object the
// front door builds are one shape. Pure data: no wire code, nothing else of the config.
import type { FirmwareProfile, ProfilePoint } from '../../config/types.ts';
import { z } from 'zod';
import { effect, nonEmpty, rangeListSchema } from '../../config/schema-parts.ts';

export const modbusTables = ['coil', 'discrete_input', 'input_register', 'holding_register'] as const;
export const modbusPresets = ['readonly', 'readwrite', 'programming'] as const;
export type ModbusTable = (typeof modbusTables)[number];

/**
 * A Modbus rule. `access` read covers the read functions of the table(s), write the write functions.
 * `preset` names a function-code set (readonly: 1-4, 7, 11, 12, 20, 24, 43/14; readwrite adds 5, 6, 15, 16,
 * 22, 23; programming: the diagnostic, file-record and vendor programming codes, granted only by name).
 * `points` names firmware-profile points (globs such as `setpoints.*`) instead of raw `addresses`.
 * `min`/`max` bound written values: raw register values, or engineering units when `points` is used.
 */
export const modbusRuleSchema = z.strictObject({
  effect,
  preset: z.enum(modbusPresets).optional(),
  access: z.enum(['read', 'write', 'readwrite']).optional(),
  units: z.array(z.number().int().min(0).max(255)).min(1).optional(),
  tables: z.array(z.enum(modbusTables)).min(1).optional(),
  addresses: rangeListSchema.optional(),
  points: z.array(nonEmpty).min(1).optional(),
  function_codes: z.array(z.number().int().min(1).max(127)).min(1).optional(),
  min: z.number().optional(),
  max: z.number().optional(),
}).superRefine((r, ctx) => {
  if (!r.preset && !r.access && !r.function_codes) ctx.addIssue({ code: 'custom', message: 'a modbus rule needs `preset`, `access` or `function_codes`' });
  if (r.addresses && r.points) ctx.addIssue({ code: 'custom', path: ['points'], message: 'use either `addresses` or `points`, not both' });
  if (r.min !== undefined && r.max !== undefined && r.min > r.max) ctx.addIssue({ code: 'custom', path: ['min'], message: `min ${r.min} exceeds max ${r.max}` });
});
export type ModbusRuleConfig = z.output<typeof modbusRuleSchema>;

/**
 * What a Modbus request becomes for policy: (unit, function, table, address range, values), never an
 * MBAP header. Bounds are the data model's (unit 0-255, codes 1-127, 65536 items); whether they fit the
 * function (a table it addresses, a range inside the space) is policy's check, which denies a misfit
 * as `malformed`. `quantity` is 0 for functions that address no table (diagnostics, device identification).
 */
export const modbusObjectSchema = z.strictObject({
  kind: z.literal('modbus'),
  unit: z.number().int().min(0).max(255),
  functionCode: z.number().int().min(1).max(127),
  /** Null for function codes that address no table (diagnostics, device identification, programming). */
  table: z.enum(modbusTables).nullable(),
  address: z.number().int().min(0).max(65535),
  quantity: z.number().int().min(0).max(65536),
  /** Raw register (0..65535) or coil (0/1) values of a write, in address order. */
  values: z.array(z.number().int().min(0).max(65535)).max(2000).optional(),
  /**
   * Run-time scale factors the gateway read from the device for this write (profile point name →
   * exponent), so bounds on points with a `scale_factor` compare engineering values. Their range is
   * policy's check (an out-of-range exponent is a malformed action, not a schema error).
   */
  scaleFactors: z.record(z.string().min(1).max(256), z.number().int()).optional(),
  /** FC 22: the AND and OR masks, instead of values (what lands depends on the register's content). */
  masks: z.strictObject({ and: z.number().int().min(0).max(0xffff), or: z.number().int().min(0).max(0xffff) }).optional(),
  /** FC 20/21: the file the record belongs to (`address` is the record number). */
  fileNumber: z.number().int().min(0).max(0xffff).optional(),
});
export type ModbusObject = z.output<typeof modbusObjectSchema>;

/** A firmware-profile point of a device on this protocol: the shared fields, and where it sits in the tables. */
export type ModbusPoint = ProfilePoint & { table?: ModbusTable; address?: number };

/** The points of a profile of this protocol (config/profiles.ts checked them against checks.ts's fields). */
export function modbusPoints(profile: FirmwareProfile): readonly ModbusPoint[] {
  return profile.points as ModbusPoint[];
}
