import * as fs from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';

/**
 * Readers of one environment variable each: they trim, apply the default, validate, and throw a
 * ConfigError that names the variable (never echoing its value). loadConfig (config.ts) composes them.
 */

export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

export function read(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

export function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number between ${min} and ${max}`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be a whole number between ${min} and ${max}`);
  return value;
}

export function optionalInteger(env: Env, name: string, min: number, max: number): number | undefined {
  return read(env, name) === undefined ? undefined : integer(env, name, min, min, max);
}

/**
 * A dotted OID whose arcs all fit 31 bits: Go's encoding/asn1 (Notation) refuses larger arcs,
 * which rules out 2.25.<UUID> policy OIDs.
 */
export function objectIdentifier(env: Env, name: string, fallback: string): string {
  const raw = read(env, name) ?? fallback;
  const arcs = raw.split('.');
  const valid =
    /^[0-2](\.(0|[1-9]\d{0,9}))+$/.test(raw) &&
    arcs.every((arc) => Number(arc) <= 0x7fffffff) &&
    (arcs[0] === '2' || Number(arcs[1]) < 40);
  if (!valid)
    throw new ConfigError(
      name,
      'must be a dotted OBJECT IDENTIFIER (e.g. 1.3.6.1.4.1.<your PEN>.…) whose arcs fit 31 bits',
    );
  return raw;
}

const PROXY_RANGE_NAMES = ['loopback', 'linklocal', 'uniquelocal'];

/** Comma-separated addresses, CIDR ranges (v4 /0-32, v6 /0-128) or range names; unset or 'false': none. */
export function trustedProxies(env: Env, name: string): string[] {
  const raw = read(env, name);
  if (raw === undefined || raw.toLowerCase() === 'false') return [];
  const entries = raw.split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    const [address, prefix, ...rest] = entry.split('/');
    const family = isIP(address);
    const valid =
      PROXY_RANGE_NAMES.includes(entry) ||
      (family !== 0 &&
        rest.length === 0 &&
        (prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128))));
    if (!valid) {
      throw new ConfigError(
        name,
        `'${entry}' is not an IP address, CIDR range or one of ${PROXY_RANGE_NAMES.join(', ')} (name your proxies: trusting every hop would let any client choose its address)`,
      );
    }
  }
  return entries;
}

export function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, 'must be true or false');
}

/** Verifiers fetch CRLs and OCSP over plain HTTP only (Notation refuses https for revocation). */
export function plainHttpUrl(env: Env, name: string, fallback: string): string {
  const raw = read(env, name) ?? fallback;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, 'must be an absolute http:// URL');
  }
  if (url.protocol !== 'http:') {
    throw new ConfigError(
      name,
      'must be an http:// URL: verifiers fetch CRLs and OCSP over plain HTTP (Notation refuses https for revocation)',
    );
  }
  if (url.search || url.hash) throw new ConfigError(name, 'must not contain a query or fragment');
  return raw.replace(/\/+$/, '');
}

export function postgresUrl(env: Env, name: string): string | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Never echo the value: it usually carries a password.
    throw new ConfigError(name, 'must be a postgres:// connection URL');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError(name, 'must be a postgres:// connection URL');
  }
  return raw;
}

/** NAME or NAME_FILE (a file holding the URL, e.g. a container secret); never both read. */
export function postgresUrlOrFile(env: Env, name: string, cwd: string): string | undefined {
  const file = secretFile(env, `${name}_FILE`, cwd);
  return file
    ? postgresUrl({ [`${name}_FILE`]: fs.readFileSync(file, 'utf8') }, `${name}_FILE`)
    : postgresUrl(env, name);
}

/** A secret file must exist, be readable and non-empty; its content is not kept in the config. */
export function secretFile(env: Env, name: string, cwd: string): string | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  const file = path.resolve(cwd, raw);
  let content: string;
  try {
    content = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(name, `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (content.trim() === '') throw new ConfigError(name, `${file} is empty`);
  return file;
}

/** Comma-separated `host`, `host:port`, `*.domain` or `[v6]:port` entries (checked again by the outbound policy). */
export function hostList(env: Env, name: string): string[] {
  const raw = read(env, name);
  if (raw === undefined) return [];
  const entries = raw
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  const valid = /^(?:(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
  for (const entry of entries)
    if (!valid.test(entry))
      throw new ConfigError(name, 'must be a comma-separated list of host, host:port or *.domain entries');
  return entries;
}
