import { backoffDelayMs } from './backoff';

describe(backoffDelayMs.name, () => {
  it('doubles the ceiling per consecutive failure and caps it', () => {
    const top = () => 0.999999;
    expect(backoffDelayMs(1, 1000, 60_000, top)).toBe(1000);
    expect(backoffDelayMs(2, 1000, 60_000, top)).toBe(2000);
    expect(backoffDelayMs(3, 1000, 60_000, top)).toBe(4000);
    expect(backoffDelayMs(10, 1000, 60_000, top)).toBe(60_000);
    expect(backoffDelayMs(1000, 1000, 60_000, top)).toBe(60_000);
  });

  it('jitters between half the ceiling and the ceiling', () => {
    expect(backoffDelayMs(3, 1000, 60_000, () => 0)).toBe(2000);
    const delays = Array.from({ length: 200 }, () => backoffDelayMs(3, 1000, 60_000));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(2000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(4000);
    expect(new Set(delays).size).toBeGreaterThan(10);
  });
});
