import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * audit_append_batch: appends a batch the caller chained onto the head it expects, in one
 * statement (so in one round trip, committed when the statement ends under autocommit). It locks
 * the head row — the same per-batch lock the read-then-write path takes, so replicas still keep
 * one unbroken chain — and writes only if the head is still (expected_seq, expected_hash);
 * otherwise it writes nothing and returns the current head for the caller to chain onto.
 * `events` is a jsonb array of [seq, time, type, actor, subject, data, prev_hash hex, hash hex].
 */
export class AuditAppendBatch1795000800000 implements MigrationInterface {
  name = 'AuditAppendBatch1795000800000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE FUNCTION audit_append_batch(expected_seq bigint, expected_hash bytea, events jsonb, new_seq bigint, new_hash bytea, new_time timestamptz)
      RETURNS TABLE (appended boolean, head_seq text, head_hash bytea, head_time_ms text)
      LANGUAGE plpgsql AS $$
      DECLARE
        head audit_chain_head%ROWTYPE;
      BEGIN
        SELECT * INTO STRICT head FROM audit_chain_head FOR UPDATE;
        IF head.seq <> expected_seq OR head.hash <> expected_hash THEN
          RETURN QUERY SELECT false, head.seq::text, head.hash, (extract(epoch FROM head.time) * 1000)::bigint::text;
          RETURN;
        END IF;
        INSERT INTO audit_events (seq, time, type, actor, subject, data, prev_hash, hash)
        SELECT (e->>0)::bigint, (e->>1)::timestamptz, e->>2, NULLIF(e->3, 'null'::jsonb), e->>4, e->5, decode(e->>6, 'hex'), decode(e->>7, 'hex')
        FROM jsonb_array_elements(events) AS e;
        UPDATE audit_chain_head SET seq = new_seq, hash = new_hash, time = new_time;
        RETURN QUERY SELECT true, new_seq::text, new_hash, (extract(epoch FROM new_time) * 1000)::bigint::text;
      END $$`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP FUNCTION audit_append_batch(bigint, bytea, jsonb, bigint, bytea, timestamptz)');
  }
}
