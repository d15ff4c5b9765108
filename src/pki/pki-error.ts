/**
 * What the PKI core refuses, in its own words: Signet maps each code to an API error code and an
 * HTTP status at its boundary (observability/pki-errors.ts, used by the error filter), so this
 * folder names nothing of Signet's. Where a refusal means the same as an API code, it has the same
 * spelling (VALIDATION_ERROR, INVALID_CERTIFICATE, …): a caller inside Signet that matches on the
 * code (tests, the CLI) reads the same word either side of the boundary.
 */
export const PKI_ERROR_CODES = [
  /** A parameter out of range or of the wrong shape (a caller's mistake or a request's). */
  'VALIDATION_ERROR',
  /** Text that should be base64 (a PEM block's body) is not. */
  'INVALID_BASE64',
  /** A certificate that cannot be parsed or does not fit the profile asked for. */
  'INVALID_CERTIFICATE',
  /** A subject name outside Signet's profile (NOTARY.md). */
  'INVALID_SUBJECT',
  /** A key or signature algorithm outside the supported EC and RSA specs. */
  'UNSUPPORTED_ALGORITHM',
  /** An OCSP request that is not one. */
  'MALFORMED_REQUEST',
  /** The issuing certificate is not valid at the time of issuance. */
  'ISSUER_NOT_VALID_NOW',
  /** The signer's signature does not verify with its certificate's key (a device fault). */
  'SIGNER_FAILED',
  /** A self-check failed (a built structure does not verify, a lookup answered nonsense). */
  'INTERNAL',
] as const;
export type PkiErrorCode = (typeof PKI_ERROR_CODES)[number];

export class PkiError extends Error {
  constructor(
    readonly code: PkiErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'PkiError';
  }
}
