import { Inject, Injectable } from '@nestjs/common';
import { DomainError, ErrorCode } from '../common/errors';
import { SEALER, Sealer } from '../hsm/sealer';
import { scrubText } from '../observability/logger';
import { endpointOrigin } from './target-definition';

const MAX_CREDENTIALS_BYTES = 64 * 1024;
/** First byte of a value sealed with the endpoint's origin. */
const ORIGIN_BOUND = 0x02;
/** First byte of a legacy value: the bare key store envelope, version 1 (sealed-envelope.ts) when they were written. */
const LEGACY = 0x01;

export interface OpenedCredentials {
  credentials: Record<string, unknown>;
  /** Set when the stored value was a legacy one: the same credentials sealed for the endpoint's origin, to store in its place. */
  resealed?: Buffer;
}

/**
 * Target credentials at rest: JSON sealed with the HSM's sealing key (AES-256-GCM inside the
 * token). The additional authenticated data binds the target id and the endpoint's origin (scheme,
 * host, port): a sealed value moved to another target, or left in place while someone with SQL
 * access points the endpoint elsewhere, fails to open, so the credentials are never sent to a host
 * they were not given for. Write-only in the API: nothing here is ever returned, logged or audited.
 *
 * Stored value: `0x02 | origin length (u16) | origin | key store envelope`; the origin in clear only
 * makes the error say what changed, the AAD is computed from the endpoint column. Values written
 * before origins were bound (the bare key store envelope, first byte 0x01, AAD the target id only)
 * still open; `open` returns them re-sealed for the current origin and the caller stores that in
 * their place (first use), so they do not outlive the upgrade. Older code reading a 0x02 value
 * fails to open it ("unknown version 2") and sends nothing.
 */
@Injectable()
export class TargetCredentials {
  constructor(@Inject(SEALER) private readonly sealer: Sealer) {}

  /** AAD of legacy values: the target only. */
  static recordId(targetId: string): string {
    return `distribution-target:${targetId}`;
  }

  /** AAD of values bound to an origin. */
  static boundRecordId(targetId: string, origin: string): string {
    return `distribution-target:${targetId}@${origin}`;
  }

  /** Validates the shape only (an object); the driver factory checks the fields per kind. */
  static validate(credentials: unknown, operation: string): Record<string, unknown> {
    if (typeof credentials !== 'object' || credentials === null || Array.isArray(credentials)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'credentials' must be an object`, {
        field: 'credentials',
      });
    }
    if (Buffer.byteLength(JSON.stringify(credentials)) > MAX_CREDENTIALS_BYTES) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'credentials' must be at most 64 KiB`, {
        field: 'credentials',
      });
    }
    return credentials as Record<string, unknown>;
  }

  /** Whether a stored value predates origin binding. */
  static isLegacy(sealed: Buffer): boolean {
    return sealed.length > 0 && sealed[0] === LEGACY;
  }

  /** Seals `credentials` for target `targetId` at `endpoint`'s origin. */
  async seal(targetId: string, endpoint: string, credentials: Record<string, unknown>): Promise<Buffer> {
    const plaintext = Buffer.from(JSON.stringify(credentials), 'utf8');
    try {
      return await this.sealPlaintext(targetId, endpointOrigin(endpoint), plaintext);
    } finally {
      plaintext.fill(0);
    }
  }

  /**
   * Opens the stored value of a target at `endpoint`. Throws CREDENTIALS_REQUIRED when it was sealed
   * for another origin or does not authenticate (changed outside the API): the target must be given
   * its credentials again.
   */
  async open(target: { id: string; endpoint: string }, sealed: Buffer): Promise<OpenedCredentials> {
    const origin = endpointOrigin(target.endpoint);
    if (TargetCredentials.isLegacy(sealed)) {
      const plaintext = await this.sealer.unseal(TargetCredentials.recordId(target.id), sealed);
      try {
        return { credentials: parse(plaintext), resealed: await this.sealPlaintext(target.id, origin, plaintext) };
      } finally {
        plaintext.fill(0);
      }
    }
    const { sealedFor, envelope } = decodeBound(sealed);
    if (sealedFor !== origin) {
      throw new DomainError(
        ErrorCode.CREDENTIALS_REQUIRED,
        `the stored credentials were sealed for ${sealedFor}, but the endpoint is now ${origin} (changed outside the API?); they are not used: set the credentials again`,
        { sealedFor, origin },
      );
    }
    let plaintext: Buffer;
    try {
      plaintext = await this.sealer.unseal(TargetCredentials.boundRecordId(target.id, origin), envelope);
    } catch (error) {
      // A GCM tag mismatch: the value, its origin or the endpoint was altered.
      if (error instanceof DomainError && error.code === ErrorCode.INTERNAL && error.details?.ckr !== undefined) {
        throw new DomainError(
          ErrorCode.CREDENTIALS_REQUIRED,
          `the stored credentials do not open for ${origin} (altered outside the API?); they are not used: set the credentials again`,
          { origin },
        );
      }
      throw error;
    }
    try {
      return { credentials: parse(plaintext) };
    } finally {
      plaintext.fill(0);
    }
  }

  private async sealPlaintext(targetId: string, origin: string, plaintext: Buffer): Promise<Buffer> {
    const envelope = await this.sealer.seal(TargetCredentials.boundRecordId(targetId, origin), plaintext);
    const originBytes = Buffer.from(origin, 'utf8');
    const header = Buffer.alloc(3);
    header[0] = ORIGIN_BOUND;
    header.writeUInt16BE(originBytes.length, 1);
    return Buffer.concat([header, originBytes, envelope]);
  }
}

function decodeBound(sealed: Buffer): { sealedFor: string; envelope: Buffer } {
  if (sealed[0] !== ORIGIN_BOUND)
    throw new DomainError(
      ErrorCode.CREDENTIALS_REQUIRED,
      `the stored credentials have an unknown format (${sealed[0]}); set them again`,
    );
  if (sealed.length < 3)
    throw new DomainError(ErrorCode.CREDENTIALS_REQUIRED, 'the stored credentials are truncated; set them again');
  const length = sealed.readUInt16BE(1);
  if (sealed.length < 3 + length + 1)
    throw new DomainError(ErrorCode.CREDENTIALS_REQUIRED, 'the stored credentials are truncated; set them again');
  return { sealedFor: sealed.subarray(3, 3 + length).toString('utf8'), envelope: sealed.subarray(3 + length) };
}

function parse(plaintext: Buffer): Record<string, unknown> {
  return JSON.parse(plaintext.toString('utf8')) as Record<string, unknown>;
}

/** Removes every credential value (and the usual secret shapes) from a message before it is stored or logged. */
export function redactSecrets(text: string, credentials: unknown): string {
  let result = scrubText(text);
  const values: string[] = [];
  const collect = (value: unknown) => {
    if (typeof value === 'string') {
      if (value.length >= 4) values.push(value);
      // a kubeconfig: its token and key lines too
      for (const match of value.matchAll(/(?:token|client-key-data|password)\s*[:=]\s*"?([^\s"]{4,})/g))
        values.push(match[1]);
    } else if (value && typeof value === 'object') {
      for (const nested of Object.values(value as Record<string, unknown>)) collect(nested);
    }
  };
  collect(credentials);
  for (const value of values.sort((a, b) => b.length - a.length)) result = result.split(value).join('[redacted]');
  return result;
}
