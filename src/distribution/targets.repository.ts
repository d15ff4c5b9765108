import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { DistributionTargetEntity } from './distribution-target.entity';
import type { TrustTargetKind } from './drivers/trust-target';
import { RegionEntity } from './region.entity';
import { returnedRows } from './sql-rows';
import type { TargetSettings } from './target-definition';

/** A target claimed for one attempt, with what it should hold. */
export interface ClaimedTarget {
  id: string;
  region: string;
  name: string;
  kind: TrustTargetKind;
  endpoint: string;
  settings: TargetSettings;
  truststoreId: string;
  truststore: string;
  credentialsSealed: Buffer | null;
  configRevision: number;
  /** Its last attempt failed. */
  suspect: boolean;
  deliveredDigest: string | null;
  deliveredVersion: number | null;
  attempts: number;
  forcePush: boolean;
  leaseToken: string;
  desiredVersion: number;
  desiredDigest: string;
  /** When the target started to need this version: the version's creation, or the target's if it came later. */
  desiredSince: Date;
}

/** A target's identity as the credential re-sealing needs it. */
export type SealedTarget = Pick<ClaimedTarget, 'id' | 'region' | 'name' | 'endpoint' | 'credentialsSealed'>;

/** A lease's holder: the target and the token its claim returned. */
export type Lease = Pick<ClaimedTarget, 'id' | 'leaseToken'>;

/** The delivery a successful attempt records (the target row, and a delivery row when `delivery`). */
export interface DeliveryRecord {
  heldVersion: number;
  /** A new digest, or a push: counts as an attempt and writes a delivery row. */
  delivery: boolean;
  convergeMs: number;
  skipped: boolean;
  details: Record<string, unknown>;
}

/** What the claim's lease and verification periods are. */
export interface ClaimOptions {
  limit: number;
  /** Targets whose last attempt failed (false: the others). */
  suspects: boolean;
  leaseSeconds: number;
  verifySeconds: number;
}

/** A truststore version that every target of its truststore now holds. */
export interface ConvergedVersion {
  version: number;
  revokedAt: Date | null;
  convergedAt: Date;
}

/** Status of every region with its targets, one row per target (or one row with no target). */
export interface TargetStatusRow {
  id: string | null;
  region: string;
  offline: boolean;
  name: string | null;
  kind: string;
  endpoint: string;
  truststore: string;
  required: boolean;
  has_credentials: boolean;
  desired_version: number;
  desired_digest: string;
  desired_since: Date;
  delivered_version: number | null;
  delivered_digest: string | null;
  delivered_at: Date | null;
  verified_at: Date | null;
  delivered_version_created_at: Date | null;
  attempts: number;
  last_attempt_at: Date | null;
  next_attempt_at: Date | null;
  state: string;
  last_error: string | null;
  last_error_kind: string | null;
  force_push: boolean;
  leased: boolean;
}

export interface TruststoreConvergenceRow {
  name: string;
  version: number;
  digest: string;
  created_at: Date;
  converged_at: Date | null;
  rev_version: number | null;
  revoked_at: Date | null;
  rev_converged_at: Date | null;
}

/**
 * The targets aggregate: regions, their targets with the reconcile state and lease, and the
 * delivery rows. The claim (`claimDue`) is the lock that lets replicas share the work.
 */
@Injectable()
export class TargetsRepository {
  constructor(private readonly dataSource: DataSource) {}

  // Regions

  regionExists(name: string): Promise<boolean> {
    return this.dataSource.getRepository(RegionEntity).existsBy({ name });
  }

  insertRegion(manager: EntityManager, fields: { name: string; offline: boolean }): Promise<RegionEntity> {
    return manager.getRepository(RegionEntity).save(manager.getRepository(RegionEntity).create(fields));
  }

  regions(): Promise<RegionEntity[]> {
    return this.dataSource.getRepository(RegionEntity).find({ order: { name: 'ASC' } });
  }

  regionByName(name: string): Promise<RegionEntity | null> {
    return this.dataSource.getRepository(RegionEntity).findOneBy({ name });
  }

  async deleteRegion(manager: EntityManager, id: string): Promise<void> {
    await manager.delete(RegionEntity, { id });
  }

  countTargetsIn(manager: EntityManager, regionId: string): Promise<number> {
    return manager.getRepository(DistributionTargetEntity).countBy({ regionId });
  }

  async targetNamesIn(regionId: string): Promise<string[]> {
    const targets = await this.dataSource
      .getRepository(DistributionTargetEntity)
      .find({ select: { name: true }, where: { regionId }, order: { name: 'ASC' } });
    return targets.map((t) => t.name);
  }

  // Targets

  targetExists(regionId: string, name: string): Promise<boolean> {
    return this.dataSource.getRepository(DistributionTargetEntity).existsBy({ regionId, name });
  }

  /** The target named `name` in the region, with its sealed credentials when asked (never selected otherwise). */
  targetIn(
    regionId: string,
    name: string,
    withCredentials: boolean,
    manager: EntityManager = this.dataSource.manager,
  ): Promise<DistributionTargetEntity | null> {
    const query = manager
      .getRepository(DistributionTargetEntity)
      .createQueryBuilder('t')
      .where('t.region_id = :region AND t.name = :name', { region: regionId, name });
    if (withCredentials) query.addSelect('t.credentialsSealed');
    return query.getOne();
  }

  async insertTarget(manager: EntityManager, fields: Partial<DistributionTargetEntity>): Promise<void> {
    await manager.getRepository(DistributionTargetEntity).insert(fields);
  }

  async updateTarget(manager: EntityManager, id: string, fields: Partial<DistributionTargetEntity>): Promise<void> {
    await manager.update(DistributionTargetEntity, { id }, fields);
  }

  async deleteTarget(manager: EntityManager, id: string): Promise<void> {
    await manager.delete(DistributionTargetEntity, { id });
  }

  /** Targets whose credentials were sealed before origins were bound (format byte 1). */
  legacySealedCredentials(): Promise<
    Array<{ id: string; region: string; name: string; endpoint: string; credentials_sealed: Buffer }>
  > {
    return this.dataSource.query(
      `SELECT t.id, r.name AS region, t.name, t.endpoint, t.credentials_sealed
         FROM distribution_targets t JOIN distribution_regions r ON r.id = t.region_id
        WHERE t.credentials_sealed IS NOT NULL AND get_byte(t.credentials_sealed, 0) = 1`,
    );
  }

  /** Replaces the sealed credentials unless they or the endpoint changed since `target` was read; true when replaced. */
  async replaceSealedCredentials(target: SealedTarget, resealed: Buffer): Promise<boolean> {
    const rows = returnedRows<{ id: string }>(
      await this.dataSource.query(
        `UPDATE distribution_targets SET credentials_sealed = $3 WHERE id = $1 AND credentials_sealed = $2 AND endpoint = $4 RETURNING id`,
        [target.id, target.credentialsSealed, resealed, target.endpoint],
      ),
    );
    return rows.length > 0;
  }

  // The reconcile state and its lease

  /**
   * Claims up to `limit` due targets in one statement (SELECT … FOR UPDATE SKIP LOCKED, then a
   * lease): two replicas never claim the same target, and the lease commits before any push, so a
   * crashed replica's claim simply ends when the lease does.
   */
  async claimDue({ limit, suspects, leaseSeconds, verifySeconds }: ClaimOptions): Promise<ClaimedTarget[]> {
    const result: unknown = await this.dataSource.query(
      `WITH due AS (
         SELECT t.id
           FROM distribution_targets t
           JOIN truststores s ON s.id = t.truststore_id
          WHERE s.current_digest IS NOT NULL
            AND (t.lease_until IS NULL OR t.lease_until < now())
            AND (t.last_error_kind IS NOT NULL) = $4
            AND (
                  ((t.delivered_digest IS DISTINCT FROM s.current_digest OR t.force_push)
                    AND (t.attempt_digest IS DISTINCT FROM s.current_digest OR t.next_attempt_at <= now()))
               OR (t.delivered_digest = s.current_digest AND NOT t.force_push AND t.next_attempt_at <= now()
                    AND (t.verified_at IS NULL OR ($3::int > 0 AND t.verified_at < now() - make_interval(secs => $3::int))))
                )
          ORDER BY (t.attempt_digest IS DISTINCT FROM s.current_digest) DESC, t.next_attempt_at
          LIMIT $2
          FOR UPDATE OF t SKIP LOCKED
       )
       UPDATE distribution_targets t
          SET lease_token = gen_random_uuid(),
              lease_until = now() + make_interval(secs => $1::int),
              last_attempt_at = now(),
              attempts = CASE WHEN t.attempt_digest IS DISTINCT FROM s.current_digest THEN 0 ELSE t.attempts END,
              attempt_digest = s.current_digest
         FROM due, truststores s, distribution_regions r, truststore_versions v
        WHERE t.id = due.id AND s.id = t.truststore_id AND r.id = t.region_id
          AND v.truststore_id = s.id AND v.version = s.current_version
      RETURNING t.id, r.name AS region, t.name, t.kind, t.endpoint, t.settings, t.truststore_id, s.name AS truststore,
                t.credentials_sealed, t.config_revision, t.delivered_digest, t.delivered_version, t.attempts, t.force_push, t.lease_token,
                s.current_version AS desired_version, s.current_digest AS desired_digest,
                GREATEST(v.created_at, t.created_at) AS desired_since`,
      [leaseSeconds, limit, verifySeconds, suspects],
    );
    return returnedRows<Record<string, unknown>>(result).map((row) => ({
      id: row.id as string,
      region: row.region as string,
      name: row.name as string,
      kind: row.kind as TrustTargetKind,
      endpoint: row.endpoint as string,
      settings: row.settings as TargetSettings,
      truststoreId: row.truststore_id as string,
      truststore: row.truststore as string,
      credentialsSealed: (row.credentials_sealed as Buffer | null) ?? null,
      configRevision: row.config_revision as number,
      suspect: suspects,
      deliveredDigest: (row.delivered_digest as string | null) ?? null,
      deliveredVersion: (row.delivered_version as number | null) ?? null,
      attempts: row.attempts as number,
      forcePush: row.force_push as boolean,
      leaseToken: row.lease_token as string,
      desiredVersion: row.desired_version as number,
      desiredDigest: row.desired_digest as string,
      desiredSince: new Date(row.desired_since as string),
    }));
  }

  /**
   * Records a successful attempt under its lease and ends the lease, with a delivery row when it
   * delivered something, in one short transaction (no network, no audit wait while holding a
   * pooled connection). Returns the attempts it took.
   */
  recordDelivered(target: ClaimedTarget, record: DeliveryRecord): Promise<number> {
    return this.dataSource.transaction(async (manager) => {
      const updated = returnedRows<{ attempts: number }>(
        await manager.query(
          `UPDATE distribution_targets
              SET delivered_version = $3, delivered_digest = $4,
                  delivered_at = CASE WHEN delivered_digest IS DISTINCT FROM $4 THEN now() ELSE delivered_at END,
                  verified_at = now(),
                  attempts = CASE WHEN $5 THEN attempts + 1 ELSE attempts END,
                  state = 'delivered', last_error = NULL, last_error_kind = NULL, force_push = false,
                  lease_token = NULL, lease_until = NULL, next_attempt_at = now()
            WHERE id = $1 AND lease_token = $2
        RETURNING attempts`,
          [target.id, target.leaseToken, record.heldVersion, target.desiredDigest, record.delivery],
        ),
      );
      const count = updated[0]?.attempts ?? target.attempts + 1;
      if (record.delivery) {
        await manager.query(
          `INSERT INTO distribution_deliveries (target_id, truststore_id, version, digest, delivered_at, attempts, converge_ms, skipped, details)
           VALUES ($1, $2, $3, $4, now(), $5, $6, $7, $8)`,
          [
            target.id,
            target.truststoreId,
            target.desiredVersion,
            target.desiredDigest,
            count,
            record.convergeMs,
            record.skipped,
            record.details,
          ],
        );
      }
      return count;
    });
  }

  /**
   * Marks converged the versions of the truststore (up to `version`) that every one of its targets
   * now holds or has moved past, and returns them. Run after a delivery commits: whichever delivery
   * commits last sees every other one, so a version is marked exactly once.
   */
  async markConverged(truststoreId: string, version: number): Promise<ConvergedVersion[]> {
    const rows = returnedRows<{ version: number; revoked_at: Date | null; converged_at: Date }>(
      await this.dataSource.query(
        `UPDATE truststore_versions v SET converged_at = now()
          WHERE v.truststore_id = $1 AND v.converged_at IS NULL AND v.version <= $2
            AND NOT EXISTS (SELECT 1 FROM distribution_targets t
                             WHERE t.truststore_id = v.truststore_id AND (t.delivered_version IS NULL OR t.delivered_version < v.version))
        RETURNING v.version, v.revoked_at, v.converged_at`,
        [truststoreId, version],
      ),
    );
    return rows.map((r) => ({
      version: r.version,
      revokedAt: r.revoked_at ? new Date(r.revoked_at) : null,
      convergedAt: new Date(r.converged_at),
    }));
  }

  /** Records a failed attempt under its lease and ends the lease; the next attempt waits `delayMs`. */
  async recordFailure(
    lease: Lease,
    failure: { attempts: number; state: 'retrying' | 'blocked'; message: string; kind: string; delayMs: number },
  ): Promise<void> {
    await this.dataSource.query(
      `UPDATE distribution_targets
          SET attempts = $3, state = $4, last_error = $5, last_error_kind = $6,
              next_attempt_at = now() + make_interval(secs => $7::double precision / 1000),
              lease_token = NULL, lease_until = NULL
        WHERE id = $1 AND lease_token = $2`,
      [lease.id, lease.leaseToken, failure.attempts, failure.state, failure.message, failure.kind, failure.delayMs],
    );
  }

  /** Records what a read-back found (under the lease): the record follows the target. */
  async recordObserved(lease: Lease, digest: string | null, version: number | null): Promise<void> {
    await this.dataSource.query(
      `UPDATE distribution_targets
          SET delivered_digest = $3, delivered_version = $4,
              delivered_at = CASE WHEN delivered_digest IS DISTINCT FROM $3 THEN NULL ELSE delivered_at END
        WHERE id = $1 AND lease_token = $2`,
      [lease.id, lease.leaseToken, digest, version],
    );
  }

  /** Ends a lease without counting the attempt; the target is due again at once. */
  async releaseLease(lease: Lease): Promise<void> {
    await this.dataSource.query(
      `UPDATE distribution_targets SET lease_token = NULL, lease_until = NULL, next_attempt_at = now() WHERE id = $1 AND lease_token = $2`,
      [lease.id, lease.leaseToken],
    );
  }

  /** Milliseconds until the next backoff or lease of a target that is not converged ends (undefined: none). */
  async msUntilNextDue(): Promise<number | undefined> {
    const [row] = await this.dataSource.query(
      `SELECT extract(epoch FROM min(GREATEST(t.next_attempt_at, coalesce(t.lease_until, t.next_attempt_at))) - now()) * 1000 AS ms
         FROM distribution_targets t JOIN truststores s ON s.id = t.truststore_id
        WHERE s.current_digest IS NOT NULL AND (t.delivered_digest IS DISTINCT FROM s.current_digest OR t.force_push)`,
    );
    return row?.ms === null || row?.ms === undefined ? undefined : Number(row.ms);
  }

  // Status reads

  /** Every region with its targets, or only the targets `ids` names. */
  statusRows(ids?: string[]): Promise<TargetStatusRow[]> {
    const where = ids ? 'WHERE t.id = ANY($1::uuid[])' : '';
    return this.dataSource.query(
      `SELECT r.name AS region, r.offline, t.id, t.name, t.kind, t.endpoint, s.name AS truststore, t.required,
              t.credentials_sealed IS NOT NULL AS has_credentials,
              s.current_version AS desired_version, s.current_digest AS desired_digest, GREATEST(cv.created_at, t.created_at) AS desired_since,
              t.delivered_version, t.delivered_digest, t.delivered_at, t.verified_at, GREATEST(dv.created_at, t.created_at) AS delivered_version_created_at,
              t.attempts, t.last_attempt_at, t.next_attempt_at, t.state, t.last_error, t.last_error_kind, t.force_push,
              (t.lease_until IS NOT NULL AND t.lease_until > now()) AS leased
         FROM distribution_regions r
         LEFT JOIN distribution_targets t ON t.region_id = r.id
         LEFT JOIN truststores s ON s.id = t.truststore_id
         LEFT JOIN truststore_versions cv ON cv.truststore_id = s.id AND cv.version = s.current_version
         LEFT JOIN truststore_versions dv ON dv.truststore_id = t.truststore_id AND dv.version = t.delivered_version
        ${where}
        ORDER BY r.name, t.name`,
      ids ? [ids] : [],
    );
  }

  /** Each truststore's current version and its convergence, with the latest version that carried a revocation. */
  truststoreConvergence(): Promise<TruststoreConvergenceRow[]> {
    return this.dataSource.query(
      `SELECT s.name, s.current_version AS version, s.current_digest AS digest, v.created_at, v.converged_at,
              rv.version AS rev_version, rv.revoked_at, rv.converged_at AS rev_converged_at
         FROM truststores s
         JOIN truststore_versions v ON v.truststore_id = s.id AND v.version = s.current_version
         LEFT JOIN LATERAL (SELECT version, revoked_at, converged_at FROM truststore_versions
                             WHERE truststore_id = s.id AND revoked_at IS NOT NULL ORDER BY version DESC LIMIT 1) rv ON true
        ORDER BY s.name`,
    );
  }

  /**
   * Each required target and whether the truststore version it was last read back holding (digest
   * and version both match a stored version) lists the root `rootSha256`; `has` is null when that
   * version is unknown.
   */
  requiredTargetsHoldingRoot(
    rootSha256: string,
  ): Promise<Array<{ region: string; target: string; has: boolean | null }>> {
    return this.dataSource.query(
      `SELECT r.name AS region, t.name AS target, (v.root_sha256 @> ARRAY[$1]::text[]) AS has
         FROM distribution_targets t
         JOIN distribution_regions r ON r.id = t.region_id
         LEFT JOIN truststore_versions v
                ON v.truststore_id = t.truststore_id AND v.version = t.delivered_version AND v.digest = t.delivered_digest
        WHERE t.required
        ORDER BY r.name, t.name`,
      [rootSha256],
    );
  }

  /** Makes every target not under a live lease due now and due for a read-back (`POST /v1/distribution/sync`); returns how many. */
  async makeAllDueNow(manager: EntityManager): Promise<number> {
    const rows = returnedRows<{ id: string }>(
      await manager.query(
        `UPDATE distribution_targets SET next_attempt_at = now(), verified_at = NULL
          WHERE lease_until IS NULL OR lease_until < now() RETURNING id`,
      ),
    );
    return rows.length;
  }
}
