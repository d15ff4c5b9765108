import { ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import * as path from 'node:path';

/** A private signing key as the issuer holds it (JWK with `kid`, `alg` and `use`). */
export type IssuerKey = { kid: string; alg: string; use: 'sig'; kty: string } & Record<string, string>;

/** A fresh signing key for the test issuer: RSA-2048 (RS256) or P-256 (ES256). */
export function issuerKey(alg: 'RS256' | 'ES256', kid = randomUUID()): IssuerKey {
  const { privateKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...(privateKey.export({ format: 'jwk' }) as Record<string, string>), kid, alg, use: 'sig' } as IssuerKey;
}

/** The public half of an issuer key (what its JWKS serves). */
export function publicJwk(key: IssuerKey): Record<string, string> {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...rest } = key;
  return rest;
}

export interface IssuerClient {
  /** The client id, which is the `aud` of the ID tokens minted for it. */
  id: string;
  alg?: 'RS256' | 'ES256';
}

/**
 * test/support/oidc-issuer.mjs (the real `oidc-provider` OpenID Provider) as a child process on
 * 127.0.0.1: discovery, JWKS and a token endpoint that mints ID tokens for test workloads.
 */
export class OidcIssuer {
  private constructor(
    private readonly child: ChildProcess,
    readonly issuer: string,
    public keys: IssuerKey[],
  ) {}

  static async start(
    clients: IssuerClient[],
    keys: IssuerKey[] = [issuerKey('RS256'), issuerKey('ES256')],
  ): Promise<OidcIssuer> {
    const child = spawn(process.execPath, [path.join(__dirname, 'oidc-issuer.mjs')], {
      env: {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'test',
        OIDC_ISSUER_KEYS: JSON.stringify(keys),
        OIDC_ISSUER_CLIENTS: JSON.stringify(clients),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const issuer = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const ready = /READY (\S+)/.exec(output);
        if (ready) resolve(ready[1]);
      });
      child.on('exit', (code) => reject(new Error(`oidc-issuer exited with ${code}: ${output}`)));
    });
    child.removeAllListeners('exit');
    return new OidcIssuer(child, issuer, keys);
  }

  /** An ID token for `claims` (must include `sub`), minted by the provider's token endpoint for `client`. */
  async mint(client: string, claims: Record<string, unknown>, options: { expiresIn?: number } = {}): Promise<string> {
    const form = new URLSearchParams({
      grant_type: 'urn:signet:test:workload',
      workload_claims: JSON.stringify(claims),
    });
    if (options.expiresIn !== undefined) form.set('expires_in', String(options.expiresIn));
    const response = await fetch(`${this.issuer}/token`, {
      method: 'POST',
      // RFC 6749 §2.3.1: the client id is form-urlencoded inside Basic credentials (our audiences are URLs).
      headers: {
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(client)}:test-secret`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: form,
    });
    const body = (await response.json()) as { id_token?: string };
    if (!response.ok || !body.id_token)
      throw new Error(`token endpoint answered ${response.status}: ${JSON.stringify(body)}`);
    return body.id_token;
  }

  /** Replaces the provider's signing keys (the first signs); its JWKS serves them from now on. */
  async rotate(keys: IssuerKey[]): Promise<void> {
    await this.control('keys', { keys });
    this.keys = keys;
  }

  /** How often discovery and the JWKS were fetched so far. */
  stats(): Promise<{ discovery: number; jwks: number }> {
    return this.control('stats', {});
  }

  /** While on, the JWKS answers 503. */
  async jwksOutage(on: boolean): Promise<void> {
    await this.control('outage', { jwks: on });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }

  private async control<T>(what: string, body: unknown): Promise<T> {
    const response = await fetch(`${this.issuer}/__control/${what}`, { method: 'POST', body: JSON.stringify(body) });
    return (await response.json()) as T;
  }
}
