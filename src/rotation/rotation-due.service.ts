import { Inject, Injectable, Logger } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { dueOccurrence, shortestInterval } from '../keys/rotation-schedule';
import { RotationSubjectsRepository } from './rotation-subjects.repository';

const DAY_MS = 86_400_000;

/** An issuing or TSA CA's active generation measured against the lifetime its leaves need. */
export interface CaLifetime {
  id: string;
  name: string;
  kind: 'issuing' | 'tsa';
  generation: string;
  notAfter: Date;
  thresholdDays: number;
  due: boolean;
  blocked: boolean;
  renewing: boolean;
  reason: string;
}

/**
 * The scheduler's question, answered without writing anything: whether a key's schedule has an
 * occurrence due now (no more often than the minimum interval), and which CAs' remaining lifetime
 * is too short. RotationService.enqueueDue starts what is due; `signet status` reports the CAs
 * that cannot be renewed.
 */
@Injectable()
export class RotationDueService {
  /** Logs under RotationService's context, where operators' log filters already look for schedule warnings. */
  private readonly logger = new Logger('RotationService');
  /** Whether a stored schedule's occurrences stay at least the floor apart (computed once per schedule). */
  private readonly scheduleMeetsFloor = new Map<string, boolean>();

  constructor(
    private readonly dataSource: DataSource,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    private readonly subjects: RotationSubjectsRepository,
  ) {}

  /**
   * The occurrence a scheduled rotation of a key answers now, if any. Key creation refuses
   * schedules that fire more often than SIGNET_ROTATION_MIN_INTERVAL_HOURS; a schedule stored
   * before that check (or under a lower floor) still rotates no more often than the floor: not
   * before the active version is that old.
   */
  scheduledDue(schedule: string, activatedAt: Date, now: Date): Date | undefined {
    const dueAt = dueOccurrence(schedule, activatedAt, now);
    if (!dueAt) return undefined;
    const floorMs = this.config.rotation.minIntervalHours * 3_600_000;
    if (now.getTime() - activatedAt.getTime() >= floorMs) return dueAt;
    let meetsFloor = this.scheduleMeetsFloor.get(schedule);
    if (meetsFloor === undefined) {
      meetsFloor = shortestInterval(schedule, now, floorMs) >= floorMs;
      if (!meetsFloor)
        this.logger.warn(
          `rotation schedule '${schedule}' fires more often than SIGNET_ROTATION_MIN_INTERVAL_HOURS; keys with it rotate at most every ${this.config.rotation.minIntervalHours} h`,
        );
      this.scheduleMeetsFloor.set(schedule, meetsFloor);
    }
    return meetsFloor ? dueAt : undefined;
  }

  /**
   * Issuing CAs whose active generation's remaining lifetime is within the margin of the longest
   * leaf validity of their keys (leaves would be cut short), and TSA CAs within the margin of their
   * expiry (after it, /tsa answers 503; timestamps already issued stay valid), whose parent can
   * certify a new generation that would not be due at once (caLifetimes marks the others
   * `blocked`: that is an alert, the root needs a rollover first).
   */
  async casDueForRenewal(
    now: Date,
    manager: EntityManager = this.dataSource.manager,
  ): Promise<Array<{ id: string; name: string; reason: string }>> {
    return (await this.caLifetimes(now, manager)).filter((ca) => ca.due && !ca.blocked && !ca.renewing);
  }

  async caLifetimes(now: Date, manager: EntityManager = this.dataSource.manager): Promise<CaLifetime[]> {
    const rows = await this.subjects.caLifetimeRows(manager);
    return rows
      .filter((row) => row.max_leaf_days !== null)
      .map((row) => {
        const thresholdDays = row.max_leaf_days! + this.config.rotation.caRenewalMarginDays;
        const remainingDays = (row.not_after.getTime() - now.getTime()) / DAY_MS;
        const parentRemainingDays = row.parent_not_after
          ? (row.parent_not_after.getTime() - now.getTime()) / DAY_MS
          : 0;
        const due = remainingDays < thresholdDays;
        return {
          id: row.id,
          name: row.name,
          kind: row.kind,
          generation: row.generation,
          notAfter: row.not_after,
          thresholdDays,
          due,
          // Renewing would not help: the parent cannot certify a generation that lasts past the threshold.
          blocked: due && parentRemainingDays < thresholdDays + 1,
          renewing: row.busy,
          reason:
            row.kind === 'tsa'
              ? `${row.generation} has ${Math.floor(remainingDays)} day(s) left, less than the ${this.config.rotation.caRenewalMarginDays} days margin`
              : `${row.generation} has ${Math.floor(remainingDays)} day(s) left, less than the longest leaf validity (${row.max_leaf_days}) + ${this.config.rotation.caRenewalMarginDays} days margin`,
        };
      });
  }
}
