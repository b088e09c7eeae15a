// Schema pieces every part of the config uses, protocol modules' rule schemas included. It imports no
// other config file, so a protocol module can use it while config/schema.ts imports the module table.
import { z } from 'zod';
import { ISSUE_CODES } from './issue-codes.ts';

export const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'must be 1-64 letters, digits, dot, dash, colon or underscore, starting with a letter or digit');
export const nonEmpty = z.string().min(1);
export const port = z.number().int().min(1).max(65535);
export const isoTime = z.string().refine((s) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(s) && !Number.isNaN(Date.parse(s)), 'must be an ISO 8601 time with a zone, e.g. 2026-11-25T08:00:00Z');
export const effects = ['allow', 'deny', 'approve'] as const;
export const effect = z.enum(effects).default('allow');

/** Inclusive numeric range. YAML accepts `100`, `"100-110"` or `{ from: 100, to: 110 }`. */
export interface Range {
  from: number;
  to: number;
}
export const rangeSchema = z.union([
  z.number().int().min(0).transform((n) => ({ from: n, to: n })),
  z.string().regex(/^\s*\d+\s*-\s*\d+\s*$/, 'must be a number or a range "FROM-TO"').transform((s) => {
    const [a, b] = s.split('-').map((x) => Number(x.trim()));
    return { from: a!, to: b! };
  }),
  z.strictObject({ from: z.number().int().min(0), to: z.number().int().min(0) }),
]).superRefine((r, ctx) => {
  if (r.from > r.to) ctx.addIssue({ code: 'custom', message: `inverted range ${r.from}-${r.to}: FROM must not exceed TO`, params: { code: ISSUE_CODES.rangeInverted } });
});

/** A list of ranges that must not overlap each other (an overlap is nearly always a typo). */
export const rangeListSchema = z.array(rangeSchema).min(1).superRefine((ranges, ctx) => {
  const sorted = ranges.map((r, i) => ({ ...r, i })).sort((a, b) => a.from - b.from);
  for (let k = 1; k < sorted.length; k++) {
    const prev = sorted[k - 1]!;
    const cur = sorted[k]!;
    if (cur.from <= prev.to) {
      ctx.addIssue({ code: 'custom', path: [cur.i], message: `range ${cur.from}-${cur.to} overlaps range ${prev.from}-${prev.to}`, params: { code: ISSUE_CODES.rangeOverlap } });
    }
  }
});

/** Common target fields; protocol options are validated by the adapter's own schema. */
export const targetBaseSchema = z.object({
  id,
  protocol: nonEmpty,
  zone: nonEmpty,
  /** Firmware profile name (a file in firmware-profiles/ without extension). */
  profile: id.optional(),
  /** Credential Penstock uses toward the target: `vault:NAME`. */
  credential: z.string().regex(/^vault:[A-Za-z0-9._-]+$/, 'must be a vault reference vault:NAME').optional(),
  description: z.string().optional(),
});
export type TargetBase = z.infer<typeof targetBaseSchema>;

/** Common listener fields; protocol options are validated by the adapter's own schema. */
export const listenerBaseSchema = z.object({
  id,
  protocol: nonEmpty,
  host: nonEmpty.default('127.0.0.1'),
  port: z.number().int().min(0).max(65535),
});
export type ListenerBase = z.infer<typeof listenerBaseSchema>;
