import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The signing use case (src/signing):
 * - `artifact_signings`: the first signature each key version made for an artifact, the promotion
 *   policy's evidence ("every required key already signed this artifact"), looked up by one index.
 * - `sign_idempotency`: claimed before signing, holding the response once it was produced, so a
 *   retried request with the same (token, idempotencyKey) gets the original answer on any replica.
 */
export class Signing1795000500000 implements MigrationInterface {
  name = 'Signing1795000500000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE artifact_signings (
        artifact_digest text NOT NULL CHECK (artifact_digest ~ '^sha(256:[0-9a-f]{64}|384:[0-9a-f]{96}|512:[0-9a-f]{128})$'),
        key_name text NOT NULL,
        key_version_id uuid NOT NULL REFERENCES key_versions(id),
        key_version integer NOT NULL,
        first_signed_at timestamptz NOT NULL DEFAULT now(),
        -- the audit row of that first signature
        audit_seq bigint,
        PRIMARY KEY (artifact_digest, key_name, key_version_id)
      )`);
    await queryRunner.query(`
      CREATE TABLE sign_idempotency (
        token_id uuid NOT NULL,
        idempotency_key text NOT NULL,
        -- SHA-256 over the key name and the request's canonical fields
        fingerprint bytea NOT NULL,
        state text NOT NULL CHECK (state IN ('pending', 'done')),
        -- the exact JSON body first answered (state 'done')
        response text,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (token_id, idempotency_key)
      )`);
    await queryRunner.query('CREATE INDEX sign_idempotency_created_at ON sign_idempotency (created_at)');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE sign_idempotency');
    await queryRunner.query('DROP TABLE artifact_signings');
  }
}
