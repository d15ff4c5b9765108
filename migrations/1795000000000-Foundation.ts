import { MigrationInterface, QueryRunner } from 'typeorm';

export class Foundation1795000000000 implements MigrationInterface {
  name = 'Foundation1795000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    // One row per first-start bootstrap step, so replicas starting together run each step once.
    await queryRunner.query(`
      CREATE TABLE bootstrap_steps (
        name text PRIMARY KEY,
        completed_at timestamptz NOT NULL DEFAULT now(),
        completed_by text NOT NULL
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE bootstrap_steps');
  }
}
