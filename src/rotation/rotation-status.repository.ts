import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { EXTERNAL_KEY_URI } from '../ca/ca.service';

/** A CA generation still in use, with the longest leaf validity of its CA's keys. */
export interface GenerationInUseRow {
  ca: string;
  kind: string;
  generation: string;
  state: string;
  not_after: Date;
  max_leaf_days: number | null;
}

/** A key's rotation schedule and its active version, if any. */
export interface KeyScheduleRow {
  name: string;
  rotation: { schedule: string };
  activated_at: Date | null;
  has_active: boolean;
  external: boolean;
}

/**
 * The reads behind expiry and rotation health (`signet status`, GET /v1/status, metrics) and HSM
 * reconciliation: read-only, outside any transaction, across keys, CAs, rotations and the audit chain.
 */
@Injectable()
export class RotationStatusRepository {
  constructor(private readonly dataSource: DataSource) {}

  /** CA generations with a certificate unexpired at `now`: active, pending, or retired with unexpired certificates under them. */
  generationsInUse(now: Date): Promise<GenerationInUseRow[]> {
    return this.dataSource.query(
      `SELECT c.name AS ca, c.kind, g.name AS generation, g.state, g.not_after,
              (SELECT max(k.certificate_validity_days) FROM signing_keys k WHERE k.issuer_ca_id = c.id) AS max_leaf_days
         FROM ca_generations g JOIN cas c ON c.id = g.ca_id
        WHERE g.certificate IS NOT NULL AND g.not_after > $1
          AND (g.state <> 'retired' OR EXISTS (SELECT 1 FROM certificates x WHERE x.issuer_generation_id = g.id AND x.not_after > $1))
        ORDER BY c.name, g.generation`,
      [now],
    );
  }

  /** Each key's active version and when its certificate expires, by key name. */
  activeLeaves(): Promise<Array<{ key: string; version: number; not_after: Date | null }>> {
    return this.dataSource.query(
      `SELECT k.name AS key, v.version, v.not_after FROM key_versions v JOIN signing_keys k ON k.id = v.key_id WHERE v.state = 'active' ORDER BY k.name`,
    );
  }

  /** Every key with its schedule and active version (none: has_active false), by name. */
  keySchedules(): Promise<KeyScheduleRow[]> {
    return this.dataSource.query(
      `SELECT k.name, k.rotation, k.external, a.activated_at, (a.id IS NOT NULL) AS has_active
         FROM signing_keys k LEFT JOIN key_versions a ON a.key_id = k.id AND a.state = 'active' ORDER BY k.name`,
    );
  }

  /** The keys that have an active version, with their schedule and its activation time, by name. */
  activeKeySchedules(): Promise<Array<{ name: string; rotation: { schedule: string }; activated_at: Date | null }>> {
    return this.dataSource.query(
      `SELECT k.name, k.rotation, a.activated_at FROM signing_keys k JOIN key_versions a ON a.key_id = k.id AND a.state = 'active' ORDER BY k.name`,
    );
  }

  /**
   * The CRL validity of each unexpired generation Signet signs CRLs for. TSA CAs issue no CRL
   * (CrlService skips them): listing them would report a CRL missing forever.
   */
  crlStates(
    now: Date,
  ): Promise<Array<{ generation: string; crl_this_update: Date | null; crl_next_update: Date | null }>> {
    return this.dataSource.query(
      `SELECT g.name AS generation, g.crl_this_update, g.crl_next_update FROM ca_generations g JOIN cas c ON c.id = g.ca_id
        WHERE g.certificate IS NOT NULL AND g.key_uri <> $2 AND g.not_after > $1 AND c.kind <> 'tsa' ORDER BY g.name`,
      [now, EXTERNAL_KEY_URI],
    );
  }

  /** How many rotations are running, and how many activated (waiting to retire/destroy). */
  async unfinishedRotationCounts(): Promise<{ running: number; activated: number }> {
    const [counts] = await this.dataSource.query(
      `SELECT count(*) FILTER (WHERE state = 'running')::int AS running, count(*) FILTER (WHERE state = 'activated')::int AS activated FROM rotations`,
    );
    return counts;
  }

  /** Alerts of unfinished rotations, oldest rotation first. */
  openRotationAlerts(): Promise<Array<{ id: string; subject: string; alert: string }>> {
    return this.dataSource.query(
      `SELECT id, subject, alert FROM rotations WHERE alert IS NOT NULL AND state IN ('running', 'activated') ORDER BY started_at`,
    );
  }

  /** The audit chain's head, its last checkpoint, and the time of the oldest event after that checkpoint. */
  async auditCheckpointState(): Promise<{
    head_seq: string;
    checkpoint_seq: string | null;
    checkpoint_time: Date | null;
    oldest: Date | null;
  }> {
    const [state] = await this.dataSource.query(
      `WITH c AS (SELECT seq, time FROM audit_checkpoints ORDER BY seq DESC, id DESC LIMIT 1)
       SELECT (SELECT seq::text FROM audit_chain_head) AS head_seq, (SELECT seq::text FROM c) AS checkpoint_seq, (SELECT time FROM c) AS checkpoint_time,
              (SELECT e.time FROM audit_events e WHERE e.seq > COALESCE((SELECT seq FROM c), 0) ORDER BY e.seq LIMIT 1) AS oldest`,
    );
    return state;
  }

  /**
   * Every HSM key URI the database still needs: CA generations (all of them: old generations keep
   * signing CRLs and OCSP answers), key versions whose private key was not destroyed, and the keys
   * of audit checkpoints.
   */
  async referencedKeyUris(): Promise<string[]> {
    const rows: Array<{ key_uri: string }> = await this.dataSource.query(
      `SELECT key_uri FROM ca_generations WHERE key_uri <> $1
     UNION SELECT key_uri FROM key_versions WHERE destroyed_at IS NULL AND state <> 'destroyed'`,
      [EXTERNAL_KEY_URI],
    );
    const checkpoints: Array<{ key_ref: string }> = await this.dataSource.query(
      `SELECT DISTINCT key_ref FROM audit_checkpoints WHERE key_ref LIKE 'pkcs11:%'`,
    );
    return [...rows.map((row) => row.key_uri), ...checkpoints.map((row) => row.key_ref)];
  }

  /** CKA_IDs (hex) of the HSM keys running rotations planned and have not recorded yet, subordinate CA generations included. */
  async plannedHsmIds(): Promise<string[]> {
    const planned: Array<{ id: string | null }> = await this.dataSource.query(
      `SELECT plan->>'hsmId' AS id FROM rotations WHERE state = 'running'
     UNION SELECT s->>'hsmId' FROM rotations r, jsonb_array_elements(r.plan->'subordinates') s WHERE r.state = 'running'`,
    );
    return planned.map((row) => row.id).filter((id): id is string => !!id);
  }
}
