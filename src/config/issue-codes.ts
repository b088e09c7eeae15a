// Its own file, importing nothing, so every schema can use the codes without an import cycle.
/**
 * Stable codes of config errors (ConfigIssue.code): tests and tools match on these, never on the
 * message text. A schema's own check carries its code as `params: { code }` on its custom issue.
 */
export const ISSUE_CODES = {
  unknownField: 'E_UNKNOWN_FIELD',
  missingField: 'E_MISSING_FIELD',
  wrongType: 'E_WRONG_TYPE',
  rangeInverted: 'E_RANGE_INVERTED',
  rangeOverlap: 'E_RANGE_OVERLAP',
  windowReversed: 'E_WINDOW_REVERSED',
  windowEmpty: 'E_WINDOW_EMPTY',
  /** Not a SPIFFE ID (src/common/spiffe.ts). */
  spiffeIdMalformed: 'E_SPIFFE_ID_MALFORMED',
  /** Two principals list one SPIFFE ID. */
  spiffeIdClaimedTwice: 'E_SPIFFE_ID_CLAIMED_TWICE',
} as const;
