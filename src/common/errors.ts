// One catalogue of errors with stable codes. Callers match on `code` (or the class), never on
// message text. The message is for people and logs; what goes on a wire is chosen by the adapter
// from the code (see style.md: two renderings of every failure). Each code is thrown by the part its
// prefix names, and test/common/errors.test.ts checks that every code here is thrown somewhere in src/
// and described: a code no one throws is removed, not kept "for later".

export const ERROR_CODES = {
  PS_CONFIG_INVALID: 'configuration failed validation',
  PS_CONFIG_READ: 'configuration file could not be read',
  PS_CONFIG_TOO_LARGE: 'configuration file is larger than the 1 MiB a config may be',
  PS_APPROVAL_UNKNOWN: 'no such pending approval',
  PS_GRANT_UNKNOWN: 'no such grant',
  PS_GRANT_INVALID: 'grant request is invalid',
  PS_ENVELOPE_MALFORMED: 'grant envelope is not a compact JWS with the expected header and claims',
  PS_ENVELOPE_WRONG_TYPE: 'grant envelope header typ is not penstock-grant+jws (an ordinary JWT is not an envelope)',
  PS_ENVELOPE_UNKNOWN_KEY: 'grant envelope names a key id no pinned envelope key has',
  PS_ENVELOPE_FOREIGN_ISSUER: 'grant envelope issuer is not the issuer pinned with its key',
  PS_ENVELOPE_BAD_SIGNATURE: 'grant envelope signature does not verify against the pinned key',
  PS_ENVELOPE_EXPIRED: 'grant envelope has expired',
  PS_ENVELOPE_NOT_YET_VALID: 'grant envelope is not valid yet (nbf or iat in the future)',
  PS_ENVELOPE_LIFETIME: 'grant envelope lives longer than envelopes.max_lifetime_days, or its grant window lies outside its lifetime',
  PS_ENVELOPE_REPLAYED: 'grant envelope jti was imported before',
  PS_ENVELOPE_GRANT_INVALID: 'the grant inside an envelope is invalid against the running configuration',
  PS_ENVELOPE_DISABLED: 'no envelope keys are configured; envelopes cannot be imported',
  PS_SESSION_UNKNOWN: 'no such session',
  PS_NOT_CONTAINED: 'the session is not suspended, or the grant does not require approval: nothing to lift',
  PS_JOURNAL_UNAVAILABLE: 'journal cannot be written; privileged actions are refused',
  PS_JOURNAL_CORRUPT: 'journal verification failed',
  PS_JOURNAL_ROLLED_BACK: 'journal holds fewer events than a checkpoint kept elsewhere (rolled back to an older copy)',
  PS_JOURNAL_FORKED: 'journal is not an extension of a checkpoint kept elsewhere (forked or rewritten)',
  PS_JOURNAL_BAD_REQUEST: 'request to the journal names an event, tree size or checkpoint it does not hold or did not issue',
  PS_VAULT: 'vault error',
  PS_ADMIN_UNKNOWN_COMMAND: 'unknown admin command',
  PS_ADMIN_BAD_REQUEST: 'malformed admin request',
  PS_ADMIN_TOO_LARGE: 'admin request too large',
  PS_ADMIN_FORBIDDEN: 'admin peer not permitted',
  PS_ADMIN_PEER_UNVERIFIED: 'the kernel did not confirm the admin peer\'s uid; state-changing commands are refused',
  PS_ADMIN_BUSY: 'too many admin connections from this user',
  PS_UPSTREAM_UNAVAILABLE: 'target did not answer',
  PS_PROTOCOL_UNKNOWN: 'no adapter for this protocol',
  PS_SYNC_FORK: 'appliance served a checkpoint not consistent with one already held (fork)',
  PS_SYNC_ROLLBACK: 'appliance served a smaller tree than one already held (rollback)',
  PS_SYNC_BAD_SIGNATURE: 'checkpoint signature does not verify against the pinned appliance key',
  PS_SYNC_MISMATCH: 'pulled events do not match the signed checkpoint',
  PS_SYNC_BAD_RESPONSE: 'appliance sent a malformed sync response',
  PS_SYNC_REFUSED: 'appliance refused a sync request',
  PS_SYNC_UNAVAILABLE: 'appliance could not be reached or went away; retry later',
  PS_SYNC_TLS: 'TLS with the appliance failed (certificate not trusted or refused)',
  PS_SYNC_LOCAL_STORE: 'local pull store is damaged or inconsistent',
  PS_SYNC_BUSY: 'another puller is using this output directory',
  PS_PUSH_AUTH: 'the NATS server refused the push credential (nkey, user JWT or client certificate)',
  PS_PUSH_TLS: 'TLS with the NATS server failed (its certificate is not trusted, or it refused ours)',
  PS_PUSH_CREDENTIALS: 'a push credential file (creds_file, nkey_seed_file) is missing, unreadable or malformed',
  PS_PUSH_UNAVAILABLE: 'the NATS server could not be reached or did not acknowledge in time; the push retries',
  PS_PUSH_REJECTED: 'JetStream did not store a pushed message (no stream for the subject, another stream, not permitted)',
  PS_PUSH_PRUNED: 'events were pruned before JetStream acknowledged them; the push stopped rather than leave a gap',
  PS_PUSH_JOURNAL: 'the push cursor could not be stored in the journal',
  PS_COLLECTOR_BAD_SIGNATURE: 'collector: a checkpoint does not verify against the appliance\'s pinned key (or names another origin)',
  PS_COLLECTOR_ROLLBACK: 'collector: a checkpoint is smaller than the verified one and not one verified before (rollback)',
  PS_COLLECTOR_FORK: 'collector: a checkpoint has another root than the verified one of its size (fork)',
  PS_COLLECTOR_GAP: 'collector: an event below a checkpoint\'s size never arrived (gap)',
  PS_COLLECTOR_ALTERED: 'collector: events do not make the signed root, or a resend differs from the stored event (altered)',
  PS_COLLECTOR_REORDERED: 'collector: an event\'s Penstock-Seq header is not the seq in its body (reordered or relabelled)',
  PS_COLLECTOR_FOREIGN: 'collector: an event on an appliance\'s subject names another appliance',
  PS_COLLECTOR_MALFORMED: 'collector: a message on an appliance\'s subject is not an event or checkpoint of the wire contract',
  PS_COLLECTOR_BUFFER_FULL: 'collector: more events wait after the last verified checkpoint than collector.max_pending_events allows',
  PS_INTERNAL: 'internal error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class PenstockError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super(message ?? ERROR_CODES[code], options);
    this.name = 'PenstockError';
    this.code = code;
    this.details = details;
  }
}

export function isPenstockError(err: unknown, code?: ErrorCode): err is PenstockError {
  return err instanceof PenstockError && (code === undefined || err.code === code);
}
