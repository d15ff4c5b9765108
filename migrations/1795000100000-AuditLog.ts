import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The hash-chained audit log (src/audit). Events are range-partitioned by month on `time`;
 * partitions are created by the application ahead of time and on demand, so this migration
 * creates none. The primary key includes the partition key, as PostgreSQL requires; uniqueness
 * of `seq` comes from the chain head row, which every writer locks for its batch.
 */
export class AuditLog1795000100000 implements MigrationInterface {
  name = 'AuditLog1795000100000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE audit_events (
        seq bigint NOT NULL,
        time timestamptz NOT NULL,
        type text NOT NULL,
        actor jsonb,
        subject text,
        data jsonb NOT NULL,
        prev_hash bytea NOT NULL,
        hash bytea NOT NULL,
        PRIMARY KEY (seq, time)
      ) PARTITION BY RANGE (time)`);

    // One row: the last (seq, hash, time) of the chain. Locking it serialises batches across replicas.
    await queryRunner.query(`
      CREATE TABLE audit_chain_head (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        seq bigint NOT NULL,
        hash bytea NOT NULL,
        time timestamptz NOT NULL
      )`);
    await queryRunner.query(
      `INSERT INTO audit_chain_head (seq, hash, time) VALUES (0, decode(repeat('00', 32), 'hex'), 'epoch')`,
    );

    await queryRunner.query(`
      CREATE TABLE audit_checkpoints (
        id bigserial PRIMARY KEY,
        seq bigint NOT NULL,
        hash bytea NOT NULL,
        time timestamptz NOT NULL,
        key_spec text NOT NULL,
        public_key bytea NOT NULL,
        key_ref text,
        signature bytea NOT NULL
      )`);
    await queryRunner.query('CREATE INDEX audit_checkpoints_seq ON audit_checkpoints (seq)');

    // Everything up to this seq was served by an unfiltered export, in one contiguous run.
    await queryRunner.query(`
      CREATE TABLE audit_export_watermark (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        exported_through_seq bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query('INSERT INTO audit_export_watermark (exported_through_seq) VALUES (0)');

    // What retention dropped, so a full verify knows where the kept chain must start and link to.
    await queryRunner.query(`
      CREATE TABLE audit_retention_drops (
        partition_name text PRIMARY KEY,
        range_from timestamptz NOT NULL,
        range_to timestamptz NOT NULL,
        first_seq bigint,
        last_seq bigint,
        last_hash bytea,
        dropped_at timestamptz NOT NULL DEFAULT now()
      )`);

    // Append-only at the database level: rows are never updated or deleted by Signet (retention
    // drops whole partitions, which row triggers do not see). Tamper tests disable these explicitly.
    await queryRunner.query(`
      CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'the audit log is append-only (% on %)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
      END
      $$`);
    for (const table of ['audit_events', 'audit_checkpoints', 'audit_retention_drops']) {
      await queryRunner.query(
        `CREATE TRIGGER ${table}_append_only BEFORE UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION audit_append_only()`,
      );
      await queryRunner.query(
        `CREATE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()`,
      );
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE audit_retention_drops');
    await queryRunner.query('DROP TABLE audit_export_watermark');
    await queryRunner.query('DROP TABLE audit_checkpoints');
    await queryRunner.query('DROP TABLE audit_chain_head');
    await queryRunner.query('DROP TABLE audit_events');
    await queryRunner.query('DROP FUNCTION audit_append_only()');
  }
}
