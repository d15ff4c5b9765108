import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Security console sessions (issue #21): an API token exchanged once for a cookie. Only a SHA-256
 * of the session id is kept; the CSRF token is derived from the session id, so it is stored
 * nowhere. A session belongs to its token: revoking or expiring the token ends it (checked on every
 * request by joining api_tokens). New table only: code without sessions runs unchanged beside it.
 */
export class ConsoleSessions1795000940000 implements MigrationInterface {
  name = 'ConsoleSessions1795000940000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE console_sessions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        session_hash bytea NOT NULL UNIQUE CHECK (octet_length(session_hash) = 32),
        token_id uuid NOT NULL REFERENCES api_tokens (id),
        created_at timestamptz NOT NULL DEFAULT now(),
        last_seen_at timestamptz NOT NULL DEFAULT now(),
        -- the absolute timeout, never later than the token's own expiry
        expires_at timestamptz NOT NULL,
        ended_at timestamptz,
        end_reason text,
        address text NOT NULL
      )`);
    await queryRunner.query(
      'CREATE INDEX console_sessions_token ON console_sessions (token_id) WHERE ended_at IS NULL',
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE console_sessions');
  }
}
