/** Times: shown in the user's zone, with the UTC instant on hover. */

export function localTime(iso: string, locale?: string, timeZone?: string): string {
  return new Date(iso).toLocaleString(locale, {
    timeZone,
    year: 'numeric',
    month: 'short',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    timeZoneName: 'short',
  });
}

export function utcTitle(iso: string): string {
  return `${new Date(iso)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, 'Z')} (UTC)`;
}

/** "3 d", "4.2 h", "12 s": a duration for people, seconds in, sign kept. */
export function duration(seconds: number): string {
  const sign = seconds < 0 ? '-' : '';
  const s = Math.abs(seconds);
  if (s < 60) return `${sign}${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  if (s < 3600) return `${sign}${Math.round(s / 60)} min`;
  if (s < 86_400 * 2) return `${sign}${(s / 3600).toFixed(1)} h`;
  return `${sign}${Math.floor(s / 86_400)} d`;
}
