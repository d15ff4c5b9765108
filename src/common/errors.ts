/**
 * Domain errors carry a code; the one exception filter (observability/http-exception.filter.ts)
 * maps each code to an HTTP status with an exhaustive switch, so a new code without a mapping
 * does not compile.
 */
export enum ErrorCode {
  // 400
  VALIDATION_ERROR = 'VALIDATION_ERROR',
  INVALID_BASE64 = 'INVALID_BASE64',
  INVALID_DIGEST_LENGTH = 'INVALID_DIGEST_LENGTH',
  UNSUPPORTED_ALGORITHM = 'UNSUPPORTED_ALGORITHM',
  INVALID_SUBJECT = 'INVALID_SUBJECT',
  INVALID_CERTIFICATE = 'INVALID_CERTIFICATE',
  ARTIFACT_REQUIRED = 'ARTIFACT_REQUIRED',
  /** A key with `requires` signs payloads only: Signet must read the artifact from what it signs. */
  PAYLOAD_REQUIRED = 'PAYLOAD_REQUIRED',
  /** A payload a verifier could read otherwise than Signet (folded or duplicate JSON names, …). */
  AMBIGUOUS_PAYLOAD = 'AMBIGUOUS_PAYLOAD',
  ROTATION_TOO_FREQUENT = 'ROTATION_TOO_FREQUENT',
  BAD_REQUEST = 'BAD_REQUEST',
  /** A target's endpoint moves to another origin without new credentials (API.md). */
  CREDENTIALS_REQUIRED = 'CREDENTIALS_REQUIRED',
  /** A target's endpoint host is outside the outbound allowlist, or an address never reached (link-local, metadata). */
  ENDPOINT_NOT_ALLOWED = 'ENDPOINT_NOT_ALLOWED',
  // 401 / 403 / 404
  UNAUTHENTICATED = 'UNAUTHENTICATED',
  FORBIDDEN = 'FORBIDDEN',
  /** A state-changing request authenticated by a console session cookie without its X-CSRF-Token. */
  CSRF_TOKEN_INVALID = 'CSRF_TOKEN_INVALID',
  NOT_FOUND = 'NOT_FOUND',
  ROUTE_NOT_FOUND = 'ROUTE_NOT_FOUND',
  // 409
  CONFLICT = 'CONFLICT',
  ALREADY_EXISTS = 'ALREADY_EXISTS',
  NO_ACTIVE_VERSION = 'NO_ACTIVE_VERSION',
  PROMOTION_REQUIRED = 'PROMOTION_REQUIRED',
  VERSION_CANNOT_SIGN = 'VERSION_CANNOT_SIGN',
  // 413 / 415 / 429
  PAYLOAD_TOO_LARGE = 'PAYLOAD_TOO_LARGE',
  UNSUPPORTED_MEDIA_TYPE = 'UNSUPPORTED_MEDIA_TYPE',
  RATE_LIMITED = 'RATE_LIMITED',
  // 500 / 503
  INTERNAL = 'INTERNAL',
  // 502: a distribution target (registry, cluster) failed or refused; details say whether to retry
  TARGET_FAILED = 'TARGET_FAILED',
  DATABASE_UNAVAILABLE = 'DATABASE_UNAVAILABLE',
  HSM_UNAVAILABLE = 'HSM_UNAVAILABLE',
  SERVICE_UNAVAILABLE = 'SERVICE_UNAVAILABLE',
  // 503: an OIDC issuer's discovery document or JWKS could not be fetched (ID tokens are refused, fail closed)
  IDENTITY_PROVIDER_UNAVAILABLE = 'IDENTITY_PROVIDER_UNAVAILABLE',
}

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export function httpStatusFor(code: ErrorCode): number {
  switch (code) {
    case ErrorCode.VALIDATION_ERROR:
    case ErrorCode.INVALID_BASE64:
    case ErrorCode.INVALID_DIGEST_LENGTH:
    case ErrorCode.UNSUPPORTED_ALGORITHM:
    case ErrorCode.INVALID_SUBJECT:
    case ErrorCode.INVALID_CERTIFICATE:
    case ErrorCode.ARTIFACT_REQUIRED:
    case ErrorCode.PAYLOAD_REQUIRED:
    case ErrorCode.AMBIGUOUS_PAYLOAD:
    case ErrorCode.ROTATION_TOO_FREQUENT:
    case ErrorCode.BAD_REQUEST:
    case ErrorCode.CREDENTIALS_REQUIRED:
    case ErrorCode.ENDPOINT_NOT_ALLOWED:
      return 400;
    case ErrorCode.UNAUTHENTICATED:
      return 401;
    case ErrorCode.FORBIDDEN:
    case ErrorCode.CSRF_TOKEN_INVALID:
      return 403;
    case ErrorCode.NOT_FOUND:
    case ErrorCode.ROUTE_NOT_FOUND:
      return 404;
    case ErrorCode.CONFLICT:
    case ErrorCode.ALREADY_EXISTS:
    case ErrorCode.NO_ACTIVE_VERSION:
    case ErrorCode.PROMOTION_REQUIRED:
    case ErrorCode.VERSION_CANNOT_SIGN:
      return 409;
    case ErrorCode.PAYLOAD_TOO_LARGE:
      return 413;
    case ErrorCode.UNSUPPORTED_MEDIA_TYPE:
      return 415;
    case ErrorCode.RATE_LIMITED:
      return 429;
    case ErrorCode.INTERNAL:
      return 500;
    case ErrorCode.TARGET_FAILED:
      return 502;
    case ErrorCode.DATABASE_UNAVAILABLE:
    case ErrorCode.HSM_UNAVAILABLE:
    case ErrorCode.SERVICE_UNAVAILABLE:
    case ErrorCode.IDENTITY_PROVIDER_UNAVAILABLE:
      return 503;
    default: {
      const unmapped: never = code;
      throw new Error(`no HTTP status for error code ${String(unmapped)}`);
    }
  }
}
