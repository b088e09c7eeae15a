// One catalogue of errors with stable codes. Callers match on `code` (or the class), never on
// message text. The message is for people and logs; what goes on a wire is chosen by the adapter
// from the code (see style.md: two renderings of every failure).

export const ERROR_CODES = {
  PS_CONFIG_INVALID: 'configuration failed validation',
  PS_CONFIG_READ: 'configuration file could not be read',
  PS_POLICY_DENIED: 'denied by policy',
  PS_APPROVAL_DENIED: 'approval was refused or timed out',
  PS_APPROVAL_UNKNOWN: 'no such pending approval',
  PS_GRANT_UNKNOWN: 'no such grant',
  PS_GRANT_INVALID: 'grant request is invalid',
  PS_SESSION_UNKNOWN: 'no such session',
  PS_SESSION_LIMIT: 'session rate or duration limit reached',
  PS_JOURNAL_UNAVAILABLE: 'journal cannot be written; privileged actions are refused',
  PS_JOURNAL_CORRUPT: 'journal verification failed',
  PS_VAULT: 'vault error',
  PS_ADMIN_UNKNOWN_COMMAND: 'unknown admin command',
  PS_ADMIN_BAD_REQUEST: 'malformed admin request',
  PS_ADMIN_TOO_LARGE: 'admin request too large',
  PS_ADMIN_FORBIDDEN: 'admin peer not permitted',
  PS_UPSTREAM_UNAVAILABLE: 'target did not answer',
  PS_PROTOCOL_UNKNOWN: 'no adapter for this protocol',
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
