import * as pkcs11js from 'pkcs11js';
import { DomainError, ErrorCode } from '../common/errors';

/** PKCS#11 v3.0 return codes that pkcs11js (2.40 tables) reports as CKR_VENDOR_DEFINED. */
const EXTRA_CKR_NAMES: Record<number, string> = {
  0x1b: 'CKR_ACTION_PROHIBITED',
  0x140: 'CKR_CURVE_NOT_SUPPORTED',
  0x1b5: 'CKR_PUBLIC_KEY_INVALID',
  0x200: 'CKR_FUNCTION_REJECTED',
};

const CKR_NAME_BY_CODE: Map<number, string> = (() => {
  const names = new Map<number, string>();
  for (const [key, value] of Object.entries(pkcs11js)) {
    if (key.startsWith('CKR_') && typeof value === 'number' && !names.has(value)) names.set(value, key);
  }
  for (const [code, name] of Object.entries(EXTRA_CKR_NAMES)) names.set(Number(code), name);
  return names;
})();

const CKR_CODE_BY_NAME: Map<string, number> = new Map([...CKR_NAME_BY_CODE].map(([code, name]) => [name, code]));

export function ckrName(code: number): string {
  return CKR_NAME_BY_CODE.get(code) ?? `CKR_0x${code.toString(16).padStart(8, '0')}`;
}

export function ckrCode(name: string): number | undefined {
  return CKR_CODE_BY_NAME.get(name);
}

/**
 * A PKCS#11 return code other than CKR_OK, with the CKR_ name in the message and the function
 * that returned it. Never carries PINs or key material: only names and codes.
 */
export class Pkcs11Error extends Error {
  override readonly name = 'Pkcs11Error';

  constructor(
    readonly ckr: string,
    readonly code: number,
    readonly operation: string,
  ) {
    super(`${operation}: ${ckr}`);
  }
}

/**
 * Normalises whatever pkcs11js threw (its Pkcs11Error from any jest realm, a callback error,
 * a fault-injected error) into our Pkcs11Error; undefined when it is not a PKCS#11 return code.
 */
export function toPkcs11Error(err: unknown, operation: string): Pkcs11Error | undefined {
  if (err instanceof Pkcs11Error) return err;
  if (!(err instanceof Error) && !(typeof err === 'object' && err !== null && 'message' in err)) return undefined;
  const { message, code, method } = err as { message?: unknown; code?: unknown; method?: unknown };
  const match = typeof message === 'string' ? /\b(CKR_[A-Z0-9_]+)(?::(\d+))?/.exec(message) : null;
  if (!match) return undefined;
  const numeric =
    typeof code === 'number' && code > 0 ? code : match[2] !== undefined ? Number(match[2]) : (ckrCode(match[1]) ?? 0);
  // pkcs11js names v3.0 codes CKR_VENDOR_DEFINED; prefer the real name when we know it.
  const name = match[1] === 'CKR_VENDOR_DEFINED' && numeric < 0x80000000 ? ckrName(numeric) : match[1];
  // pkcs11js (and the fault injector) name the C_ function when they know it.
  const fn = typeof method === 'string' && method.startsWith('C_') ? method : operation;
  return new Pkcs11Error(name, numeric, fn);
}

/** What the key store does about a return code. Ordered: later entries are stronger remedies. */
export const RECOVERY_ACTIONS = [
  'none',
  'discard-session',
  'refresh-handle',
  'relogin',
  'reopen',
  'reinitialize',
] as const;
export type RecoveryAction = (typeof RECOVERY_ACTIONS)[number];
export type PoolRecoveryAction = Extract<RecoveryAction, 'relogin' | 'reopen' | 'reinitialize'>;

export function strongerAction<T extends RecoveryAction>(a: T, b: T): T {
  return RECOVERY_ACTIONS.indexOf(a) >= RECOVERY_ACTIONS.indexOf(b) ? a : b;
}

const ACTION_BY_CKR: Record<string, RecoveryAction> = {
  CKR_SESSION_HANDLE_INVALID: 'reopen',
  CKR_SESSION_CLOSED: 'reopen',
  CKR_DEVICE_REMOVED: 'reopen',
  CKR_DEVICE_ERROR: 'reopen',
  CKR_TOKEN_NOT_PRESENT: 'reopen',
  CKR_TOKEN_NOT_RECOGNIZED: 'reopen',
  CKR_SLOT_ID_INVALID: 'reopen',
  CKR_USER_NOT_LOGGED_IN: 'relogin',
  CKR_CRYPTOKI_NOT_INITIALIZED: 'reinitialize',
  // The session may still hold a half-finished operation: replace that one session.
  CKR_OPERATION_ACTIVE: 'discard-session',
  CKR_OPERATION_NOT_INITIALIZED: 'discard-session',
  // Cached object handle is stale (SoftHSM2 drops handles on logout and when a slot's last session closes).
  CKR_OBJECT_HANDLE_INVALID: 'refresh-handle',
  CKR_KEY_HANDLE_INVALID: 'refresh-handle',
};

export function recoveryActionFor(ckr: string): RecoveryAction {
  return ACTION_BY_CKR[ckr] ?? 'none';
}

export function isPoolRecoveryAction(action: RecoveryAction): action is PoolRecoveryAction {
  return action === 'relogin' || action === 'reopen' || action === 'reinitialize';
}

/** Login failures that must never be retried automatically: retries would lock the token. */
const FATAL_CKRS = new Set([
  'CKR_PIN_INCORRECT',
  'CKR_PIN_LOCKED',
  'CKR_PIN_EXPIRED',
  'CKR_PIN_INVALID',
  'CKR_PIN_LEN_RANGE',
]);

export function isFatalLoginError(ckr: string): boolean {
  return FATAL_CKRS.has(ckr);
}

/** A retryable failure: the HSM (or our sessions with it) is not usable right now → 503. */
export function hsmUnavailable(operation: string, cause?: unknown, reason?: string): DomainError {
  const p11 = toPkcs11Error(cause, operation);
  const why = reason ?? (p11 ? p11.ckr : cause instanceof Error ? cause.message : 'unavailable');
  const error = new DomainError(ErrorCode.HSM_UNAVAILABLE, `${operation}: HSM unavailable (${why})`, {
    retryable: true,
    ...(p11 ? { ckr: p11.ckr } : {}),
  });
  if (cause !== undefined) Object.defineProperty(error, 'cause', { value: cause, enumerable: false });
  return error;
}

const DOMAIN_CODE_BY_CKR: Record<string, ErrorCode> = {
  CKR_DATA_LEN_RANGE: ErrorCode.INVALID_DIGEST_LENGTH,
  CKR_MECHANISM_INVALID: ErrorCode.UNSUPPORTED_ALGORITHM,
  CKR_MECHANISM_PARAM_INVALID: ErrorCode.UNSUPPORTED_ALGORITHM,
  CKR_KEY_TYPE_INCONSISTENT: ErrorCode.UNSUPPORTED_ALGORITHM,
  CKR_KEY_FUNCTION_NOT_PERMITTED: ErrorCode.UNSUPPORTED_ALGORITHM,
  CKR_TEMPLATE_INCONSISTENT: ErrorCode.BAD_REQUEST,
  CKR_ATTRIBUTE_VALUE_INVALID: ErrorCode.BAD_REQUEST,
};

/** Maps a non-retryable PKCS#11 failure to the domain error the API layer understands. */
export function pkcs11DomainError(operation: string, p11: Pkcs11Error): DomainError {
  if (isPoolRecoveryAction(recoveryActionFor(p11.ckr)) || isFatalLoginError(p11.ckr))
    return hsmUnavailable(operation, p11);
  const code = DOMAIN_CODE_BY_CKR[p11.ckr] ?? ErrorCode.INTERNAL;
  const error = new DomainError(code, `${operation}: ${p11.ckr}`, { ckr: p11.ckr });
  Object.defineProperty(error, 'cause', { value: p11, enumerable: false });
  return error;
}

/** Anything thrown inside the store becomes a DomainError; PKCS#11 codes keep their CKR_ name. */
export function toDomainError(operation: string, err: unknown): DomainError {
  if (err instanceof DomainError) return err;
  const p11 = toPkcs11Error(err, operation);
  if (p11) return pkcs11DomainError(operation, p11);
  const error = new DomainError(
    ErrorCode.INTERNAL,
    `${operation}: ${err instanceof Error ? err.message : String(err)}`,
  );
  Object.defineProperty(error, 'cause', { value: err, enumerable: false });
  return error;
}
