import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `truststores.trust_manager`: the truststore's trust-manager settings (the Bundle's namespace
 * selector), NULL for the defaults. Nullable and unread by older code (expand): replicas of the
 * previous release keep working beside this one; down drops the column.
 */
export class TruststoreTrustManager1795000930000 implements MigrationInterface {
  name = 'TruststoreTrustManager1795000930000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE truststores ADD COLUMN IF NOT EXISTS trust_manager jsonb NULL CHECK (trust_manager IS NULL OR jsonb_typeof(trust_manager) = 'object')`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE truststores DROP COLUMN IF EXISTS trust_manager');
  }
}
