import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Promotion evidence only from artifacts Signet read from the signed bytes (issue #17).
 * `artifact_signings.artifact_source`: `payload` for rows this version writes; `legacy` for rows
 * written before, which may come from a client's claimed `artifact` (digest mode) and so no longer
 * count — a required key signs such an artifact again, from its payload, to promote it. The column
 * default keeps a replica of the previous version working during a rolling update (its rows are
 * `legacy`); the source joins the primary key, so a `payload` row is inserted beside a `legacy`
 * one without an UPDATE (the service role may only INSERT and SELECT here).
 */
export class ArtifactSigningSource1795000910000 implements MigrationInterface {
  name = 'ArtifactSigningSource1795000910000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE artifact_signings ADD COLUMN artifact_source text NOT NULL DEFAULT 'legacy' CHECK (artifact_source IN ('legacy', 'payload'))`,
    );
    await queryRunner.query('ALTER TABLE artifact_signings DROP CONSTRAINT artifact_signings_pkey');
    await queryRunner.query(
      'ALTER TABLE artifact_signings ADD CONSTRAINT artifact_signings_pkey PRIMARY KEY (artifact_digest, key_name, key_version_id, artifact_source)',
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    // One row per (artifact, key, version) again: where both exist, the legacy row stays.
    await queryRunner.query(`
      DELETE FROM artifact_signings p USING artifact_signings l
      WHERE p.artifact_source = 'payload' AND l.artifact_source = 'legacy'
        AND p.artifact_digest = l.artifact_digest AND p.key_name = l.key_name AND p.key_version_id = l.key_version_id`);
    await queryRunner.query('ALTER TABLE artifact_signings DROP CONSTRAINT artifact_signings_pkey');
    await queryRunner.query(
      'ALTER TABLE artifact_signings ADD CONSTRAINT artifact_signings_pkey PRIMARY KEY (artifact_digest, key_name, key_version_id)',
    );
    await queryRunner.query('ALTER TABLE artifact_signings DROP COLUMN artifact_source');
  }
}
