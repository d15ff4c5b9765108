import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * "Which certificates signed this artifact?" (GET /v1/certificates?artifact=, issue #21) and the
 * audit log's artifact filter read the `sign` rows by their artifact digest: an expression index
 * on the partitioned audit table (each month's partition gets its own). An index only: older code
 * runs unchanged beside it.
 */
export class ConsoleSearch1795000960000 implements MigrationInterface {
  name = 'ConsoleSearch1795000960000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE INDEX IF NOT EXISTS audit_events_artifact_digest ON audit_events ((data #>> '{artifact,digest}')) WHERE type = 'sign'`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX audit_events_artifact_digest');
  }
}
