// The `push:` section: where the gateway pushes its evidence (journal events and signed checkpoints) on
// NATS JetStream, with which credential, how fast and when (src/push/pusher.ts; docs/push.md). Secrets
// are named by file, never written here: the pusher reads them at each connect.
import { z } from 'zod';
import { DEFAULT_SUBJECT_PREFIX } from '../fleet/wire.ts';
import { ISSUE_CODES } from './issue-codes.ts';
import { parseWindow, WINDOW_SYNTAX } from '../push/windows.ts';

const file = z.string().min(1);

const serverUrl = z.string().refine((u) => {
  try {
    const url = new URL(u);
    return (url.protocol === 'nats:' || url.protocol === 'tls:') && url.hostname !== '' && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}, 'must be a nats:// or tls:// URL with a host, e.g. tls://nats.central.example:4222 (credentials go in creds_file, nkey_seed_file or tls, never in the URL)');

/** A subject prefix: dot-separated tokens without wildcards or spaces. */
const subjectPrefix = z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be dot-separated tokens of letters, digits, _ and - (no wildcards), e.g. penstock.evidence');

const windowSchema = z.string().superRefine((w, ctx) => {
  const parsed = parseWindow(w);
  if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: `${parsed}; ${WINDOW_SYNTAX}`, params: { code: parsed.includes('empty') ? ISSUE_CODES.windowEmpty : ISSUE_CODES.wrongType } });
});

const timeZone = z.string().refine((tz) => {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}, 'must be an IANA time zone such as Europe/Berlin or UTC');

export const pushSchema = z.strictObject({
  servers: z.array(serverUrl).min(1),
  subject_prefix: subjectPrefix.default(DEFAULT_SUBJECT_PREFIX),
  /** The stream the subject must land in: a publish that lands elsewhere (or nowhere) fails loudly. */
  stream: z.string().regex(/^[A-Za-z0-9_-]{1,255}$/, 'must be a JetStream stream name: letters, digits, _ and -').optional(),
  /** A user JWT and its nkey seed (nsc's .creds file). */
  creds_file: file.optional(),
  /** An nkey seed (SU…), for a server that lists the user's public nkey. */
  nkey_seed_file: file.optional(),
  tls: z.strictObject({
    /** CA bundle the server's certificate must chain to (default: the system's). */
    ca: file.optional(),
    /** Client certificate and key (mTLS); both or neither. */
    cert: file.optional(),
    key: file.optional(),
  }).superRefine((t, ctx) => {
    if ((t.cert === undefined) !== (t.key === undefined)) ctx.addIssue({ code: 'custom', path: [t.cert === undefined ? 'cert' : 'key'], message: 'a client certificate needs both cert and key', params: { code: ISSUE_CODES.missingField } });
  }).optional(),
  /** Upper bound on bytes sent per second (payload and headers), for metered links. */
  max_bytes_per_second: z.number().int().min(1024).optional(),
  /** When the link may be used, in `windows_tz` (default the gateway's local time); outside, the pusher disconnects. */
  windows: z.array(windowSchema).min(1).optional(),
  windows_tz: timeZone.optional(),
  /** Publishes in flight at once before their acknowledgements are awaited and the cursor moves. */
  batch_events: z.number().int().min(1).max(10_000).default(500),
  /** Once caught up, how long pushed events may wait for a checkpoint that covers them. */
  checkpoint_seconds: z.number().int().min(1).default(5),
  /** How long one publish may wait for JetStream's acknowledgement. */
  ack_timeout_seconds: z.number().int().min(1).max(300).default(10),
}).superRefine((p, ctx) => {
  const creds = (['creds_file', 'nkey_seed_file'] as const).filter((k) => p[k] !== undefined);
  if (creds.length > 1) ctx.addIssue({ code: 'custom', path: [creds[1]!], message: 'give one of creds_file or nkey_seed_file, not both' });
});

export type PushConfig = z.output<typeof pushSchema>;
