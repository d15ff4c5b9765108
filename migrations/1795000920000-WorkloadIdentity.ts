import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * OIDC workload identity (issue #20): identity providers, workload rules that grant the signer role
 * on named keys to ID tokens whose claims match, the single-use `jti` ledger shared by replicas,
 * and an index that lets `GET /v1/audit?subject=` find rows made under an ID token by its `sub`.
 * New tables only (plus an index): code without workload identity runs unchanged beside it.
 */
export class WorkloadIdentity1795000920000 implements MigrationInterface {
  name = 'WorkloadIdentity1795000920000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE identity_providers (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE,
        -- exactly as the issuer writes it in its tokens' iss and its discovery document
        issuer text NOT NULL UNIQUE,
        audiences text[] NOT NULL CHECK (cardinality(audiences) > 0),
        allowed_algorithms text[] NOT NULL CHECK (cardinality(allowed_algorithms) > 0),
        jwks_uri text,
        clock_skew_seconds integer NOT NULL CHECK (clock_skew_seconds BETWEEN 0 AND 300),
        single_use boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`
      CREATE TABLE workload_rules (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE,
        -- a provider's rules go with it
        provider_id uuid NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
        -- claim name -> exact string or glob with *
        claims jsonb NOT NULL CHECK (jsonb_typeof(claims) = 'object'),
        key_names text[] NOT NULL CHECK (cardinality(key_names) > 0),
        expires_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query('CREATE INDEX workload_rules_provider ON workload_rules (provider_id)');
    await queryRunner.query(`
      CREATE TABLE oidc_used_tokens (
        provider_id uuid NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
        jti text NOT NULL,
        -- the token's exp: after it the row can go (the token is refused as expired anyway)
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (provider_id, jti)
      )`);
    await queryRunner.query('CREATE INDEX oidc_used_tokens_expires_at ON oidc_used_tokens (expires_at)');
    await queryRunner.query(
      `CREATE INDEX IF NOT EXISTS audit_events_workload_sub ON audit_events ((actor #>> '{workload,sub}')) WHERE actor ? 'workload'`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX audit_events_workload_sub');
    await queryRunner.query('DROP TABLE oidc_used_tokens');
    await queryRunner.query('DROP TABLE workload_rules');
    await queryRunner.query('DROP TABLE identity_providers');
  }
}
