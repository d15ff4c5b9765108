import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every change to a distribution target's row (claimed for a push, delivered, failed, edited,
 * deleted) is announced on the `signet_distribution_target` channel with the target's id, by a
 * trigger, so every replica's `GET /v1/distribution/events` stream sees changes made by any
 * replica, and by code that predates the stream (side by side during a rolling upgrade). NOTIFY
 * is delivered on commit and folded per transaction; an unchanged row (same values) says nothing.
 */
export class DistributionTargetEvents1795000950000 implements MigrationInterface {
  name = 'DistributionTargetEvents1795000950000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE FUNCTION distribution_target_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('signet_distribution_target', (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END)::text);
        RETURN NULL;
      END $$`);
    await queryRunner.query(`
      CREATE TRIGGER distribution_target_changed AFTER INSERT OR DELETE ON distribution_targets
        FOR EACH ROW EXECUTE FUNCTION distribution_target_changed()`);
    await queryRunner.query(`
      CREATE TRIGGER distribution_target_updated AFTER UPDATE ON distribution_targets
        FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION distribution_target_changed()`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TRIGGER distribution_target_updated ON distribution_targets');
    await queryRunner.query('DROP TRIGGER distribution_target_changed ON distribution_targets');
    await queryRunner.query('DROP FUNCTION distribution_target_changed()');
  }
}
