import { dueOccurrence, lastOccurrence, nextOccurrence, QUARTERLY_CRON } from './rotation-schedule';

describe('rotation schedule', () => {
  it('quarterly means the first day of January, April, July and October at 00:00 UTC', () => {
    expect(QUARTERLY_CRON).toBe('0 0 1 1,4,7,10 *');
    let at = new Date('2026-11-28T21:00:00Z');
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) {
      at = nextOccurrence('quarterly', at);
      seen.push(at.toISOString());
    }
    expect(seen).toEqual(['2027-01-01T00:00:00.000Z', '2027-04-01T00:00:00.000Z', '2027-07-01T00:00:00.000Z', '2027-10-01T00:00:00.000Z', '2028-01-01T00:00:00.000Z']);
  });

  it('the last occurrence includes the instant itself; the next one is strictly later', () => {
    const boundary = new Date('2027-04-01T00:00:00Z');
    expect(lastOccurrence('quarterly', boundary).toISOString()).toBe('2027-04-01T00:00:00.000Z');
    expect(lastOccurrence('quarterly', new Date(boundary.getTime() - 1)).toISOString()).toBe('2027-01-01T00:00:00.000Z');
    expect(nextOccurrence('quarterly', boundary).toISOString()).toBe('2027-07-01T00:00:00.000Z');
  });

  it('reads cron expressions in UTC', () => {
    expect(nextOccurrence('0 6 15 */2 *', new Date('2027-02-20T00:00:00Z')).toISOString()).toBe('2027-03-15T06:00:00.000Z');
    expect(nextOccurrence('30 2 * * 1', new Date('2027-03-10T00:00:00Z')).toISOString()).toBe('2027-03-15T02:30:00.000Z');
  });

  it('a key is due when an occurrence passed since its active version was activated, answering that occurrence', () => {
    const activated = new Date('2027-02-10T12:00:00Z');
    expect(dueOccurrence('quarterly', activated, new Date('2027-03-31T23:59:59Z'))).toBeUndefined();
    expect(dueOccurrence('quarterly', activated, new Date('2027-04-01T00:00:00Z'))?.toISOString()).toBe('2027-04-01T00:00:00.000Z');
    // Weeks late (e.g. the service was down): still the April occurrence, once.
    expect(dueOccurrence('quarterly', activated, new Date('2027-05-20T00:00:00Z'))?.toISOString()).toBe('2027-04-01T00:00:00.000Z');
    // Activated just after the occurrence (the rotation that answered it): not due again.
    expect(dueOccurrence('quarterly', new Date('2027-04-01T00:30:00Z'), new Date('2027-06-30T00:00:00Z'))).toBeUndefined();
  });
});
