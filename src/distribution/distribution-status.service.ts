import { Injectable } from '@nestjs/common';
import { DistributionMetrics } from './distribution-metrics';
import { TargetsRepository, TargetStatusRow } from './targets.repository';

export type TargetStatusState = 'converged' | 'pending' | 'pushing' | 'retrying' | 'blocked';
const TARGET_STATES: readonly TargetStatusState[] = ['converged', 'pending', 'pushing', 'retrying', 'blocked'];

export interface TargetStatus {
  name: string;
  kind: string;
  endpoint: string;
  truststore: string;
  required: boolean;
  hasCredentials: boolean;
  desired: { version: number; digest: string; since: string };
  delivered: { version: number; digest: string; at: string | null; verifiedAt: string | null } | null;
  state: TargetStatusState;
  /** Attempts for the desired version so far (including the successful one once converged). */
  attempts: number;
  lastAttemptAt: string | null;
  nextAttemptAt: string | null;
  lastError: { kind: string; message: string } | null;
  /** When the target first held the desired version, and how long that took after the version was built. */
  convergedAt: string | null;
  convergeSeconds: number | null;
  /** Not converged: seconds since the desired version was built. */
  lagSeconds: number;
  lagVersions: number;
}

export interface RegionStatus {
  name: string;
  offline: boolean;
  targets: TargetStatus[];
}

export interface TruststoreDistributionStatus {
  name: string;
  version: number;
  digest: string;
  versionCreatedAt: string;
  /** When every target held this version (null while some do not). */
  convergedAt: string | null;
  /** The latest version that carried a new revocation, and when it reached every target. */
  lastRevocation: { version: number; revokedAt: string; convergedAt: string | null; seconds: number | null } | null;
}

export interface DistributionStatus {
  generatedAt: string;
  summary: Record<TargetStatusState, number> & { targets: number };
  truststores: TruststoreDistributionStatus[];
  regions: RegionStatus[];
}

/** `GET /v1/distribution`, `signet status` and the lag gauges, all from the database (every replica reports the fleet). */
@Injectable()
export class DistributionStatusService {
  constructor(
    private readonly targetsRepository: TargetsRepository,
    private readonly metrics: DistributionMetrics,
  ) {}

  async status(now = new Date()): Promise<DistributionStatus> {
    const rows = await this.rows();
    const regions = new Map<string, RegionStatus>();
    const summary = { targets: 0, converged: 0, pending: 0, pushing: 0, retrying: 0, blocked: 0 };
    for (const row of rows) {
      let region = regions.get(row.region);
      if (!region) regions.set(row.region, (region = { name: row.region, offline: row.offline, targets: [] }));
      if (row.name === null) continue;
      const target = targetStatus(row, now);
      region.targets.push(target);
      summary.targets++;
      summary[target.state]++;
    }
    return {
      generatedAt: now.toISOString(),
      summary,
      truststores: await this.truststores(),
      regions: [...regions.values()],
    };
  }

  /** The status of the targets with these ids, with their region (a target deleted since is absent). */
  async targets(
    ids: readonly string[],
    now = new Date(),
  ): Promise<Array<{ id: string; region: string; target: TargetStatus }>> {
    if (ids.length === 0) return [];
    const rows = await this.rows([...ids]);
    return rows
      .filter((row) => row.name !== null)
      .map((row) => ({ id: row.id!, region: row.region, target: targetStatus(row, now) }));
  }

  /** Every region with its targets, or only the targets `ids` names. */
  private rows(ids?: string[]): Promise<TargetStatusRow[]> {
    return this.targetsRepository.statusRows(ids);
  }

  private async truststores(): Promise<TruststoreDistributionStatus[]> {
    const rows = await this.targetsRepository.truststoreConvergence();
    return rows.map((row) => ({
      name: row.name,
      version: row.version,
      digest: row.digest,
      versionCreatedAt: iso(row.created_at)!,
      convergedAt: iso(row.converged_at),
      lastRevocation:
        row.rev_version === null
          ? null
          : {
              version: row.rev_version,
              revokedAt: iso(row.revoked_at)!,
              convergedAt: iso(row.rev_converged_at),
              seconds:
                row.rev_converged_at && row.revoked_at
                  ? (new Date(row.rev_converged_at).getTime() - new Date(row.revoked_at).getTime()) / 1000
                  : null,
            },
    }));
  }

  /** Sets the fleet gauges from the database; called on the distribution schedule. */
  async refreshMetrics(now = new Date()): Promise<void> {
    if (!this.metrics.lagSeconds) return;
    const status = await this.status(now);
    this.metrics.lagSeconds.reset();
    this.metrics.lagVersions?.reset();
    this.metrics.targetState?.reset();
    for (const region of status.regions) {
      for (const target of region.targets) {
        this.metrics.lagSeconds.set({ region: region.name, target: target.name }, target.lagSeconds);
        this.metrics.lagVersions?.set({ region: region.name, target: target.name }, target.lagVersions);
        for (const state of TARGET_STATES)
          this.metrics.targetState?.set(
            { region: region.name, target: target.name, state },
            target.state === state ? 1 : 0,
          );
      }
    }
    for (const state of TARGET_STATES) this.metrics.targets?.set({ state }, status.summary[state]);
  }

  /** `signet status` lines: one summary line, then one per target that has not converged. */
  async statusLines(): Promise<string[]> {
    const status = await this.status();
    const { summary } = status;
    if (summary.targets === 0) return [`distribution: no targets (${status.truststores.length} truststore(s))`];
    const others = (['pending', 'pushing', 'retrying', 'blocked'] as const)
      .filter((s) => summary[s] > 0)
      .map((s) => `${summary[s]} ${s}`);
    const lines = [
      `distribution: ${summary.converged}/${summary.targets} targets converged${others.length ? ` (${others.join(', ')})` : ''}`,
    ];
    for (const truststore of status.truststores) {
      const revocation = truststore.lastRevocation;
      lines.push(
        `distribution: truststore ${truststore.name} v${truststore.version} ${truststore.digest.slice(0, 19)}… ${truststore.convergedAt ? `converged ${truststore.convergedAt}` : 'not yet on every target'}` +
          (revocation
            ? `; last revocation (v${revocation.version}) ${revocation.seconds !== null ? `reached every target in ${revocation.seconds.toFixed(1)} s` : 'still propagating'}`
            : ''),
      );
    }
    for (const region of status.regions) {
      for (const target of region.targets) {
        if (target.state === 'converged') continue;
        const error = target.lastError ? `: ${target.lastError.kind}: ${target.lastError.message}` : '';
        lines.push(
          `distribution: ${region.name}/${target.name} ${target.state}, v${target.delivered?.version ?? '-'} of v${target.desired.version}, ${target.attempts} attempt(s), behind ${target.lagSeconds.toFixed(0)} s${error}`,
        );
      }
    }
    return lines;
  }
}

function targetStatus(row: TargetStatusRow, now: Date): TargetStatus {
  // The last attempt must have succeeded too: a failed read-back or push leaves state retrying/blocked.
  const converged = row.delivered_digest === row.desired_digest && !row.force_push && row.state === 'delivered';
  const state: TargetStatusState = converged
    ? 'converged'
    : row.leased
      ? 'pushing'
      : row.state === 'blocked'
        ? 'blocked'
        : row.state === 'retrying'
          ? 'retrying'
          : 'pending';
  const desiredSince = new Date(row.desired_since);
  const deliveredAt = row.delivered_at ? new Date(row.delivered_at) : null;
  const deliveredBuilt = row.delivered_version_created_at ? new Date(row.delivered_version_created_at) : null;
  return {
    name: row.name!,
    kind: row.kind,
    endpoint: row.endpoint,
    truststore: row.truststore,
    required: row.required,
    hasCredentials: row.has_credentials,
    desired: { version: row.desired_version, digest: row.desired_digest, since: desiredSince.toISOString() },
    delivered:
      row.delivered_digest === null || row.delivered_version === null
        ? null
        : {
            version: row.delivered_version,
            digest: row.delivered_digest,
            at: iso(row.delivered_at),
            verifiedAt: iso(row.verified_at),
          },
    state,
    attempts: row.attempts,
    lastAttemptAt: iso(row.last_attempt_at),
    nextAttemptAt: converged ? null : iso(row.next_attempt_at),
    lastError:
      row.last_error && !converged ? { kind: row.last_error_kind ?? 'unknown', message: row.last_error } : null,
    convergedAt: converged && deliveredAt ? deliveredAt.toISOString() : null,
    convergeSeconds:
      converged && deliveredAt && deliveredBuilt
        ? Math.max(0, (deliveredAt.getTime() - deliveredBuilt.getTime()) / 1000)
        : null,
    lagSeconds: converged ? 0 : Math.max(0, (now.getTime() - desiredSince.getTime()) / 1000),
    lagVersions: converged ? 0 : row.desired_version - (row.delivered_version ?? 0),
  };
}

function iso(value: Date | string | null | undefined): string | null {
  return value === null || value === undefined ? null : new Date(value).toISOString();
}
