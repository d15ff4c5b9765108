import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { PoolStatementsRepository } from './pool-statements.repository';

const SIGNED_BY = `
  SELECT DISTINCT s.key_name
  FROM artifact_signings s
  JOIN key_versions v ON v.id = s.key_version_id
  WHERE s.artifact_digest = $1 AND s.key_name = ANY($2::text[]) AND s.artifact_source = 'payload' AND v.state <> 'revoked'`;

/** Rows from before issue #17 are `legacy` (they may be claims) and are not evidence. */
const RECORD = `
  INSERT INTO artifact_signings (artifact_digest, key_name, key_version_id, key_version, audit_seq, artifact_source)
  VALUES ($1, $2, $3, $4, $5, 'payload')
  ON CONFLICT DO NOTHING`;

/**
 * The promotion evidence (`artifact_signings`): one row per (artifact, key, key version) first
 * signing of an artifact read from the payload. One statement each on the pg pool (the signing
 * path); a database error reads as the audit layer's (503).
 */
@Injectable()
export class ArtifactSigningsRepository extends PoolStatementsRepository {
  constructor(dataSource: DataSource) {
    super(dataSource);
  }

  /** Which of `keyNames` signed the artifact from its payload with a version not revoked since. */
  async keysThatSigned(artifactDigest: string, keyNames: readonly string[]): Promise<Set<string>> {
    const rows = await this.query(SIGNED_BY, [artifactDigest, keyNames]);
    return new Set(rows.map((row) => row.key_name as string));
  }

  /** Records a signing (the first per artifact and key version is kept). */
  async record(signing: {
    artifactDigest: string;
    keyName: string;
    versionId: string;
    version: number;
    auditSeq: string;
  }): Promise<void> {
    await this.query(RECORD, [
      signing.artifactDigest,
      signing.keyName,
      signing.versionId,
      signing.version,
      signing.auditSeq,
    ]);
  }
}
