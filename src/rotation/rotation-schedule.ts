import { CronExpressionParser } from 'cron-parser';

/** First day of January, April, July and October, 00:00 UTC. */
export const QUARTERLY_CRON = '0 0 1 1,4,7,10 *';

export function cronOf(schedule: string): string {
  return schedule === 'quarterly' ? QUARTERLY_CRON : schedule;
}

/** The latest occurrence of the schedule at or before `now` (UTC). */
export function lastOccurrence(schedule: string, now: Date): Date {
  // cron-parser's prev() excludes currentDate itself: start 1 ms later to include it.
  return CronExpressionParser.parse(cronOf(schedule), { tz: 'UTC', currentDate: new Date(now.getTime() + 1) }).prev().toDate();
}

/** The first occurrence strictly after `now` (UTC). */
export function nextOccurrence(schedule: string, now: Date): Date {
  return CronExpressionParser.parse(cronOf(schedule), { tz: 'UTC', currentDate: now }).next().toDate();
}

/**
 * The occurrence a key's scheduled rotation answers, when one has passed since its active version
 * was activated; undefined when the key is up to date.
 */
export function dueOccurrence(schedule: string, activatedAt: Date, now: Date): Date | undefined {
  const last = lastOccurrence(schedule, now);
  return last.getTime() > activatedAt.getTime() ? last : undefined;
}
