import { importJWK, SignJWT } from 'jose';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { DomainError } from '../../src/common/errors';
import { IssuerEndpoint, IssuerKeys } from '../../src/identity/issuer-keys';
import { issuerKey, publicJwk } from '../support/oidc-issuer';

/**
 * IssuerKeys against real HTTP servers on loopback: discovery and JWKS go through distribution's
 * outbound policy, so a discovery document or a redirect cannot send Signet to an address the
 * policy refuses (cloud metadata, hosts outside the allowlist), and each such case fails closed
 * with a 503 naming the provider.
 */
describe(IssuerKeys.name, () => {
  const key = issuerKey('RS256');
  let server: http.Server;
  let base: string;
  let routes: Record<string, (response: http.ServerResponse) => void> = {};
  let hits: string[] = [];

  beforeAll(async () => {
    server = http.createServer((request, response) => {
      hits.push(request.url!);
      const route = routes[request.url!];
      if (route) route(response);
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    routes = {};
    hits = [];
  });

  const json = (body: unknown) => (response: http.ServerResponse) =>
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const redirect = (location: string) => (response: http.ServerResponse) => response.writeHead(302, { location }).end();
  const keys = (allowedHosts: string[] = []) =>
    new IssuerKeys({ allowedHosts, allowLoopback: true, requestTimeoutMs: 2000, refetchMs: 60_000, maxAgeMs: 600_000 });
  const provider = (jwksUri: string | null = null): IssuerEndpoint => ({
    id: 'p1',
    name: 'ci-issuer',
    issuer: base,
    jwksUri,
  });

  async function token(): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid })
      .setIssuer(base)
      .setAudience('signet')
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(await importJWK(key, 'RS256'));
  }

  async function refusal(issuerKeys: IssuerKeys, endpoint = provider()): Promise<DomainError> {
    const error = await issuerKeys
      .verify(endpoint, await token(), { issuer: base, audience: 'signet', algorithms: ['RS256'] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe('IDENTITY_PROVIDER_UNAVAILABLE');
    expect((error as DomainError).message).toContain("identity provider 'ci-issuer'");
    return error as DomainError;
  }

  it("verifies with the JWKS the discovery document names, on the issuer's own host", async () => {
    routes['/.well-known/openid-configuration'] = json({ issuer: base, jwks_uri: `${base}/keys` });
    routes['/keys'] = json({ keys: [publicJwk(key)] });
    const { payload } = await keys().verify(provider(), await token(), {
      issuer: base,
      audience: 'signet',
      algorithms: ['RS256'],
    });
    expect(payload.sub).toBe('x');
  });

  it('refuses a discovery document that names another issuer', async () => {
    routes['/.well-known/openid-configuration'] = json({
      issuer: 'https://evil.example.com',
      jwks_uri: `${base}/keys`,
    });
    expect((await refusal(keys())).message).toMatch(/names issuer/);
  });

  it('refuses a jwks_uri on a host outside the allowlist, or on the metadata address, without connecting there', async () => {
    routes['/.well-known/openid-configuration'] = json({
      issuer: base,
      jwks_uri: 'http://169.254.169.254/latest/meta-data/keys',
    });
    expect((await refusal(keys())).message).toMatch(/could not be fetched.*link-local/);
    routes['/.well-known/openid-configuration'] = json({ issuer: base, jwks_uri: 'http://internal.example.com/keys' });
    expect((await refusal(keys())).message).toMatch(/could not be fetched.*not in the allowed hosts/);
    routes['/.well-known/openid-configuration'] = json({
      issuer: base,
      jwks_uri: 'http://169.254.169.254/latest/meta-data/keys',
    });
    // Even listed, a link-local address is never reached.
    expect((await refusal(keys(['169.254.169.254']))).message).toMatch(/could not be fetched.*link-local/);
  });

  it('checks every redirect hop: a JWKS redirecting to the metadata address or an unlisted host fails closed', async () => {
    routes['/.well-known/openid-configuration'] = json({ issuer: base, jwks_uri: `${base}/keys` });
    routes['/keys'] = redirect('http://169.254.169.254/latest/meta-data/iam');
    expect((await refusal(keys())).message).toMatch(/could not be fetched/);
    routes['/keys'] = redirect('http://internal.example.com/keys');
    expect((await refusal(keys())).message).toMatch(/could not be fetched.*not in the allowed hosts/);
    expect(hits).toEqual(['/.well-known/openid-configuration', '/keys', '/.well-known/openid-configuration', '/keys']);
  });
});
