import { MigrationInterface, QueryRunner } from 'typeorm';

/** API bearer tokens (src/auth): only a SHA-256 of each token is stored. */
export class ApiTokens1795000100001 implements MigrationInterface {
  name = 'ApiTokens1795000100001';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE api_tokens (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        role text NOT NULL CHECK (role IN ('admin', 'signer', 'security-officer', 'auditor')),
        key_grants text[] NOT NULL DEFAULT '{}',
        token_hash bytea NOT NULL,
        rate_limit_per_second integer CHECK (rate_limit_per_second > 0),
        expires_at timestamptz,
        revoked_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz
      )`);
    await queryRunner.query('CREATE UNIQUE INDEX api_tokens_token_hash ON api_tokens (token_hash)');
    // A revoked token's name may be reused by its replacement.
    await queryRunner.query('CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE api_tokens');
  }
}
