import { DomainError, ErrorCode } from '../../common/errors';

/**
 * Why a push or read-back failed. The reconciler decides from `retryable` whether to back off and
 * try again (target down, slow, overloaded) or to park the target until someone fixes it (bad
 * credentials, refused redirect, field-manager conflict, rejected content).
 */
export type TargetErrorKind =
  | 'unreachable' // connection refused / reset, DNS failure
  | 'timeout' // no complete answer within the per-request timeout
  | 'cancelled' // the caller's AbortSignal fired (shutdown, lease lost)
  | 'server' // 5xx or 429 from the target
  | 'auth' // credentials missing or rejected, token service refused, 403
  | 'tls' // certificate not trusted / wrong name
  | 'forbidden-host' // a redirect or token realm pointing outside the allowlist
  | 'not-found' // namespace, project or API missing on the target
  | 'conflict' // another writer owns the object (field manager, tag holding other content)
  | 'rejected' // the target refused the content (4xx validation, size)
  | 'protocol'; // an answer we cannot use: malformed, too large, wrong digest

const RETRYABLE: ReadonlySet<TargetErrorKind> = new Set(['unreachable', 'timeout', 'cancelled', 'server']);

export interface TargetErrorDetails {
  /** `kind` and where: e.g. `oci-registry 127.0.0.1:5000/signet/truststore`. Never credentials. */
  target: string;
  /** The operation that failed: `push`, `readBack`, `HEAD blob`, `token`, … */
  operation: string;
  status?: number;
  /** Target-specific facts, e.g. the conflicting field manager. */
  [key: string]: unknown;
}

export class TargetError extends DomainError {
  readonly retryable: boolean;

  constructor(
    readonly kind: TargetErrorKind,
    message: string,
    readonly targetDetails: TargetErrorDetails,
  ) {
    super(ErrorCode.TARGET_FAILED, message, { kind, retryable: RETRYABLE.has(kind), ...targetDetails });
    this.name = 'TargetError';
    this.retryable = RETRYABLE.has(kind);
  }
}
