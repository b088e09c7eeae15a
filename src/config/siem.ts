// The `siem:` section: syslog receivers (RFC 5424 over TLS, RFC 5425 framing) that get every journal
// event as OCSF JSON, each export with its own cursor (docs/siem.md). The collector's YAML uses the same
// entry schema for its exports. TLS material comes from files named here, never inline.
import { z } from 'zod';
import { nonEmpty, port } from './schema-parts.ts';
import { FACILITIES, type FacilityName } from '../siem/syslog.ts';

const facilityNames = Object.keys(FACILITIES) as [FacilityName, ...FacilityName[]];

export const siemExportSchema = z.strictObject({
  /** Names the export's cursor (`siem:<id>` in the journal, a row of siem_cursors in the collector). */
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,47}$/, 'must be 1-48 lower-case letters, digits, dash or underscore'),
  host: nonEmpty,
  port: port.default(6514),
  tls: z.strictObject({
    /** PEM file of the CA the receiver's certificate must chain to (the only one trusted). */
    ca: nonEmpty,
    /** Client certificate and key (PEM files) when the receiver asks for one. */
    cert: nonEmpty.optional(),
    key: nonEmpty.optional(),
    /** The name the receiver's certificate must carry (default: host). */
    server_name: nonEmpty.optional(),
  }).refine((t) => (t.cert === undefined) === (t.key === undefined), { message: 'cert and key go together', path: ['key'] }),
  /** Syslog facility, by name or number (0-23). Default audit (13, "log audit"). */
  facility: z.union([z.enum(facilityNames), z.number().int().min(0).max(23)]).default('audit')
    .transform((f) => (typeof f === 'number' ? f : FACILITIES[f])),
  /** Only events whose name starts with one of these (e.g. `auth.`, `action.`, `alert.`); default all. */
  events: z.array(nonEmpty).min(1).optional(),
  /** Events per batch read from the source and written before the cursor may move. */
  batch: z.number().int().min(1).max(10_000).default(500),
  /**
   * How long written bytes must sit on a connection that stays up before the cursor counts them as
   * delivered. Syslog has no acknowledgement: a receiver that dies drops what was in its buffers, so
   * what was written within this window before a broken connection is sent again (at-least-once).
   */
  settle_ms: z.number().int().min(0).max(600_000).default(2000),
  /** SD-ID `penstock@<n>`: your IANA private enterprise number; default 32473 (RFC 5612's example number). */
  enterprise_number: z.number().int().min(1).default(32473),
  /** A larger OCSF record loses its `unmapped.penstock` copy and says so (metadata.is_truncated). */
  max_message_bytes: z.number().int().min(2048).max(1 << 20).default(64 * 1024),
});

export type SiemExportConfig = z.output<typeof siemExportSchema>;

/** The gateway's list: ids unique (each is a cursor). */
export const siemSchema = z.array(siemExportSchema).superRefine((list, ctx) => {
  const seen = new Map<string, number>();
  list.forEach((e, i) => {
    const first = seen.get(e.id);
    if (first !== undefined) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `the same id as siem[${first}]: each export has its own cursor` });
    else seen.set(e.id, i);
  });
}).default([]);
