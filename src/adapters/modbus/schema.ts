// Config schemas of Modbus listeners and targets (validated by config/load.ts through the registry).
import { z } from 'zod';
import { listenerBaseSchema, targetBaseSchema } from '../../config/schema-parts.ts';

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/);

/**
 * A Modbus target: a PLC on TCP (`host`/`port`) or on a serial line (`serial`, Modbus RTU, usually
 * RS-485). Several vendor sessions to one target share one upstream connection.
 */
export const modbusTargetSchema = targetBaseSchema.extend({
  protocol: z.literal('modbus'),
  host: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).default(502),
  serial: z.strictObject({
    device: z.string().min(1),
    baud: z.number().int().positive().default(19200),
    parity: z.enum(['none', 'even', 'odd']).default('even'),
    data_bits: z.union([z.literal(7), z.literal(8)]).default(8),
    stop_bits: z.union([z.literal(1), z.literal(2)]).default(1),
  }).optional(),
  /** Unit id the PLC answers to, when the route does not say one. */
  unit: z.number().int().min(0).max(255).default(1),
  timeout_ms: z.number().int().min(10).max(60_000).default(1000),
  /** Read the registers just before a write and journal old → new values. */
  read_back_before_write: z.boolean().default(false),
  /**
   * Modbus/TCP only: requests the shared link may have outstanding at once (pipelining, told apart by
   * the rewritten transaction ids). 1 suits PLCs that handle one request at a time; a serial line is always 1.
   */
  max_in_flight: z.number().int().min(1).max(32).default(1),
}).strict().superRefine((t, ctx) => {
  if ((t.host === undefined) === (t.serial === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['host'], message: 'a modbus target needs exactly one of `host` (Modbus/TCP) or `serial` (Modbus RTU)' });
  }
});
export type ModbusTargetConfig = z.infer<typeof modbusTargetSchema>;

/**
 * A Modbus front door. `mode: tls` is Modbus/TCP Security (mutual TLS; the client certificate names the
 * principal). `mode: tcp` is the weak mode for tools that cannot speak TLS: a connection is tied to a
 * principal only by its source address (`bindings`) and that principal's active grants.
 */
export const modbusListenerSchema = listenerBaseSchema.extend({
  protocol: z.literal('modbus'),
  mode: z.enum(['tls', 'tcp']).default('tls'),
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1), client_ca: z.string().min(1) }).optional(),
  /** Unit id seen by the client → target (and the unit id to use upstream). */
  routes: z.array(z.strictObject({ unit: z.number().int().min(0).max(255), target: id, target_unit: z.number().int().min(0).max(255).optional() })).min(1),
  bindings: z.array(z.strictObject({ source: z.string().min(1), principal: id })).optional(),
  max_connections: z.number().int().min(1).default(32),
  idle_seconds: z.number().int().min(1).default(300),
  /** A connection holding a partial frame this long is closed (slow-loris). */
  frame_timeout_ms: z.number().int().min(100).max(60_000).default(5000),
  /**
   * mode tls: the Modbus/TCP Security roles (certificate extension 1.3.6.1.4.1.50316.802.1) this listener
   * accepts. When set, a client certificate without one of them is refused; when absent, any role (or
   * none) is accepted and recorded.
   */
  roles: z.array(z.string().min(1)).min(1).optional(),
}).strict().superRefine((l, ctx) => {
  if (l.mode === 'tls' && !l.tls) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'mode tls needs `tls: { cert, key, client_ca }`' });
  if (l.mode === 'tcp' && !l.bindings?.length) ctx.addIssue({ code: 'custom', path: ['bindings'], message: 'mode tcp needs `bindings` (source address → principal): plain Modbus/TCP has no other identity' });
  if (l.mode === 'tcp' && l.roles) ctx.addIssue({ code: 'custom', path: ['roles'], message: 'roles apply only to mode tls (they come from the client certificate)' });
  if (l.mode === 'tls' && l.bindings) ctx.addIssue({ code: 'custom', path: ['bindings'], message: 'bindings apply only to mode tcp; in mode tls the client certificate names the principal' });
  const seen = new Set<number>();
  l.routes.forEach((r, i) => {
    if (seen.has(r.unit)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'unit'], message: `unit ${r.unit} is routed twice` });
    seen.add(r.unit);
  });
});
export type ModbusListenerConfig = z.infer<typeof modbusListenerSchema>;
