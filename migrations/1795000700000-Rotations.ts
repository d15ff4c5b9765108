import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Rotations as persisted, idempotent steps: signing-key rotations (new HSM key → certificate →
 * activate → retire the old version after the overlap → destroy its private key after retention)
 * and CA rollovers (new key generation → certificate → [root: subordinate generations → distribution
 * gate] → activate). Each step's outcome is written in the transaction that makes it, so a process
 * killed at any point resumes the same rotation from here.
 */
export class Rotations1795000700000 implements MigrationInterface {
  name = 'Rotations1795000700000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE rotations (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        kind text NOT NULL CHECK (kind IN ('key', 'ca')),
        key_id uuid REFERENCES signing_keys(id),
        ca_id uuid REFERENCES cas(id),
        -- the key or CA name, for listings
        subject text NOT NULL,
        trigger text NOT NULL CHECK (trigger IN ('schedule', 'manual', 'revocation', 'no-active-version', 'ca-lifetime')),
        -- the schedule occurrence a scheduled rotation answers (one rotation per occurrence)
        due_at timestamptz,
        -- running: before activation · activated: waiting to retire/destroy the old version · completed · failed
        state text NOT NULL CHECK (state IN ('running', 'activated', 'completed', 'failed')),
        -- [{name, state, attempts, startedAt, finishedAt, waitingUntil, error, detail}], in order
        steps jsonb NOT NULL,
        -- versions/generations, HSM object ids and labels chosen when the rotation was created
        plan jsonb NOT NULL,
        next_run_at timestamptz NOT NULL,
        -- an open alert (e.g. the root distribution gate timed out)
        alert text,
        reason text,
        requested_by jsonb,
        started_at timestamptz NOT NULL,
        completed_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK ((kind = 'key') = (key_id IS NOT NULL) AND (kind = 'ca') = (ca_id IS NOT NULL))
      )`);
    // Never two rotations of one key (or CA) before activation, whatever the replicas do.
    await queryRunner.query(
      `CREATE UNIQUE INDEX rotations_one_running_per_key ON rotations (key_id) WHERE kind = 'key' AND state = 'running'`,
    );
    await queryRunner.query(
      `CREATE UNIQUE INDEX rotations_one_running_per_ca ON rotations (ca_id) WHERE kind = 'ca' AND state = 'running'`,
    );
    // A schedule occurrence rotates a key once, even across restarts and replicas.
    await queryRunner.query(
      `CREATE UNIQUE INDEX rotations_once_per_occurrence ON rotations (key_id, due_at) WHERE trigger = 'schedule'`,
    );
    await queryRunner.query(
      `CREATE INDEX rotations_due ON rotations (next_run_at) WHERE state IN ('running', 'activated')`,
    );
    await queryRunner.query(`CREATE INDEX rotations_by_subject ON rotations (subject, started_at DESC)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE rotations');
  }
}
