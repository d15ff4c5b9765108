import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The audit log under a least-privileged service role (src/database/app-role.ts): the role that
 * serves requests may read the audit tables and append to them, nothing more. What used to need
 * table ownership now goes through two functions owned by the migrating (owner) role, SECURITY
 * DEFINER with a fixed search_path, that do one narrow thing each:
 * - audit_create_partition(month): creates the monthly partition of audit_events (owned by the
 *   owner role, never the service role) with its own TRUNCATE guard;
 * - audit_drop_partition(name, min_age): retention's drop, refused unless the partition is the
 *   oldest one, ended at least min_age (one day at the least) ago, and every row in it was
 *   exported and is covered by a checkpoint; it records the drop in audit_retention_drops itself
 *   (the service role cannot insert there, so it cannot forge where a full verify starts).
 * A statement-level TRUNCATE trigger on a partitioned table is not cloned to its partitions, so
 * `TRUNCATE audit_events_p202401` went through; every partition now carries its own.
 * audit_verifications records the scheduled full verifies (one replica runs each; every replica
 * reports the latest in its metrics).
 */
export class AuditLeastPrivilege1795000900000 implements MigrationInterface {
  name = 'AuditLeastPrivilege1795000900000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE FUNCTION audit_create_partition(month_start timestamptz) RETURNS boolean
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
      DECLARE
        from_ts timestamptz := date_trunc('month', month_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
        to_ts timestamptz := (date_trunc('month', month_start AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
        partition_name text := 'audit_events_p' || to_char(month_start AT TIME ZONE 'UTC', 'YYYYMM');
      BEGIN
        IF month_start IS NULL OR month_start <> from_ts THEN
          RAISE EXCEPTION 'audit_create_partition: % is not the start of a UTC month', month_start USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF extract(year FROM from_ts AT TIME ZONE 'UTC') NOT BETWEEN 1970 AND 9998 THEN
          RAISE EXCEPTION 'audit_create_partition: year out of range' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- Same key as ADVISORY_LOCKS.auditPartitions: replicas racing on a month boundary.
        PERFORM pg_advisory_xact_lock(23442993671656609);
        IF to_regclass(partition_name) IS NOT NULL THEN
          RETURN false;
        END IF;
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)', partition_name, from_ts, to_ts);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()', partition_name || '_no_truncate', partition_name);
        RETURN true;
      END $$`);

    await queryRunner.query(`
      CREATE FUNCTION audit_drop_partition(partition_name text, min_age interval) RETURNS text
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
      DECLARE
        from_ts timestamptz;
        to_ts timestamptz;
        oldest text;
        first_seq bigint;
        last_seq bigint;
        last_hash bytea;
        exported bigint;
        checkpointed bigint;
      BEGIN
        IF partition_name IS NULL OR partition_name !~ '^audit_events_p[0-9]{4}(0[1-9]|1[0-2])$' THEN
          RAISE EXCEPTION 'audit_drop_partition: not an audit partition name' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- Same key as ADVISORY_LOCKS.auditRetention: one drop at a time across replicas.
        PERFORM pg_advisory_xact_lock(23442993671656611);
        SELECT min(c.relname) INTO oldest FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'audit_events'::regclass AND c.relname ~ '^audit_events_p[0-9]{6}$';
        IF NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_events'::regclass AND c.relname = partition_name) THEN
          RETURN 'gone';
        END IF;
        IF oldest <> partition_name THEN
          RAISE EXCEPTION 'audit_drop_partition: % is not the oldest audit partition (%)', partition_name, oldest USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        from_ts := make_timestamptz(substr(partition_name, 15, 4)::int, substr(partition_name, 19, 2)::int, 1, 0, 0, 0, 'UTC');
        to_ts := ((from_ts AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
        IF to_ts > now() - greatest(coalesce(min_age, interval '1 day'), interval '1 day') THEN
          RAISE EXCEPTION 'audit_drop_partition: % has not expired', partition_name USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        EXECUTE format('SELECT min(seq), max(seq) FROM %I', partition_name) INTO first_seq, last_seq;
        SELECT exported_through_seq INTO exported FROM audit_export_watermark;
        SELECT max(seq) INTO checkpointed FROM audit_checkpoints;
        IF last_seq IS NOT NULL THEN
          IF coalesce(exported, 0) < last_seq OR coalesce(checkpointed, 0) < last_seq THEN
            RAISE EXCEPTION 'audit_drop_partition: % holds rows not yet exported and checkpointed', partition_name USING ERRCODE = 'object_not_in_prerequisite_state';
          END IF;
          EXECUTE format('SELECT hash FROM %I WHERE seq = $1', partition_name) INTO last_hash USING last_seq;
        END IF;
        INSERT INTO audit_retention_drops (partition_name, range_from, range_to, first_seq, last_seq, last_hash)
        VALUES (partition_name, from_ts, to_ts, first_seq, last_seq, last_hash);
        EXECUTE format('DROP TABLE %I', partition_name);
        RETURN 'dropped';
      END $$`);

    // Functions are executable by PUBLIC by default: only the roles granted it may call these.
    await queryRunner.query('REVOKE ALL ON FUNCTION audit_create_partition(timestamptz) FROM PUBLIC');
    await queryRunner.query('REVOKE ALL ON FUNCTION audit_drop_partition(text, interval) FROM PUBLIC');

    // Partitions created before this migration get their TRUNCATE guard now.
    const partitions: Array<{ name: string }> = await queryRunner.query(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_events'::regclass`,
    );
    for (const { name } of partitions) {
      if (!/^audit_events_p\d{6}$/.test(name)) continue;
      await queryRunner.query(
        `CREATE TRIGGER ${name}_no_truncate BEFORE TRUNCATE ON ${name} FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()`,
      );
    }

    await queryRunner.query(`
      CREATE TABLE audit_verifications (
        id bigserial PRIMARY KEY,
        started_at timestamptz NOT NULL,
        finished_at timestamptz NOT NULL,
        mode text NOT NULL,
        ok boolean NOT NULL,
        checked bigint NOT NULL,
        head_seq bigint NOT NULL,
        first_broken_seq bigint,
        reason text,
        run_by text NOT NULL
      )`);
    await queryRunner.query('CREATE INDEX audit_verifications_started_at ON audit_verifications (started_at)');
    await queryRunner.query(
      `CREATE TRIGGER audit_verifications_append_only BEFORE UPDATE OR DELETE ON audit_verifications FOR EACH ROW EXECUTE FUNCTION audit_append_only()`,
    );
    await queryRunner.query(
      `CREATE TRIGGER audit_verifications_no_truncate BEFORE TRUNCATE ON audit_verifications FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE audit_verifications');
    const partitions: Array<{ name: string }> = await queryRunner.query(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_events'::regclass`,
    );
    for (const { name } of partitions) {
      if (/^audit_events_p\d{6}$/.test(name))
        await queryRunner.query(`DROP TRIGGER IF EXISTS ${name}_no_truncate ON ${name}`);
    }
    await queryRunner.query('DROP FUNCTION audit_drop_partition(text, interval)');
    await queryRunner.query('DROP FUNCTION audit_create_partition(timestamptz)');
  }
}
