import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Distribution: regions, targets with their reconcile state (desired = the truststore's current
 * version; delivered = what the target was last read back holding; a lease for the replica that
 * claimed it), and the delivery records the rotation gate and status read.
 */
export class Distribution1795000610000 implements MigrationInterface {
  name = 'Distribution1795000610000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE distribution_regions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
        offline boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`
      CREATE TABLE distribution_targets (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        region_id uuid NOT NULL REFERENCES distribution_regions(id),
        name text NOT NULL CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
        kind text NOT NULL CHECK (kind IN ('oci-registry', 'harbor', 'kubernetes')),
        endpoint text NOT NULL,
        settings jsonb NOT NULL DEFAULT '{}',
        truststore_id uuid NOT NULL REFERENCES truststores(id),
        required boolean NOT NULL DEFAULT true,
        -- sealed with the HSM sealing key, AAD 'distribution-target:<id>'; never returned
        credentials_sealed bytea,
        config_revision integer NOT NULL DEFAULT 1,
        delivered_version integer,
        delivered_digest text,
        delivered_at timestamptz,
        verified_at timestamptz,
        attempt_digest text,
        attempts integer NOT NULL DEFAULT 0,
        last_attempt_at timestamptz,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'retrying', 'blocked')),
        last_error text,
        last_error_kind text,
        force_push boolean NOT NULL DEFAULT false,
        lease_token uuid,
        lease_until timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (region_id, name)
      )`);
    await queryRunner.query(`CREATE INDEX distribution_targets_by_truststore ON distribution_targets (truststore_id)`);
    await queryRunner.query(`CREATE INDEX distribution_targets_due ON distribution_targets (next_attempt_at)`);
    await queryRunner.query(`
      CREATE TABLE distribution_deliveries (
        id bigserial PRIMARY KEY,
        target_id uuid NOT NULL REFERENCES distribution_targets(id) ON DELETE CASCADE,
        truststore_id uuid NOT NULL REFERENCES truststores(id),
        version integer NOT NULL,
        digest text NOT NULL,
        delivered_at timestamptz NOT NULL DEFAULT now(),
        attempts integer NOT NULL,
        converge_ms bigint NOT NULL,
        -- the target already held the digest (an earlier attempt or another replica pushed it)
        skipped boolean NOT NULL,
        details jsonb NOT NULL DEFAULT '{}'
      )`);
    await queryRunner.query(
      `CREATE INDEX distribution_deliveries_by_target ON distribution_deliveries (target_id, delivered_at)`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE distribution_deliveries');
    await queryRunner.query('DROP TABLE distribution_targets');
    await queryRunner.query('DROP TABLE distribution_regions');
  }
}
