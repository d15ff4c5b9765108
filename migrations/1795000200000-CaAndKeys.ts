import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * CA hierarchy (CAs and their key generations), signing keys and their versions, and every
 * certificate Signet issued or imported (the source of CRLs and OCSP answers).
 */
export class CaAndKeys1795000200000 implements MigrationInterface {
  name = 'CaAndKeys1795000200000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE cas (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
        kind text NOT NULL CHECK (kind IN ('root', 'issuing', 'tsa-root', 'tsa')),
        parent_id uuid REFERENCES cas(id),
        key_spec text NOT NULL,
        subject jsonb NOT NULL,
        validity_days integer NOT NULL CHECK (validity_days > 0),
        -- offline-root mode: the issuing CA's key and CSR exist, its chain comes from elsewhere
        external boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`
      CREATE TABLE ca_generations (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        ca_id uuid NOT NULL REFERENCES cas(id),
        generation integer NOT NULL CHECK (generation > 0),
        -- the public name in /pki/{name}.crt, /pki/{name}.crl and /ocsp/{name}
        name text NOT NULL UNIQUE,
        state text NOT NULL CHECK (state IN ('pending', 'active', 'retired')),
        key_uri text NOT NULL,
        certificate bytea,
        csr bytea,
        -- the chain above this generation (DER, parent first), empty for roots
        chain bytea[] NOT NULL DEFAULT '{}',
        serial text,
        parent_generation_id uuid REFERENCES ca_generations(id),
        not_before timestamptz,
        not_after timestamptz,
        crl_number bigint NOT NULL DEFAULT 0,
        crl bytea,
        crl_this_update timestamptz,
        crl_next_update timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (ca_id, generation)
      )`);
    // One generation of a CA issues at a time.
    await queryRunner.query(
      `CREATE UNIQUE INDEX ca_generations_one_active ON ca_generations (ca_id) WHERE state = 'active'`,
    );

    await queryRunner.query(`
      CREATE TABLE signing_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
        key_spec text NOT NULL,
        subject jsonb NOT NULL,
        issuer_ca_id uuid REFERENCES cas(id),
        external boolean NOT NULL DEFAULT false,
        certificate_validity_days integer NOT NULL,
        rotation jsonb NOT NULL,
        requires text[] NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`
      CREATE TABLE key_versions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        key_id uuid NOT NULL REFERENCES signing_keys(id),
        version integer NOT NULL CHECK (version > 0),
        state text NOT NULL CHECK (state IN ('pending', 'published', 'active', 'retiring', 'retired', 'destroyed', 'revoked')),
        key_uri text NOT NULL,
        public_key bytea NOT NULL,
        certificate bytea,
        -- external-CA mode: the CSR handed out, until the chain is imported
        csr bytea,
        -- issuing CA(s) and root above the leaf, DER, leaf's issuer first
        chain bytea[] NOT NULL DEFAULT '{}',
        serial text,
        issuer_generation_id uuid REFERENCES ca_generations(id),
        not_before timestamptz,
        not_after timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        activated_at timestamptz,
        retired_at timestamptz,
        destroyed_at timestamptz,
        revoked_at timestamptz,
        UNIQUE (key_id, version)
      )`);
    // At most one active version per key, enforced by the database (rotation swaps in one transaction).
    await queryRunner.query(
      `CREATE UNIQUE INDEX key_versions_one_active ON key_versions (key_id) WHERE state = 'active'`,
    );

    await queryRunner.query(`
      CREATE TABLE certificates (
        serial text PRIMARY KEY CHECK (serial ~ '^[0-9a-f]+$'),
        kind text NOT NULL CHECK (kind IN ('root-ca', 'issuing-ca', 'code-signing', 'tsa-root', 'timestamping')),
        -- the CA key generation that signed it (NULL for self-signed roots)
        issuer_generation_id uuid REFERENCES ca_generations(id),
        key_version_id uuid REFERENCES key_versions(id),
        ca_generation_id uuid REFERENCES ca_generations(id),
        subject_dn text NOT NULL,
        not_before timestamptz NOT NULL,
        not_after timestamptz NOT NULL,
        der bytea NOT NULL,
        revoked_at timestamptz,
        revocation_reason text,
        invalidity_date timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(
      `CREATE INDEX certificates_by_issuer ON certificates (issuer_generation_id) WHERE revoked_at IS NOT NULL`,
    );
    await queryRunner.query(`CREATE INDEX certificates_by_key_version ON certificates (key_version_id)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE certificates');
    await queryRunner.query('DROP TABLE key_versions');
    await queryRunner.query('DROP TABLE signing_keys');
    await queryRunner.query('DROP TABLE ca_generations');
    await queryRunner.query('DROP TABLE cas');
  }
}
