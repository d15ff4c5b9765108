import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { PluginConfig, validationError } from './protocol';

/**
 * `pluginConfig` keys, set with `notation key add … --plugin-config key=value` (and overridable per
 * `notation sign`). The token itself never goes into Notation's config.json: only where to read it.
 */
export const CONFIG_KEYS = ['url', 'token_file', 'token_env', 'ca_file', 'insecure', 'timeout_ms'] as const;

export const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_TIMEOUT_MS = 600_000;

export interface SignetConnection {
  /** Signet's base URL (may carry a path prefix when Signet sits behind a reverse proxy). */
  baseUrl: URL;
  token: string;
  /** Where the token came from (`token_file '<path>'` or `token_env 'NAME'`), for error messages; never the token. */
  tokenSource?: string;
  /** PEM of the CA(s) to trust for Signet's TLS certificate instead of the system roots. */
  ca?: Buffer;
  timeoutMs: number;
}

/**
 * Validates `pluginConfig` and reads the token. Every failure is a VALIDATION_ERROR naming the key;
 * no message ever contains the token.
 */
export function readConnection(config: PluginConfig | undefined, env: NodeJS.ProcessEnv): SignetConnection {
  const cfg = config ?? {};
  for (const key of Object.keys(cfg)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      throw validationError(`pluginConfig: unknown key '${key}' (known keys: ${CONFIG_KEYS.join(', ')})`);
    }
  }

  const insecure = readBoolean(cfg, 'insecure');
  const baseUrl = readUrl(cfg.url, insecure);
  if (cfg.ca_file !== undefined && baseUrl.protocol !== 'https:') {
    throw validationError(`pluginConfig: 'ca_file' only applies to an https:// url`);
  }
  const { token, source } = readToken(cfg, env);
  return {
    baseUrl,
    token,
    tokenSource: source,
    ca: cfg.ca_file === undefined ? undefined : readCa(cfg.ca_file, env),
    timeoutMs: readTimeout(cfg.timeout_ms),
  };
}

function readUrl(value: string | undefined, insecure: boolean): URL {
  if (value === undefined || value.trim() === '') {
    throw validationError(`pluginConfig: 'url' is required (Signet's base URL, e.g. https://signet.example.com)`);
  }
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw validationError(`pluginConfig: 'url' is not a valid URL: '${value}'`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw validationError(
      `pluginConfig: 'url' must be https:// (or http:// to a loopback address), got '${url.protocol}'`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw validationError(`pluginConfig: 'url' must not carry credentials; use token_file or token_env`);
  }
  if (url.search !== '' || url.hash !== '') {
    throw validationError(`pluginConfig: 'url' must not have a query or fragment`);
  }
  // A bearer token sent over plain HTTP can be read by anyone on the path; only the local machine is exempt.
  if (url.protocol === 'http:' && !isLoopback(url.hostname) && !insecure) {
    throw validationError(
      `pluginConfig: refusing plain http:// to non-loopback host '${url.hostname}': the token would travel unencrypted; ` +
        `use https:// (with ca_file for a private CA) or set insecure=true`,
    );
  }
  return url;
}

/** 127.0.0.0/8, ::1 and the name localhost. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (host.toLowerCase() === 'localhost') return true;
  if (net.isIPv4(host)) return host.split('.')[0] === '127';
  if (net.isIPv6(host)) return host === '::1';
  return false;
}

function readToken(cfg: PluginConfig, env: NodeJS.ProcessEnv): { token: string; source: string } {
  const file = cfg.token_file;
  const variable = cfg.token_env;
  if ((file === undefined) === (variable === undefined)) {
    throw validationError(
      `pluginConfig: set exactly one of 'token_file' (a file holding the Signet token) or 'token_env' (an environment variable holding it)`,
    );
  }
  let token: string;
  let source: string;
  if (file !== undefined) {
    const resolved = expandHome(file, env);
    source = `token_file '${resolved}'`;
    try {
      token = fs.readFileSync(resolved, 'utf8');
    } catch (error) {
      throw validationError(`pluginConfig: cannot read token_file '${resolved}' (${errorCode(error)})`);
    }
    token = token.trim();
    if (token === '') throw validationError(`pluginConfig: token_file '${resolved}' is empty`);
  } else {
    source = `token_env '${variable}'`;
    token = (env[variable!] ?? '').trim();
    if (token === '')
      throw validationError(`pluginConfig: environment variable '${variable}' (token_env) is not set or empty`);
  }
  // A token goes into an HTTP header: anything but visible ASCII is a broken file, and echoing it would leak it.
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw validationError(
      `pluginConfig: the token from ${file !== undefined ? 'token_file' : 'token_env'} contains spaces or non-printable characters`,
    );
  }
  return { token, source };
}

function readCa(file: string, env: NodeJS.ProcessEnv): Buffer {
  const resolved = expandHome(file, env);
  let pem: Buffer;
  try {
    pem = fs.readFileSync(resolved);
  } catch (error) {
    throw validationError(`pluginConfig: cannot read ca_file '${resolved}' (${errorCode(error)})`);
  }
  if (!pem.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
    throw validationError(`pluginConfig: ca_file '${resolved}' holds no PEM certificate`);
  }
  return pem;
}

function readTimeout(value: string | undefined): number {
  if (value === undefined) return DEFAULT_TIMEOUT_MS;
  const ms = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(ms >= 1 && ms <= MAX_TIMEOUT_MS)) {
    throw validationError(`pluginConfig: 'timeout_ms' must be an integer from 1 to ${MAX_TIMEOUT_MS}, got '${value}'`);
  }
  return ms;
}

function readBoolean(cfg: PluginConfig, key: string): boolean {
  const value = cfg[key];
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw validationError(`pluginConfig: '${key}' must be 'true' or 'false', got '${value}'`);
}

/** `--plugin-config token_file=~/x` reaches us unexpanded (the shell expands ~ only at the start of a word). */
function expandHome(file: string, env: NodeJS.ProcessEnv): string {
  return file === '~' || file.startsWith('~/') ? path.join(env.HOME || os.homedir(), file.slice(1)) : file;
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? 'unreadable';
}
