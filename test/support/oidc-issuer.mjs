// A real OpenID Provider (the certified `oidc-provider` package) on 127.0.0.1, for the workload
// identity tests. It runs in its own Node process because oidc-provider is an ES module that Jest's
// CommonJS module system cannot load (test/support/oidc-issuer.ts starts and drives it).
//
// ID tokens are minted by the provider itself through a grant type registered with
// registerGrantType (`urn:signet:test:workload`): the client authenticates at the token endpoint
// as usual and names the workload's claims; the provider builds an IdToken (its own model, signed
// with its own current key, `iss` = itself, `aud` = the client id) exactly as for a login. CI
// issuers (GitHub Actions, GitLab, Kubernetes) mint their tokens without a user interaction too.
//
// Control routes (tests only, under /__control/): rotate the signing keys, count discovery and
// JWKS fetches, make the JWKS fail.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const GRANT = 'urn:signet:test:workload';
const port = Number(process.env.OIDC_ISSUER_PORT ?? 0);
let keys = JSON.parse(process.env.OIDC_ISSUER_KEYS ?? '[]');
const clients = JSON.parse(process.env.OIDC_ISSUER_CLIENTS ?? '[]');
const stats = { discovery: 0, jwks: 0 };
let jwksOutage = false;
let issuer = '';
let current;

function build() {
  const provider = new Provider(issuer, {
    clients: clients.map((client) => ({
      client_id: client.id,
      client_secret: 'test-secret',
      grant_types: [GRANT],
      response_types: [],
      redirect_uris: [],
      id_token_signed_response_alg: client.alg ?? 'RS256',
    })),
    jwks: { keys },
    features: { devInteractions: { enabled: false } },
    ttl: { IdToken: 300 },
    cookies: { keys: ['test-cookie-key'] },
  });
  provider.registerGrantType(
    GRANT,
    async (ctx) => {
      const claims = JSON.parse(ctx.oidc.params.workload_claims ?? '{}');
      const expiresIn = ctx.oidc.params.expires_in ? Number(ctx.oidc.params.expires_in) : undefined;
      const token = new ctx.oidc.provider.IdToken({ sub: claims.sub }, { ctx });
      token.scope = 'openid';
      for (const [name, value] of Object.entries(claims)) if (name !== 'sub') token.set(name, value);
      if (!('jti' in claims)) token.set('jti', randomUUID());
      const idToken = await token.issue({
        use: 'idtoken',
        ...(expiresIn !== undefined ? { expiresAt: Math.floor(Date.now() / 1000) + expiresIn } : {}),
      });
      ctx.body = {
        id_token: idToken,
        token_type: 'N_A',
        issued_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      };
    },
    ['workload_claims', 'expires_in'],
  );
  return provider;
}

function readBody(request) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

const server = http.createServer(async (request, response) => {
  const url = new URL(request.url, issuer);
  if (url.pathname.startsWith('/__control/')) {
    const body = request.method === 'POST' ? JSON.parse((await readBody(request)) || '{}') : {};
    if (url.pathname === '/__control/keys') {
      keys = body.keys;
      current = build();
    } else if (url.pathname === '/__control/outage') {
      jwksOutage = Boolean(body.jwks);
    }
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ ...stats }));
    return;
  }
  if (url.pathname === '/.well-known/openid-configuration') stats.discovery++;
  if (url.pathname === '/jwks') {
    stats.jwks++;
    if (jwksOutage) {
      response.statusCode = 503;
      response.end('unavailable');
      return;
    }
  }
  current.callback()(request, response);
});

// Longer than any client's idle keep-alive: a test that blocks its event loop for a while (a
// synchronous build) must not find its pooled connection closed under it ("other side closed").
server.keepAliveTimeout = 120_000;

server.listen(port, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  current = build();
  process.stdout.write(`READY ${issuer}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
