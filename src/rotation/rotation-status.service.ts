import { Inject, Injectable } from '@nestjs/common';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { RotationDueService } from './rotation-due.service';
import { RotationStatusRepository } from './rotation-status.repository';
import { ROTATION_CLOCK, RotationClock } from './rotation-clock';
import { dueOccurrence } from '../keys/rotation-schedule';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

export interface ExpiryReport {
  now: Date;
  /** CA generations still in use: active, pending, or retired with unexpired certificates under them. */
  caGenerations: Array<{
    ca: string;
    kind: string;
    generation: string;
    state: string;
    notAfter: Date;
    days: number;
    warn: boolean;
  }>;
  /** The certificate of each key's active version. */
  leaves: Array<{ key: string; version: number; notAfter: Date; days: number; warn: boolean }>;
  /** Keys whose scheduled rotation is more than SIGNET_ROTATION_OVERDUE_HOURS late. */
  overdue: Array<{ key: string; dueAt: Date; hoursLate: number }>;
  keysWithoutActiveVersion: string[];
  /** CRLs of generations Signet signs for: missing, expired, or past half their validity (rebuild late). */
  crls: Array<{ generation: string; nextUpdate: Date | null; secondsLeft: number | null; late: boolean }>;
  rotations: { running: number; activated: number };
  alerts: Array<{ rotationId: string; subject: string; alert: string }>;
  /**
   * Issuing or TSA CAs due for renewal whose parent cannot certify a long enough generation (the
   * root needs a rollover; a TSA root is replaced by a new tsa-root CA).
   */
  caRenewalBlocked: Array<{ ca: string; kind: 'issuing' | 'tsa'; generation: string; reason: string }>;
}

/**
 * Expiry and rotation health for Prometheus and `signet status`: days until each CA generation and
 * active leaf expires, overdue rotations, CRLs close to nextUpdate, open alerts.
 */
@Injectable()
export class RotationStatusService {
  constructor(
    private readonly status: RotationStatusRepository,
    private readonly due: RotationDueService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    @Inject(ROTATION_CLOCK) private readonly clock: RotationClock,
  ) {}

  async report(now: Date = this.clock.now()): Promise<ExpiryReport> {
    const generations = await this.status.generationsInUse(now);
    const leaves = await this.status.activeLeaves();
    const keys = await this.status.keySchedules();
    const crls = await this.status.crlStates(now);
    const counts = await this.status.unfinishedRotationCounts();
    const alerts = await this.status.openRotationAlerts();
    const days = (at: Date) => Math.floor((at.getTime() - now.getTime()) / DAY_MS);
    const overdue: ExpiryReport['overdue'] = [];
    for (const key of keys) {
      if (!key.has_active) continue;
      const dueAt = dueOccurrence(key.rotation.schedule, key.activated_at ?? new Date(0), now);
      if (!dueAt) continue;
      const hoursLate = (now.getTime() - dueAt.getTime()) / HOUR_MS;
      if (hoursLate > this.config.rotation.overdueHours)
        overdue.push({ key: key.name, dueAt, hoursLate: Math.floor(hoursLate) });
    }
    const warnDays = this.config.rotation.expiryWarningDays;
    const margin = this.config.rotation.caRenewalMarginDays;
    return {
      now,
      caGenerations: generations.map((g) => ({
        ca: g.ca,
        kind: g.kind,
        generation: g.generation,
        state: g.state,
        notAfter: g.not_after,
        days: days(g.not_after),
        // An active issuing generation warns once leaves would be cut short; others at the leaf threshold.
        warn:
          g.state === 'active' && g.max_leaf_days !== null
            ? days(g.not_after) < g.max_leaf_days + margin
            : days(g.not_after) < warnDays,
      })),
      leaves: leaves
        .filter((l) => l.not_after)
        .map((l) => ({
          key: l.key,
          version: l.version,
          notAfter: l.not_after!,
          days: days(l.not_after!),
          warn: days(l.not_after!) < warnDays,
        })),
      overdue,
      keysWithoutActiveVersion: keys.filter((k) => !k.has_active && !k.external).map((k) => k.name),
      crls: crls.map((c) => {
        const late =
          !c.crl_next_update ||
          !c.crl_this_update ||
          c.crl_this_update.getTime() + (c.crl_next_update.getTime() - c.crl_this_update.getTime()) / 2 < now.getTime();
        return {
          generation: c.generation,
          nextUpdate: c.crl_next_update,
          secondsLeft: c.crl_next_update ? Math.floor((c.crl_next_update.getTime() - now.getTime()) / 1000) : null,
          late,
        };
      }),
      rotations: { running: counts.running, activated: counts.activated },
      alerts: alerts.map((a) => ({ rotationId: a.id, subject: a.subject, alert: a.alert })),
      caRenewalBlocked: (await this.due.caLifetimes(now))
        .filter((c) => c.blocked && !c.renewing)
        .map((c) => ({ ca: c.name, kind: c.kind, generation: c.generation, reason: c.reason })),
    };
  }

  /** `signet status` lines. */
  async statusLines(now: Date = this.clock.now()): Promise<string[]> {
    const report = await this.report(now);
    const lines = [
      `rotation: ${report.rotations.running} running, ${report.rotations.activated} waiting to retire/destroy, ${report.overdue.length} overdue, ${report.keysWithoutActiveVersion.length} key(s) without an active version`,
    ];
    for (const alert of report.alerts) lines.push(`rotation ALERT: ${alert.alert}`);
    for (const o of report.overdue)
      lines.push(`rotation OVERDUE: key ${o.key} was due ${o.dueAt.toISOString()} (${o.hoursLate} h late)`);
    for (const name of report.keysWithoutActiveVersion)
      lines.push(`rotation ALERT: key ${name} has no active version (signing fails until a rotation activates one)`);
    for (const blocked of report.caRenewalBlocked) {
      lines.push(
        blocked.kind === 'tsa'
          ? `expiry ALERT: TSA CA ${blocked.ca} cannot be renewed under its TSA root (${blocked.reason}); create a new tsa-root CA and a tsa CA under it, point SIGNET_TSA_CA at it and distribute the new root`
          : `expiry ALERT: CA ${blocked.ca} cannot be renewed under its root (${blocked.reason}); roll the root over`,
      );
    }
    for (const g of report.caGenerations)
      lines.push(
        `expiry: CA generation ${g.generation} (${g.kind}, ${g.state}) expires in ${g.days} day(s) at ${g.notAfter.toISOString()}${g.warn ? ' WARNING' : ''}`,
      );
    for (const l of report.leaves)
      lines.push(
        `expiry: key ${l.key} v${l.version} certificate expires in ${l.days} day(s) at ${l.notAfter.toISOString()}${l.warn ? ' WARNING' : ''}`,
      );
    for (const c of report.crls) {
      const left =
        c.secondsLeft === null
          ? 'no CRL yet'
          : c.secondsLeft < 0
            ? `EXPIRED ${Math.ceil(-c.secondsLeft / 3600)} h ago`
            : `next update in ${(c.secondsLeft / 3600).toFixed(1)} h`;
      lines.push(`crl: ${c.generation} ${left}${c.late ? ' WARNING (rebuild overdue)' : ''}`);
    }
    return lines;
  }
}
