// Small strict listener/target schemas for modbus, ssh and opcua, standing in for the adapters'
// own schemas (config/load.ts must not import adapters; the real ones bring theirs).
import { z } from 'zod';
import type { ProtocolSchemas } from '../../src/adapters/types.ts';
import { listenerBaseSchema, targetBaseSchema } from '../../src/config/schema.ts';

const host = z.string().min(1);
const port = z.number().int().min(1).max(65535);

export const testProtocols: ProtocolSchemas = new Map([
  ['modbus', {
    listenerSchema: z.strictObject({ ...listenerBaseSchema.shape, protocol: z.literal('modbus'), tls: z.strictObject({ cert: z.string(), key: z.string() }).optional() }),
    targetSchema: z.strictObject({
      ...targetBaseSchema.shape, protocol: z.literal('modbus'), host, port,
      unit: z.number().int().min(0).max(255).default(1),
      read_back_before_write: z.boolean().default(false),
    }),
  }],
  ['ssh', {
    listenerSchema: z.strictObject({ ...listenerBaseSchema.shape, protocol: z.literal('ssh'), host_key: z.string().min(1) }),
    targetSchema: z.strictObject({ ...targetBaseSchema.shape, protocol: z.literal('ssh'), host, port: port.default(22), user: z.string().min(1) }),
  }],
  ['opcua', {
    listenerSchema: z.strictObject({ ...listenerBaseSchema.shape, protocol: z.literal('opcua') }),
    targetSchema: z.strictObject({ ...targetBaseSchema.shape, protocol: z.literal('opcua'), endpoint: z.string().regex(/^opc\.tcp:\/\//, 'must be an opc.tcp:// URL') }),
  }],
]);
