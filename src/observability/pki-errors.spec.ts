import { DomainError, ErrorCode } from '../common/errors';
import { PKI_ERROR_CODES, PkiError } from '../pki/pki-error';
import { mapError } from './http-exception.filter';
import { errorCodeForPki, withDomainCode } from './pki-errors';

describe('PKI errors at the API boundary', () => {
  it('answers a PkiError with the API code, status, message and details it had as a DomainError', () => {
    const mapped = mapError(
      new PkiError('VALIDATION_ERROR', "buildCrl: 'nextUpdate' must be after 'thisUpdate'", { field: 'nextUpdate' }),
    );
    expect(mapped.status).toBe(400);
    expect(mapped.body).toEqual({
      error: {
        code: ErrorCode.VALIDATION_ERROR,
        message: "buildCrl: 'nextUpdate' must be after 'thisUpdate'",
        details: { field: 'nextUpdate' },
      },
    });
  });

  it.each([
    ['VALIDATION_ERROR', ErrorCode.VALIDATION_ERROR, 400],
    ['INVALID_BASE64', ErrorCode.INVALID_BASE64, 400],
    ['INVALID_CERTIFICATE', ErrorCode.INVALID_CERTIFICATE, 400],
    ['INVALID_SUBJECT', ErrorCode.INVALID_SUBJECT, 400],
    ['UNSUPPORTED_ALGORITHM', ErrorCode.UNSUPPORTED_ALGORITHM, 400],
    ['MALFORMED_REQUEST', ErrorCode.BAD_REQUEST, 400],
    ['ISSUER_NOT_VALID_NOW', ErrorCode.CONFLICT, 409],
    ['SIGNER_FAILED', ErrorCode.HSM_UNAVAILABLE, 503],
    ['INTERNAL', ErrorCode.INTERNAL, 500],
  ] as const)('maps %s to %s (%i), as before pki had codes of its own', (pkiCode, apiCode, status) => {
    expect(errorCodeForPki(pkiCode)).toBe(apiCode);
    expect(mapError(new PkiError(pkiCode, 'x')).status).toBe(status);
  });

  it('has a mapping for every PKI error code and leaves other errors alone', () => {
    for (const code of PKI_ERROR_CODES) expect(Object.values(ErrorCode)).toContain(errorCodeForPki(code));
    const domain = new DomainError(ErrorCode.NOT_FOUND, 'no such key');
    expect(withDomainCode(domain)).toBe(domain);
    expect(withDomainCode(new PkiError('INVALID_SUBJECT', 'bad subject'))).toBeInstanceOf(DomainError);
  });
});
