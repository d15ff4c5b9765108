import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A scheduled rotation that failed for good (e.g. its new version was revoked before activation)
 * no longer holds its schedule occurrence: the next tick may answer the occurrence with a new one.
 */
export class RotationRetryAfterFailure1795000700001 implements MigrationInterface {
  name = 'RotationRetryAfterFailure1795000700001';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX rotations_once_per_occurrence');
    await queryRunner.query(
      `CREATE UNIQUE INDEX rotations_once_per_occurrence ON rotations (key_id, due_at) WHERE trigger = 'schedule' AND state <> 'failed'`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX rotations_once_per_occurrence');
    await queryRunner.query(
      `CREATE UNIQUE INDEX rotations_once_per_occurrence ON rotations (key_id, due_at) WHERE trigger = 'schedule'`,
    );
  }
}
