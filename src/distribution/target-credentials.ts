import { Inject, Injectable } from '@nestjs/common';
import { DomainError, ErrorCode } from '../common/errors';
import { KEY_STORE, KeyStore } from '../hsm/key-store';
import { scrubText } from '../observability/logger';

const MAX_CREDENTIALS_BYTES = 64 * 1024;

/**
 * Target credentials at rest: JSON sealed with the HSM's sealing key (AES-256-GCM inside the
 * token), the target id bound as additional authenticated data so a sealed blob cannot be moved to
 * another target. Write-only in the API: nothing here is ever returned, logged or audited.
 */
@Injectable()
export class TargetCredentials {
  constructor(@Inject(KEY_STORE) private readonly keyStore: KeyStore) {}

  static recordId(targetId: string): string {
    return `distribution-target:${targetId}`;
  }

  /** Validates the shape only (an object); the driver factory checks the fields per kind. */
  static validate(credentials: unknown, operation: string): Record<string, unknown> {
    if (typeof credentials !== 'object' || credentials === null || Array.isArray(credentials)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'credentials' must be an object`, { field: 'credentials' });
    }
    if (Buffer.byteLength(JSON.stringify(credentials)) > MAX_CREDENTIALS_BYTES) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'credentials' must be at most 64 KiB`, { field: 'credentials' });
    }
    return credentials as Record<string, unknown>;
  }

  seal(targetId: string, credentials: Record<string, unknown>): Promise<Buffer> {
    return this.keyStore.seal(TargetCredentials.recordId(targetId), Buffer.from(JSON.stringify(credentials), 'utf8'));
  }

  async unseal(targetId: string, sealed: Buffer): Promise<Record<string, unknown>> {
    const plaintext = await this.keyStore.unseal(TargetCredentials.recordId(targetId), sealed);
    try {
      return JSON.parse(plaintext.toString('utf8')) as Record<string, unknown>;
    } finally {
      plaintext.fill(0);
    }
  }
}

/** Removes every credential value (and the usual secret shapes) from a message before it is stored or logged. */
export function redactSecrets(text: string, credentials: unknown): string {
  let result = scrubText(text);
  const values: string[] = [];
  const collect = (value: unknown) => {
    if (typeof value === 'string') {
      if (value.length >= 4) values.push(value);
      // a kubeconfig: its token and key lines too
      for (const match of value.matchAll(/(?:token|client-key-data|password)\s*[:=]\s*"?([^\s"]{4,})/g)) values.push(match[1]);
    } else if (value && typeof value === 'object') {
      for (const nested of Object.values(value as Record<string, unknown>)) collect(nested);
    }
  };
  collect(credentials);
  for (const value of values.sort((a, b) => b.length - a.length)) result = result.split(value).join('[redacted]');
  return result;
}
