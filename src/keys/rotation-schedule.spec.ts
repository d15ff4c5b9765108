import { CronExpressionParser } from 'cron-parser';
import {
  cronOf,
  dueOccurrence,
  lastOccurrence,
  nextOccurrence,
  QUARTERLY_CRON,
  scheduleDayMatcher,
  shortestInterval,
} from './rotation-schedule';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('rotation schedule', () => {
  it('quarterly means the first day of January, April, July and October at 00:00 UTC', () => {
    expect(QUARTERLY_CRON).toBe('0 0 1 1,4,7,10 *');
    let at = new Date('2026-11-28T21:00:00Z');
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) {
      at = nextOccurrence('quarterly', at);
      seen.push(at.toISOString());
    }
    expect(seen).toEqual([
      '2027-01-01T00:00:00.000Z',
      '2027-04-01T00:00:00.000Z',
      '2027-07-01T00:00:00.000Z',
      '2027-10-01T00:00:00.000Z',
      '2028-01-01T00:00:00.000Z',
    ]);
  });

  it('the last occurrence includes the instant itself; the next one is strictly later', () => {
    const boundary = new Date('2027-04-01T00:00:00Z');
    expect(lastOccurrence('quarterly', boundary).toISOString()).toBe('2027-04-01T00:00:00.000Z');
    expect(lastOccurrence('quarterly', new Date(boundary.getTime() - 1)).toISOString()).toBe(
      '2027-01-01T00:00:00.000Z',
    );
    expect(nextOccurrence('quarterly', boundary).toISOString()).toBe('2027-07-01T00:00:00.000Z');
  });

  it('reads cron expressions in UTC', () => {
    expect(nextOccurrence('0 6 15 */2 *', new Date('2027-02-20T00:00:00Z')).toISOString()).toBe(
      '2027-03-15T06:00:00.000Z',
    );
    expect(nextOccurrence('30 2 * * 1', new Date('2027-03-10T00:00:00Z')).toISOString()).toBe(
      '2027-03-15T02:30:00.000Z',
    );
  });

  it('a key is due when an occurrence passed since its active version was activated, answering that occurrence', () => {
    const activated = new Date('2027-02-10T12:00:00Z');
    expect(dueOccurrence('quarterly', activated, new Date('2027-03-31T23:59:59Z'))).toBeUndefined();
    expect(dueOccurrence('quarterly', activated, new Date('2027-04-01T00:00:00Z'))?.toISOString()).toBe(
      '2027-04-01T00:00:00.000Z',
    );
    // Weeks late (e.g. the service was down): still the April occurrence, once.
    expect(dueOccurrence('quarterly', activated, new Date('2027-05-20T00:00:00Z'))?.toISOString()).toBe(
      '2027-04-01T00:00:00.000Z',
    );
    // Activated just after the occurrence (the rotation that answered it): not due again.
    expect(
      dueOccurrence('quarterly', new Date('2027-04-01T00:30:00Z'), new Date('2027-06-30T00:00:00Z')),
    ).toBeUndefined();
  });

  describe('shortestInterval (the floor under caller-chosen schedules)', () => {
    const from = new Date('2026-12-07T10:00:00Z');

    it('measures gaps inside a day and across days', () => {
      expect(shortestInterval('* * * * * *', from)).toBe(1000);
      expect(shortestInterval('* * * * *', from)).toBe(60_000);
      expect(shortestInterval('0 */6 * * *', from)).toBe(6 * HOUR);
      // 23:00 and 01:00 the next day are two hours apart, though 22 hours separate them within a day.
      expect(shortestInterval('0 1,23 * * *', from)).toBe(2 * HOUR);
      expect(shortestInterval('0 0 * * *', from)).toBe(DAY);
      expect(shortestInterval('30 2 * * 1', from)).toBe(7 * DAY);
      expect(shortestInterval('quarterly', from)).toBe(90 * DAY); // 1 Jan to 1 Apr, not in a leap year
    });

    it('finds a close pair that only leap years bring (29 February and 1 March), which the next few runs would not show', () => {
      const schedule = '0 0 1,29 2,3 *';
      const next = CronExpressionParser.parse(schedule, { tz: 'UTC', currentDate: from })
        .take(3)
        .map((d) => d.getTime());
      expect(Math.min(next[1] - next[0], next[2] - next[1])).toBeGreaterThanOrEqual(28 * DAY);
      expect(shortestInterval(schedule, from)).toBe(DAY);
    });

    it('stops early once a gap is below the floor', () => {
      expect(shortestInterval('* * * * * *', from, HOUR)).toBeLessThan(HOUR);
      expect(shortestInterval('0 0 1,29 2,3 *', from, 7 * DAY)).toBe(DAY);
    });

    it('matches days exactly as cron-parser does (L, #, day-of-week 7, both day fields restricted)', () => {
      const schedules = [
        '0 0 L * *',
        '0 0 * * 5L',
        '0 0 * * 5#2',
        '0 0 * * 7',
        '0 0 1,L * 1-5',
        '0 0 13 * 5',
        '0 0 29 2 *',
        '0 0 */3 */2 *',
        '0 0 31 * *',
        'quarterly',
      ];
      const mismatches: string[] = [];
      for (const schedule of schedules) {
        const expression = CronExpressionParser.parse(cronOf(schedule), { tz: 'UTC' });
        const firesOn = scheduleDayMatcher(schedule);
        // 2028: a leap year, starting on a Saturday.
        for (let day = Date.UTC(2028, 0, 1); day < Date.UTC(2029, 0, 1); day += DAY) {
          if (firesOn(new Date(day)) !== expression.includesDate(new Date(day)))
            mismatches.push(`${schedule} ${new Date(day).toISOString().slice(0, 10)}`);
        }
      }
      expect(mismatches).toEqual([]);
    });
  });
});
