// The `alerts:` section: per alert kind, whether its detector runs, its thresholds, and what
// containment does when it fires (`action`, default log). Defaults suit a plant: a vendor's normal
// maintenance visit raises nothing; a scan, an IT→OT hop or a setpoint far off its usual band does.
// src/alerts/detectors/<kind>.ts read these; docs/alerts.md explains each threshold.
import { z } from 'zod';
import { CONTAINMENT_ACTIONS } from '../alerts/types.ts';

const seconds = z.number().int().min(1);
const count = z.number().int().min(1);

/** Fields every kind has: on or off, how long one incident stays quiet after its alert, containment. */
function kind<T extends z.ZodRawShape>(quietSeconds: number, shape: T) {
  return z.strictObject({
    enabled: z.boolean().default(true),
    /** After an alert, the same incident (same principal, session or point) raises nothing for this long. */
    quiet_seconds: seconds.default(quietSeconds),
    action: z.enum(CONTAINMENT_ACTIONS).default('log'),
    ...shape,
  });
}

export const alertsSchema = z.strictObject({
  new_target: kind(600, {}).prefault({}),
  privilege_expansion: kind(600, {}).prefault({}),
  out_of_window: kind(600, {}).prefault({}),
  unexpected_delegation: kind(600, {}).prefault({}),
  probing: kind(60, {
    /** Denials of one principal within window_seconds that make a burst. */
    denials: count.default(10),
    window_seconds: seconds.default(10),
    /** Retries with a slightly different object (the next address, node or argument) after a denial. */
    retries: count.default(3),
    retry_window_seconds: seconds.default(60),
  }).prefault({}),
  cross_zone: kind(600, {
    /** Targets in two zones touched by one principal within this many seconds. */
    window_seconds: seconds.default(600),
  }).prefault({}),
  programming: kind(600, {}).prefault({}),
  unusual_write: kind(600, {
    /** How far outside the observed [min, max] a value may go, in widths of that range (at least 1 unit wide). */
    band_factor: z.number().positive().default(1),
    /** Writes a point needs before its band is trusted. */
    min_samples: count.default(10),
    /** Recent journal events read at start to learn bands from. */
    history_events: z.number().int().min(0).default(20_000),
    /** Points whose bands are kept (the least recently written go first). */
    max_points: count.default(10_000),
  }).prefault({}),
}).prefault({});

export type AlertsConfig = z.output<typeof alertsSchema>;
