import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Truststores (named sets of root CAs) and their immutable, content-addressed versions: the
 * canonical content (src/truststore/truststore-content.ts), its digest, and the root fingerprints
 * the rotation gate asks about.
 */
export class Truststores1795000600000 implements MigrationInterface {
  name = 'Truststores1795000600000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE truststores (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        -- a DNS label: also the Notation trust store name and part of Kubernetes object names
        name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
        ca_ids uuid[] NOT NULL CHECK (cardinality(ca_ids) > 0),
        trust_policy jsonb NOT NULL,
        current_version integer NOT NULL DEFAULT 0 CHECK (current_version >= 0),
        current_digest text CHECK (current_digest ~ '^sha256:[0-9a-f]{64}$'),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`
      CREATE TABLE truststore_versions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        truststore_id uuid NOT NULL REFERENCES truststores(id) ON DELETE CASCADE,
        version integer NOT NULL CHECK (version > 0),
        digest text NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
        canonical bytea NOT NULL,
        root_sha256 text[] NOT NULL,
        reason jsonb NOT NULL,
        -- earliest revocation this version is the first to carry (revoke → converged time)
        revoked_at timestamptz,
        converged_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (truststore_id, version)
      )`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE truststore_versions');
    await queryRunner.query('DROP TABLE truststores');
  }
}
