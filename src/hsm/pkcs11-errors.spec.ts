import { DomainError, ErrorCode, httpStatusFor } from '../common/errors';
import {
  Pkcs11Error,
  ckrName,
  hsmUnavailable,
  isFatalLoginError,
  recoveryActionFor,
  strongerAction,
  toDomainError,
  toPkcs11Error,
} from './pkcs11-errors';

describe('pkcs11-errors', () => {
  it('reads pkcs11js errors (message "CKR_NAME", numeric code) into a Pkcs11Error naming the function', () => {
    const thrown = Object.assign(new Error('CKR_SESSION_HANDLE_INVALID'), { code: 0xb3, method: 'C_SignInit' });
    const error = toPkcs11Error(thrown, 'sign');
    expect(error).toBeInstanceOf(Pkcs11Error);
    expect(error).toMatchObject({
      ckr: 'CKR_SESSION_HANDLE_INVALID',
      code: 0xb3,
      operation: 'C_SignInit',
      message: 'C_SignInit: CKR_SESSION_HANDLE_INVALID',
    });
  });

  it('reads async callback errors ("CKR_NAME:code") and names v3.0 codes pkcs11js calls vendor-defined', () => {
    expect(toPkcs11Error(new Error('CKR_DEVICE_REMOVED:50'), 'C_Sign')).toMatchObject({
      ckr: 'CKR_DEVICE_REMOVED',
      code: 50,
    });
    expect(toPkcs11Error(Object.assign(new Error('CKR_VENDOR_DEFINED:27'), { code: 27 }), 'C_CopyObject')?.ckr).toBe(
      'CKR_ACTION_PROHIBITED',
    );
    expect(ckrName(0xdeadbeef)).toBe('CKR_0xdeadbeef');
  });

  it('leaves other errors alone', () => {
    expect(toPkcs11Error(new TypeError('Argument 1 has wrong type'), 'C_Sign')).toBeUndefined();
    expect(toPkcs11Error('CKR_OK is not an error object', 'x')).toBeUndefined();
  });

  it.each([
    ['CKR_SESSION_HANDLE_INVALID', 'reopen'],
    ['CKR_SESSION_CLOSED', 'reopen'],
    ['CKR_DEVICE_REMOVED', 'reopen'],
    ['CKR_TOKEN_NOT_PRESENT', 'reopen'],
    ['CKR_USER_NOT_LOGGED_IN', 'relogin'],
    ['CKR_CRYPTOKI_NOT_INITIALIZED', 'reinitialize'],
    ['CKR_OPERATION_ACTIVE', 'discard-session'],
    ['CKR_OBJECT_HANDLE_INVALID', 'refresh-handle'],
    ['CKR_GENERAL_ERROR', 'none'],
    ['CKR_MECHANISM_INVALID', 'none'],
  ])('%s calls for %s', (ckr, action) => {
    expect(recoveryActionFor(ckr)).toBe(action);
  });

  it('orders remedies so a recovery can escalate', () => {
    expect(strongerAction('relogin', 'reopen')).toBe('reopen');
    expect(strongerAction('reinitialize', 'reopen')).toBe('reinitialize');
  });

  it('treats login failures as fatal: retrying a wrong PIN would lock the token', () => {
    expect(isFatalLoginError('CKR_PIN_INCORRECT')).toBe(true);
    expect(isFatalLoginError('CKR_PIN_LOCKED')).toBe(true);
    expect(isFatalLoginError('CKR_USER_NOT_LOGGED_IN')).toBe(false);
  });

  it('maps retryable faults to HSM_UNAVAILABLE (503) with the CKR_ name in the message', () => {
    const error = toDomainError('sign', new Pkcs11Error('CKR_DEVICE_REMOVED', 0x32, 'C_Sign'));
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({
      code: ErrorCode.HSM_UNAVAILABLE,
      message: 'sign: HSM unavailable (CKR_DEVICE_REMOVED)',
      details: { retryable: true, ckr: 'CKR_DEVICE_REMOVED' },
    });
    expect(httpStatusFor(error.code)).toBe(503);
    expect(hsmUnavailable('sign', undefined, 'key store closed').message).toBe(
      'sign: HSM unavailable (key store closed)',
    );
  });

  it('maps input-shaped PKCS#11 refusals to 400 codes and the rest to INTERNAL', () => {
    expect(toDomainError('sign', new Pkcs11Error('CKR_DATA_LEN_RANGE', 0x21, 'C_Sign')).code).toBe(
      ErrorCode.INVALID_DIGEST_LENGTH,
    );
    expect(toDomainError('sign', new Pkcs11Error('CKR_KEY_TYPE_INCONSISTENT', 0x63, 'C_SignInit')).code).toBe(
      ErrorCode.UNSUPPORTED_ALGORITHM,
    );
    expect(toDomainError('sign', new Pkcs11Error('CKR_FUNCTION_FAILED', 0x6, 'C_Sign'))).toMatchObject({
      code: ErrorCode.INTERNAL,
      message: 'sign: CKR_FUNCTION_FAILED',
    });
    expect(toDomainError('sign', new Error('boom'))).toMatchObject({ code: ErrorCode.INTERNAL, message: 'sign: boom' });
    const domain = new DomainError(ErrorCode.NOT_FOUND, 'sign: key x not found');
    expect(toDomainError('sign', domain)).toBe(domain);
  });
});
