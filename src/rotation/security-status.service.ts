import { Inject, Injectable } from '@nestjs/common';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { DistributionStatusService } from '../distribution/distribution-status.service';
import { ROTATION_CLOCK, RotationClock } from './rotation-clock';
import { dueOccurrence, nextOccurrence } from '../keys/rotation-schedule';
import { RotationStatusService } from './rotation-status.service';
import { RotationStatusRepository } from './rotation-status.repository';

/** One thing the Overview shows, and whether `signet status` / the alerts would call it red, with the rule. */
interface Flag {
  red: boolean;
  /** The rule that makes it red (the same one `signet status` prints WARNING/OVERDUE/ALERT for). */
  rule: string;
}

export interface SecurityStatus {
  generatedAt: string;
  /** Any item below is red. */
  red: boolean;
  caGenerations: Array<
    { ca: string; kind: string; generation: string; state: string; notAfter: string; days: number } & Flag
  >;
  leaves: Array<{ key: string; version: number; notAfter: string; days: number } & Flag>;
  /** Rotation calendar: the next scheduled date per key, and the occurrence it is late for. */
  rotations: Array<
    {
      key: string;
      schedule: string;
      activatedAt: string | null;
      nextDueAt: string | null;
      overdueSince: string | null;
      hoursLate: number | null;
    } & Flag
  >;
  rotationAlerts: Array<{ rotationId: string; subject: string; alert: string } & Flag>;
  caRenewalBlocked: Array<{ ca: string; kind: string; generation: string; reason: string } & Flag>;
  keysWithoutActiveVersion: Array<{ key: string } & Flag>;
  crls: Array<{ generation: string; nextUpdate: string | null; secondsLeft: number | null } & Flag>;
  distribution: {
    targets: number;
    converged: number;
    pending: number;
    pushing: number;
    retrying: number;
    blocked: number;
  } & Flag;
  auditCheckpoint: {
    lastCheckpointAt: string | null;
    lastCheckpointSeq: string | null;
    headSeq: string;
    oldestUncheckpointedAt: string | null;
    uncheckpointedAgeSeconds: number;
    intervalSeconds: number;
  } & Flag;
}

/**
 * GET /v1/status: what `signet status` reports, as JSON, each item with the rule that turns it red,
 * for the console's Overview (README "Security console"). Read from the database: every replica
 * reports the same fleet.
 */
@Injectable()
export class SecurityStatusService {
  constructor(
    private readonly statusReads: RotationStatusRepository,
    private readonly expiry: RotationStatusService,
    private readonly distribution: DistributionStatusService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    @Inject(ROTATION_CLOCK) private readonly clock: RotationClock,
  ) {}

  async status(): Promise<SecurityStatus> {
    const now = this.clock.now();
    const report = await this.expiry.report(now);
    const warnDays = this.config.rotation.expiryWarningDays;
    const overdueHours = this.config.rotation.overdueHours;
    const keys = await this.statusReads.activeKeySchedules();
    const fleet = (await this.distribution.status(now)).summary;
    const audit = await this.statusReads.auditCheckpointState();
    const interval = this.config.audit.checkpointIntervalSeconds;
    const uncheckpointedAge = audit.oldest ? Math.max(0, (now.getTime() - new Date(audit.oldest).getTime()) / 1000) : 0;
    const status: Omit<SecurityStatus, 'red'> = {
      generatedAt: now.toISOString(),
      caGenerations: report.caGenerations.map((g) => ({
        ...g,
        notAfter: g.notAfter.toISOString(),
        red: g.warn,
        rule:
          g.state === 'active' && g.kind === 'issuing'
            ? `an active issuing generation expires within its keys' longest certificate validity + SIGNET_CA_RENEWAL_MARGIN_DAYS (${this.config.rotation.caRenewalMarginDays}) days`
            : `expires within SIGNET_EXPIRY_WARNING_DAYS (${warnDays}) days`,
      })),
      leaves: report.leaves.map((l) => ({
        ...l,
        notAfter: l.notAfter.toISOString(),
        red: l.warn,
        rule: `the active version's certificate expires within SIGNET_EXPIRY_WARNING_DAYS (${warnDays}) days`,
      })),
      rotations: keys.map((key) => {
        const due = dueOccurrence(key.rotation.schedule, key.activated_at ?? new Date(0), now);
        const hoursLate = due ? (now.getTime() - due.getTime()) / 3_600_000 : null;
        return {
          key: key.name,
          schedule: key.rotation.schedule,
          activatedAt: key.activated_at?.toISOString() ?? null,
          nextDueAt: safeNext(key.rotation.schedule, now),
          overdueSince: due?.toISOString() ?? null,
          hoursLate: hoursLate === null ? null : Math.floor(hoursLate),
          red: hoursLate !== null && hoursLate > overdueHours,
          rule: `a scheduled rotation more than SIGNET_ROTATION_OVERDUE_HOURS (${overdueHours}) hours late`,
        };
      }),
      rotationAlerts: report.alerts.map((a) => ({
        ...a,
        red: true,
        rule: 'a running rotation raised an alert (it needs a person)',
      })),
      caRenewalBlocked: report.caRenewalBlocked.map((c) => ({
        ...c,
        red: true,
        rule: 'a CA due for renewal whose parent cannot certify a long enough generation',
      })),
      keysWithoutActiveVersion: report.keysWithoutActiveVersion.map((key) => ({
        key,
        red: true,
        rule: 'a key (not external) with no active version cannot sign',
      })),
      crls: report.crls.map((c) => ({
        generation: c.generation,
        nextUpdate: c.nextUpdate?.toISOString() ?? null,
        secondsLeft: c.secondsLeft,
        red: c.late,
        rule: 'the CRL is missing, or past half its validity (its rebuild is late)',
      })),
      distribution: {
        ...fleet,
        red: fleet.blocked + fleet.retrying > 0,
        rule: 'a target is retrying or blocked (SignetDistributionTargetFailing)',
      },
      auditCheckpoint: {
        lastCheckpointAt: audit.checkpoint_time ? new Date(audit.checkpoint_time).toISOString() : null,
        lastCheckpointSeq: audit.checkpoint_seq,
        headSeq: audit.head_seq,
        oldestUncheckpointedAt: audit.oldest ? new Date(audit.oldest).toISOString() : null,
        uncheckpointedAgeSeconds: Math.floor(uncheckpointedAge),
        intervalSeconds: interval,
        red: interval > 0 && uncheckpointedAge > 3 * interval,
        rule: 'audit events have waited more than 3 × SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS for a checkpoint (SignetAuditCheckpointStale)',
      },
    };
    const flags: Flag[] = [
      ...status.caGenerations,
      ...status.leaves,
      ...status.rotations,
      ...status.rotationAlerts,
      ...status.caRenewalBlocked,
      ...status.keysWithoutActiveVersion,
      ...status.crls,
      status.distribution,
      status.auditCheckpoint,
    ];
    return { ...status, red: flags.some((flag) => flag.red) };
  }
}

function safeNext(schedule: string, now: Date): string | null {
  try {
    return nextOccurrence(schedule, now).toISOString();
  } catch {
    return null;
  }
}
