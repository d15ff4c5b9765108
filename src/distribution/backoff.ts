/**
 * Delay before the next attempt on a failing target: exponential in the number of consecutive
 * failures, capped, with "equal jitter" (half fixed, half random) so that targets failing together
 * — a region's registries behind one outage — do not retry in lockstep, while the delay still
 * grows with every failure.
 */
export function backoffDelayMs(
  failures: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(failures - 1, 0), 30);
  const ceiling = Math.min(maxMs, baseMs * 2 ** exponent);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
