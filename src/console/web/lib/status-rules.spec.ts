import { checkpointVerdict, crlVerdict, expiryItems, rotationCalendar } from './status-rules';
import { nextQuarter } from './time';
import type { Ca, SigningKey } from './types';

const now = new Date('2026-05-10T12:00:00Z');
const key = (overrides: Partial<SigningKey> = {}): SigningKey => ({
  name: 'release',
  issuer: 'issuing',
  external: false,
  certificateValidityDays: 400,
  rotation: { schedule: 'quarterly' },
  activeVersion: 1,
  versions: [{ version: 1, state: 'active', serial: '01', notBefore: '2026-04-01T00:00:00Z', notAfter: '2027-05-05T00:00:00Z', activatedAt: '2026-04-01T00:05:00Z', revokedAt: null }],
  ...overrides,
});
const ca = (notAfter: string, kind: Ca['kind'] = 'issuing'): Ca => ({
  name: kind === 'issuing' ? 'issuing' : 'root',
  kind,
  parent: null,
  external: false,
  generations: [{ generation: 1, name: `${kind}-g1`, state: 'active', serial: '0a', notBefore: '2025-01-01T00:00:00Z', notAfter, urls: {} }],
});

describe('status rules (the Overview)', () => {
  it('next quarterly rotation is the next 1 January/April/July/October at 00:00 UTC', () => {
    expect(nextQuarter(now).toISOString()).toBe('2026-07-01T00:00:00.000Z');
    expect(nextQuarter(new Date('2026-12-31T23:59:59Z')).toISOString()).toBe('2027-01-01T00:00:00.000Z');
    expect(nextQuarter(new Date('2026-07-01T00:00:00Z')).toISOString()).toBe('2026-10-01T00:00:00.000Z');
  });

  it('a key whose quarterly rotation is more than 24 h late is red, one rotated this quarter is not', () => {
    const late = key({ versions: [{ ...key().versions[0], activatedAt: '2026-03-20T00:00:00Z' }] });
    const [lateItem] = rotationCalendar([late], now);
    expect(lateItem.ok).toBe(false);
    expect(lateItem.overdueSince?.toISOString()).toBe('2026-04-01T00:00:00.000Z');
    expect(rotationCalendar([key()], now)[0].ok).toBe(true);
    // Within the 24 h grace the due rotation is not yet overdue.
    expect(rotationCalendar([late], new Date('2026-04-01T20:00:00Z'))[0].ok).toBe(true);
  });

  it('a key without an active version is red; an external key waiting for its chain is not', () => {
    expect(rotationCalendar([key({ versions: [], activeVersion: null })], now)[0].ok).toBe(false);
    expect(rotationCalendar([key({ versions: [], activeVersion: null, external: true })], now)[0].ok).toBe(true);
  });

  it('an active issuing CA is red once it cannot cover its longest leaf plus the renewal margin', () => {
    // 400-day leaves + 30-day margin: 429 days left is red, 431 is not.
    const red = expiryItems([ca(new Date(now.getTime() + 429.5 * 86_400_000).toISOString())], [key()], now).find((i) => i.kind === 'ca')!;
    const green = expiryItems([ca(new Date(now.getTime() + 431.5 * 86_400_000).toISOString())], [key()], now).find((i) => i.kind === 'ca')!;
    expect([red.ok, green.ok]).toEqual([false, true]);
    expect(red.rule).toMatch(/430 days/);
  });

  it('a leaf with fewer than 30 days left is red', () => {
    const short = key({ versions: [{ ...key().versions[0], notAfter: '2026-06-01T00:00:00Z' }] });
    const leaf = expiryItems([], [short], now).find((i) => i.kind === 'leaf')!;
    expect(leaf).toMatchObject({ ok: false, days: 21 });
  });

  it('a CRL past half its validity, or missing, is red', () => {
    const thisUpdate = new Date('2026-05-10T00:00:00Z');
    expect(crlVerdict('g1', { thisUpdate, nextUpdate: new Date('2026-05-11T00:00:00Z') }, now).ok).toBe(true);
    expect(crlVerdict('g1', { thisUpdate, nextUpdate: new Date('2026-05-10T20:00:00Z') }, now).ok).toBe(false);
    expect(crlVerdict('g1', null, now, 'GET answered 404').ok).toBe(false);
  });

  it('an old checkpoint is red only while newer rows wait for one', () => {
    const old = { time: '2026-05-10T11:50:00Z' };
    expect(checkpointVerdict(old, true, now).ok).toBe(false);
    expect(checkpointVerdict(old, false, now).ok).toBe(true);
    expect(checkpointVerdict({ time: '2026-05-10T11:59:30Z' }, true, now)).toMatchObject({ ok: true, ageSeconds: 30 });
  });
});
