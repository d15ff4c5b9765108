import { BasicCredentials } from './trust-target';
import { HttpAnswer, OutboundHttp } from './outbound-http';

/**
 * Registry authentication as the distribution spec and Docker clients do it: the first request
 * goes out anonymously; a `401` names the scheme. `Basic` → resend with the configured user.
 * `Bearer realm=…,service=…,scope=…` → fetch a token from the realm (basic credentials, or
 * anonymously), resend with `Authorization: Bearer`. Tokens are cached per scope set until shortly
 * before they expire; a token that covers `pull,push` serves `pull` requests too.
 */
export interface AuthChallenge {
  scheme: string; // lower-case
  params: Record<string, string>; // keys lower-case
}

const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
const DEFAULT_TOKEN_LIFETIME_S = 60; // distribution token spec default
const TOKEN_SYNTAX = /^[A-Za-z0-9\-._~+/]+=*$/; // RFC 6750 b64token: nothing that could break a header

interface CachedToken {
  token: string;
  scopes: string[];
  expiresAt: number;
}

export class RegistryAuthenticator {
  private scheme: 'unknown' | 'basic' | 'bearer' = 'unknown';
  private realm?: URL;
  private service?: string;
  private readonly tokens: CachedToken[] = [];
  /** How many tokens were fetched from the realm; lets tests prove caching. */
  tokenFetches = 0;

  constructor(
    private readonly http: OutboundHttp,
    private readonly credentials: BasicCredentials | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** The Authorization header for a request needing `scopes`, from what earlier challenges taught us. */
  async authorization(scopes: string[], signal: AbortSignal): Promise<string | undefined> {
    if (this.scheme === 'basic') return this.basicHeader();
    if (this.scheme === 'bearer') return `Bearer ${(await this.tokenFor(scopes, signal)).token}`;
    return undefined;
  }

  /**
   * Learns from a 401. Throws a typed `auth` error when a retry cannot help (no usable challenge,
   * credentials required but not configured, token service refusing them).
   */
  async onUnauthorized(
    answer: HttpAnswer,
    scopes: string[],
    sentAuthorization: string | undefined,
    operation: string,
    signal: AbortSignal,
  ): Promise<void> {
    const challenges = parseWwwAuthenticate(answer.headerValues('www-authenticate'));
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer?.params.realm) {
      let realm: URL;
      try {
        realm = new URL(bearer.params.realm);
      } catch {
        throw this.http.error('protocol', 'bearer challenge with an invalid realm', operation, { status: 401 });
      }
      this.scheme = 'bearer';
      this.realm = realm;
      this.service = bearer.params.service;
      if (sentAuthorization?.startsWith('Bearer ')) this.forget(sentAuthorization.slice(7));
      const challengeScopes = (bearer.params.scope ?? '').split(' ').filter(Boolean);
      await this.fetchToken(union(challengeScopes, scopes), signal);
      return;
    }
    if (basic) {
      if (!this.credentials)
        throw this.http.error('auth', 'registry requires credentials and none are configured', operation, {
          status: 401,
        });
      if (sentAuthorization?.startsWith('Basic '))
        throw this.http.error('auth', 'registry rejected the credentials', operation, { status: 401 });
      this.scheme = 'basic';
      return;
    }
    throw this.http.error('auth', 'registry answered 401 without a usable WWW-Authenticate challenge', operation, {
      status: 401,
    });
  }

  private basicHeader(): string {
    const { username, password } = this.credentials!;
    return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
  }

  private async tokenFor(scopes: string[], signal: AbortSignal): Promise<CachedToken> {
    const now = this.now();
    const cached = this.tokens.find((t) => t.expiresAt > now && covers(t.scopes, scopes));
    return cached ?? this.fetchToken(scopes, signal);
  }

  private forget(token: string): void {
    const index = this.tokens.findIndex((t) => t.token === token);
    if (index >= 0) this.tokens.splice(index, 1);
  }

  private async fetchToken(scopes: string[], signal: AbortSignal): Promise<CachedToken> {
    const url = new URL(this.realm!);
    if (this.service) url.searchParams.set('service', this.service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    if (this.credentials) url.searchParams.set('account', this.credentials.username);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.credentials) headers.authorization = this.basicHeader();
    this.tokenFetches++;
    const answer = await this.http.sendFollowingRedirects(
      { method: 'GET', url, headers, operation: 'token', maxResponseBytes: MAX_TOKEN_RESPONSE_BYTES },
      signal,
    );
    if (answer.status === 401 || answer.status === 403) {
      throw this.http.error(
        'auth',
        `token service refused ${this.credentials ? 'the credentials' : 'anonymous access'} (${answer.status})`,
        'token',
        { status: answer.status },
      );
    }
    if (answer.status >= 500 || answer.status === 429)
      throw this.http.error('server', `token service answered ${answer.status}`, 'token', { status: answer.status });
    if (answer.status !== 200)
      throw this.http.error('protocol', `token service answered ${answer.status}`, 'token', { status: answer.status });
    const parsed = parseTokenResponse(answer.body);
    if (!parsed)
      throw this.http.error('protocol', 'token service answer has no usable token', 'token', { status: answer.status });
    const lifetimeMs = parsed.expiresIn * 1000;
    const entry: CachedToken = {
      token: parsed.token,
      scopes,
      expiresAt: this.now() + lifetimeMs - Math.min(10_000, lifetimeMs / 2),
    };
    this.tokens.push(entry);
    return entry;
  }
}

function parseTokenResponse(body: Buffer): { token: string; expiresIn: number } | undefined {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const record = json as Record<string, unknown>;
  const token = typeof record.token === 'string' && record.token ? record.token : record.access_token;
  if (typeof token !== 'string' || token.length > 16_384 || !TOKEN_SYNTAX.test(token)) return undefined;
  const expiresIn =
    typeof record.expires_in === 'number' && Number.isFinite(record.expires_in) && record.expires_in > 0
      ? Math.min(record.expires_in, 86_400)
      : DEFAULT_TOKEN_LIFETIME_S;
  return { token, expiresIn };
}

/**
 * Parses one or more WWW-Authenticate values (RFC 7235): `Bearer realm="…",service="…"`,
 * possibly several challenges in one value. Unknown syntax yields fewer challenges, never a throw.
 */
export function parseWwwAuthenticate(values: string[]): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  for (const value of values) {
    let i = 0;
    let current: AuthChallenge | undefined;
    const skip = () => {
      while (i < value.length && /[\s,]/.test(value[i])) i++;
    };
    const token = () => {
      const start = i;
      while (i < value.length && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(value[i])) i++;
      return value.slice(start, i);
    };
    while (i < value.length) {
      skip();
      const name = token();
      if (!name) break;
      let j = i;
      while (j < value.length && value[j] === ' ') j++;
      if (value[j] === '=' && current) {
        i = j + 1;
        while (i < value.length && value[i] === ' ') i++;
        let paramValue = '';
        if (value[i] === '"') {
          i++;
          while (i < value.length && value[i] !== '"') {
            if (value[i] === '\\' && i + 1 < value.length) i++;
            paramValue += value[i++];
          }
          i++;
        } else {
          const start = i;
          while (i < value.length && value[i] !== ',' && value[i] !== ' ') i++;
          paramValue = value.slice(start, i);
        }
        current.params[name.toLowerCase()] = paramValue;
      } else {
        // token68 or a bare scheme: a new challenge starts
        current = { scheme: name.toLowerCase(), params: {} };
        challenges.push(current);
        while (i < value.length && value[i] === ' ') i++;
        // skip a token68 (e.g. `Negotiate abc==`) that is not followed by '='
        const save = i;
        const maybe = token();
        let k = i;
        while (k < value.length && value[k] === ' ') k++;
        if (maybe && value[k] !== '=') {
          while (i < value.length && value[i] === '=') i++;
        } else {
          i = save;
        }
      }
    }
  }
  return challenges;
}

/** Whether tokens granted for `granted` serve a request needing `wanted` (`repository:a/b:pull,push` ⊇ `repository:a/b:pull`). */
export function covers(granted: string[], wanted: string[]): boolean {
  const grants = granted.map(parseScope);
  return wanted
    .map(parseScope)
    .every((want) =>
      grants.some(
        (grant) =>
          grant.type === want.type &&
          grant.name === want.name &&
          want.actions.every((a) => grant.actions.includes(a) || grant.actions.includes('*')),
      ),
    );
}

function parseScope(scope: string): { type: string; name: string; actions: string[] } {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) return { type: scope, name: '', actions: [] };
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope
      .slice(last + 1)
      .split(',')
      .filter(Boolean),
  };
}

/** Merges scope lists, combining actions of the same resource (`pull` + `push` → `pull,push`). */
export function union(...lists: string[][]): string[] {
  const merged = new Map<string, Set<string>>();
  for (const scope of lists.flat()) {
    const { type, name, actions } = parseScope(scope);
    const key = `${type}:${name}`;
    const set = merged.get(key) ?? new Set<string>();
    actions.forEach((a) => set.add(a));
    merged.set(key, set);
  }
  return [...merged.entries()].map(([key, actions]) => `${key}:${[...actions].sort().join(',')}`);
}
