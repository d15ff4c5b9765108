import { Injectable } from '@nestjs/common';
import { DomainError, ErrorCode } from '../common/errors';
import type { ActiveKey } from './active-key-cache';
import { ArtifactSigningsRepository } from './artifact-signings.repository';
import type { ArtifactRef } from './sign-request';

/**
 * Promotion (dev → test → prod signing): a key with `requires` signs only for an artifact Signet
 * read from the bytes it signs (SigningService passes nothing for a client's claim), and only once
 * every required key has signed that same artifact. The evidence is `artifact_signings`, one row
 * per (artifact, key, key version) first signing of an artifact read from the payload, written
 * after the signature's audit row committed and before the signature is returned; signatures by
 * a version revoked since then do not count.
 */
@Injectable()
export class PromotionPolicy {
  constructor(private readonly signings: ArtifactSigningsRepository) {}

  /**
   * 400 ARTIFACT_REQUIRED / 409 PROMOTION_REQUIRED unless `key` may sign `artifact`. One indexed
   * query; undefined (nothing to wait for) when the key has no promotion rule, the hot path's case.
   */
  check(key: ActiveKey, artifact: ArtifactRef | undefined): Promise<void> | undefined {
    return key.requires.length === 0 ? undefined : this.checkRequired(key, artifact);
  }

  private async checkRequired(key: ActiveKey, artifact: ArtifactRef | undefined): Promise<void> {
    if (!artifact) {
      throw new DomainError(
        ErrorCode.ARTIFACT_REQUIRED,
        `sign: key "${key.keyName}" signs only for an artifact Signet reads from the payload (it requires ${key.requires.join(', ')} to have signed it first): send a Notary JWS signing input or COSE Sig_structure whose payload names the targetArtifact; a client-sent 'artifact' does not count`,
        { key: key.keyName, requires: [...key.requires] },
      );
    }
    const signed = await this.signings.keysThatSigned(artifact.digest, key.requires);
    const missing = key.requires.filter((name) => !signed.has(name));
    if (missing.length > 0) {
      throw new DomainError(
        ErrorCode.PROMOTION_REQUIRED,
        `sign: key "${key.keyName}" may sign ${artifact.digest} only after ${missing.map((name) => `"${name}"`).join(' and ')} signed it`,
        { key: key.keyName, artifact: artifact.digest, missing },
      );
    }
  }

  /** Records that `key` signed `artifact`, read from the payload (first signing per version kept). */
  async record(key: ActiveKey, artifact: ArtifactRef, auditSeq: string): Promise<void> {
    await this.signings.record({
      artifactDigest: artifact.digest,
      keyName: key.keyName,
      versionId: key.versionId,
      version: key.version,
      auditSeq,
    });
  }
}
