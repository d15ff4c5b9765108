import { DomainError, ErrorCode } from '../common/errors';
import { PkiError, PkiErrorCode } from '../pki';

/** The API error code of each PKI refusal; a new PkiErrorCode without one does not compile. */
export function errorCodeForPki(code: PkiErrorCode): ErrorCode {
  switch (code) {
    case 'VALIDATION_ERROR':
      return ErrorCode.VALIDATION_ERROR;
    case 'INVALID_BASE64':
      return ErrorCode.INVALID_BASE64;
    case 'INVALID_CERTIFICATE':
      return ErrorCode.INVALID_CERTIFICATE;
    case 'INVALID_SUBJECT':
      return ErrorCode.INVALID_SUBJECT;
    case 'UNSUPPORTED_ALGORITHM':
      return ErrorCode.UNSUPPORTED_ALGORITHM;
    case 'MALFORMED_REQUEST':
      return ErrorCode.BAD_REQUEST;
    case 'ISSUER_NOT_VALID_NOW':
      return ErrorCode.CONFLICT;
    case 'SIGNER_FAILED':
      return ErrorCode.HSM_UNAVAILABLE;
    case 'INTERNAL':
      return ErrorCode.INTERNAL;
    default: {
      const unmapped: never = code;
      throw new Error(`no API error code for PKI error ${String(unmapped)}`);
    }
  }
}

/** A PkiError as the DomainError the API answers with (same message and details); anything else unchanged. */
export function withDomainCode(error: unknown): unknown {
  if (!(error instanceof PkiError)) return error;
  const mapped = new DomainError(errorCodeForPki(error.code), error.message, error.details);
  Object.defineProperty(mapped, 'cause', { value: error, enumerable: false });
  return mapped;
}
