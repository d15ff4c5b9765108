import { DomainError, ErrorCode } from '../common/errors';

/**
 * The shape check on a certificate chain a client uploads (an issuing CA's chain from an offline
 * root, an external CA's chain for a key version), before anything parses it: 2..8 PEM strings
 * of under 64 KiB each. `order` says which way round in the message ("leaf first, root last").
 */
export function assertPemChainInput(chain: unknown, operation: string, order: string): asserts chain is string[] {
  if (
    !Array.isArray(chain) ||
    chain.length < 2 ||
    chain.length > 8 ||
    !chain.every((pem) => typeof pem === 'string' && pem.length < 65536)
  ) {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'chain' must be 2..8 PEM certificates, ${order}`, {
      field: 'chain',
    });
  }
}
