import { CronExpressionParser } from 'cron-parser';

/** First day of January, April, July and October, 00:00 UTC. */
export const QUARTERLY_CRON = '0 0 1 1,4,7,10 *';

export function cronOf(schedule: string): string {
  return schedule === 'quarterly' ? QUARTERLY_CRON : schedule;
}

/** The latest occurrence of the schedule at or before `now` (UTC). */
export function lastOccurrence(schedule: string, now: Date): Date {
  // cron-parser's prev() excludes currentDate itself: start 1 ms later to include it.
  return CronExpressionParser.parse(cronOf(schedule), { tz: 'UTC', currentDate: new Date(now.getTime() + 1) })
    .prev()
    .toDate();
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

const DAY_MS = 86_400_000;
/**
 * How far ahead shortestInterval looks: 28 years, the cycle after which weekdays fall on the same
 * dates again (leap years included, until 2100), so a schedule whose day-of-month and day-of-week
 * fields only bring two occurrences close in a rare year (29 February on a Monday) is still seen.
 */
export const SCHEDULE_HORIZON_DAYS = 28 * 365 + 7;

/**
 * The shortest time, in ms, between two consecutive occurrences of `schedule` from `from` over
 * SCHEDULE_HORIZON_DAYS (UTC); it stops looking once it found a gap below `floorMs`. Infinity for
 * a schedule with fewer than two occurrences in that span.
 *
 * Stepping cron-parser's next() over 28 years takes seconds (it walks the calendar); this reads
 * the expression's fields once and matches days with the same rules as cron-parser's
 * includesDate() (rotation-schedule.spec.ts checks the two agree).
 */
export function shortestInterval(schedule: string, from: Date, floorMs = 0): number {
  const fields = CronExpressionParser.parse(cronOf(schedule), { tz: 'UTC' }).fields;
  // Times of day (seconds since midnight) the schedule fires at, ascending.
  const seconds = [...fields.second.values].map(Number).sort((a, b) => a - b);
  const minutes = [...fields.minute.values].map(Number).sort((a, b) => a - b);
  const hours = [...fields.hour.values].map(Number).sort((a, b) => a - b);
  let shortest = Infinity;
  let earliest = Infinity;
  let latest = -Infinity;
  let previousTime: number | undefined;
  for (const h of hours) {
    for (const m of minutes) {
      for (const s of seconds) {
        const time = (h * 3600 + m * 60 + s) * 1000;
        if (previousTime !== undefined) shortest = Math.min(shortest, time - previousTime);
        if (shortest < floorMs) return shortest;
        previousTime = time;
        earliest = Math.min(earliest, time);
        latest = Math.max(latest, time);
      }
    }
  }
  const matchesDay = dayMatcher(fields);
  const start = Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate());
  let previousDay: number | undefined;
  for (let day = start; day < start + SCHEDULE_HORIZON_DAYS * DAY_MS; day += DAY_MS) {
    if (!matchesDay(new Date(day))) continue;
    // From the day's last occurrence to the next firing day's first.
    if (previousDay !== undefined) shortest = Math.min(shortest, day - previousDay + earliest - latest);
    if (shortest < floorMs) return shortest;
    previousDay = day;
  }
  return shortest;
}

type CronFields = ReturnType<typeof CronExpressionParser.parse>['fields'];

/** Whether `schedule` fires on the (UTC) day of `date`; the day rule shortestInterval uses. */
export function scheduleDayMatcher(schedule: string): (date: Date) => boolean {
  return dayMatcher(CronExpressionParser.parse(cronOf(schedule), { tz: 'UTC' }).fields);
}

/** cron-parser's day rules (month, then day of month and day of week: either matches when both are restricted). */
function dayMatcher(fields: CronFields): (date: Date) => boolean {
  const months = new Set(fields.month.values.map(Number));
  const daysOfMonth = new Set(fields.dayOfMonth.values.filter((v) => v !== 'L').map(Number));
  const domLast = fields.dayOfMonth.hasLastChar;
  const daysOfWeek = new Set(
    fields.dayOfWeek.values.filter((v) => typeof v === 'number' || /^\d+$/.test(String(v))).map((v) => Number(v) % 7),
  );
  const lastWeekdays = new Set(
    fields.dayOfWeek.values.filter((v) => /^\dL$/.test(String(v))).map((v) => Number(String(v).charAt(0)) % 7),
  );
  const dowLast = fields.dayOfWeek.hasLastChar;
  const nthDay = fields.dayOfWeek.nthDay;
  const domRestricted = !fields.dayOfMonth.isWildcard;
  const dowRestricted = !fields.dayOfWeek.isWildcard;
  return (date) => {
    if (!months.has(date.getUTCMonth() + 1)) return false;
    const dom = date.getUTCDate();
    const dow = date.getUTCDay();
    const lastDayOfMonth = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 0)).getUTCDate();
    const matchedDom = daysOfMonth.has(dom) || (domLast && dom === lastDayOfMonth);
    const matchedDow =
      (daysOfWeek.has(dow) && (nthDay <= 0 || Math.ceil(dom / 7) === nthDay)) ||
      (dowLast && dom + 7 > lastDayOfMonth && lastWeekdays.has(dow));
    if (domRestricted && dowRestricted) return matchedDom || matchedDow;
    if (domRestricted) return matchedDom;
    if (dowRestricted) return matchedDow;
    return true;
  };
}
