/**
 * The Overview's red/green verdicts, each the rule `signet status` applies
 * (src/rotation/rotation-status.service.ts, src/distribution/distribution-status.service.ts) with
 * the server's default thresholds, stated next to the verdict so a reader knows why it is red.
 */
import type { Ca, DistributionStatus, SigningKey } from './types';
import { lastQuarter, nextQuarter } from './time';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** Server defaults: SIGNET_EXPIRY_WARNING_DAYS, SIGNET_ROTATION_OVERDUE_HOURS, SIGNET_CA_RENEWAL_MARGIN_DAYS. */
export const DEFAULTS = { expiryWarningDays: 30, overdueHours: 24, caRenewalMarginDays: 30, checkpointIntervalSeconds: 60 };

export interface Verdict {
  ok: boolean;
  /** The rule that turns it red, in words. */
  rule: string;
}

export interface ExpiryItem extends Verdict {
  label: string;
  kind: 'ca' | 'leaf';
  notBefore: string | null;
  notAfter: string;
  days: number;
}

const days = (at: string, now: Date) => Math.floor((new Date(at).getTime() - now.getTime()) / DAY_MS);

/** CA generations in use and each key's active leaf, with the expiry rule of `signet status`. */
export function expiryItems(cas: Ca[], keys: SigningKey[], now: Date): ExpiryItem[] {
  const items: ExpiryItem[] = [];
  for (const ca of cas) {
    const leafDays = keys.filter((k) => k.issuer === ca.name).map((k) => k.certificateValidityDays);
    for (const g of ca.generations) {
      if (!g.notAfter || new Date(g.notAfter) <= now || g.state === 'retired' || g.state === 'destroyed') continue;
      const left = days(g.notAfter, now);
      const issuingRule = g.state === 'active' && leafDays.length > 0;
      const limit = issuingRule ? Math.max(...leafDays) + DEFAULTS.caRenewalMarginDays : DEFAULTS.expiryWarningDays;
      items.push({
        label: `${g.name} (${ca.kind}, ${g.state})`,
        kind: 'ca',
        notBefore: g.notBefore,
        notAfter: g.notAfter,
        days: left,
        ok: left >= limit,
        rule: issuingRule
          ? `red when fewer than ${limit} days are left (longest leaf it issues + ${DEFAULTS.caRenewalMarginDays}-day renewal margin)`
          : `red when fewer than ${DEFAULTS.expiryWarningDays} days are left`,
      });
    }
  }
  for (const key of keys) {
    const active = key.versions.find((v) => v.state === 'active');
    if (!active?.notAfter) continue;
    const left = days(active.notAfter, now);
    items.push({
      label: `${key.name} v${active.version}`,
      kind: 'leaf',
      notBefore: active.notBefore,
      notAfter: active.notAfter,
      days: left,
      ok: left >= DEFAULTS.expiryWarningDays,
      rule: `red when fewer than ${DEFAULTS.expiryWarningDays} days are left`,
    });
  }
  return items;
}

export interface CalendarItem extends Verdict {
  key: string;
  schedule: string;
  /** Next scheduled rotation, when the console can compute it (quarterly); cron schedules are the server's. */
  next: Date | null;
  /** A scheduled rotation that is late, with how late. */
  overdueSince: Date | null;
  hasActive: boolean;
}

/** The rotation calendar and the overdue rule (`signet status`: "rotation OVERDUE", "no active version"). */
export function rotationCalendar(keys: SigningKey[], now: Date): CalendarItem[] {
  return keys.map((key) => {
    const active = key.versions.find((v) => v.state === 'active');
    const quarterly = key.rotation.schedule === 'quarterly';
    let overdueSince: Date | null = null;
    if (active && quarterly) {
      const due = lastQuarter(now);
      const activatedAt = new Date(active.activatedAt ?? 0);
      if (due > activatedAt && now.getTime() - due.getTime() > DEFAULTS.overdueHours * HOUR_MS) overdueSince = due;
    }
    const missingActive = !active && !key.external;
    return {
      key: key.name,
      schedule: key.rotation.schedule,
      next: quarterly ? nextQuarter(now) : null,
      overdueSince,
      hasActive: Boolean(active),
      ok: !overdueSince && !missingActive,
      rule: missingActive
        ? 'red: no active version (signing fails until a rotation activates one)'
        : `red when a scheduled rotation is more than ${DEFAULTS.overdueHours} h late`,
    };
  });
}

export interface CrlItem extends Verdict {
  generation: string;
  thisUpdate: Date | null;
  nextUpdate: Date | null;
  error?: string;
}

/** `signet status` "crl": red once past half its validity (rebuild overdue), expired, or missing. */
export function crlVerdict(generation: string, dates: { thisUpdate: Date; nextUpdate: Date | null } | null, now: Date, error?: string): CrlItem {
  const rule = 'red when missing, expired, or past half its validity (the rebuild is late)';
  if (!dates || !dates.nextUpdate) return { generation, thisUpdate: dates?.thisUpdate ?? null, nextUpdate: null, ok: false, rule, error };
  const half = dates.thisUpdate.getTime() + (dates.nextUpdate.getTime() - dates.thisUpdate.getTime()) / 2;
  return { generation, thisUpdate: dates.thisUpdate, nextUpdate: dates.nextUpdate, ok: half >= now.getTime(), rule };
}

/** `signet status` "distribution": red while any target has not converged. */
export function distributionVerdict(status: DistributionStatus): Verdict & { converged: number; targets: number } {
  return {
    ok: status.summary.converged === status.summary.targets,
    converged: status.summary.converged,
    targets: status.summary.targets,
    rule: 'red while any target has not converged to its truststore\'s current version',
  };
}

/**
 * The newest checkpoint's age: rows after it are the ones a database superuser could still rewrite
 * unseen. Checkpoints are made only when there is something new, so an old checkpoint with nothing
 * after it is fine.
 */
export function checkpointVerdict(latest: { time: string } | undefined, rowsAfterLatest: boolean, now: Date): Verdict & { ageSeconds: number | null } {
  const limit = 2 * DEFAULTS.checkpointIntervalSeconds;
  const rule = `red when audit rows wait for a checkpoint longer than ${limit} s (two SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS periods)`;
  if (!latest) return { ok: !rowsAfterLatest, ageSeconds: null, rule };
  const ageSeconds = (now.getTime() - new Date(latest.time).getTime()) / 1000;
  return { ok: !rowsAfterLatest || ageSeconds <= limit, ageSeconds, rule };
}
