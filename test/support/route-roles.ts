/**
 * API.md's role table, one rule per route the application registers (the authorisation matrix
 * fails on a live route missing here). Shared by the matrix and the fuzz tests.
 */
export type Caller = 'admin' | 'signer' | 'security-officer' | 'auditor';
export const EVERYONE: Caller[] = ['admin', 'signer', 'security-officer', 'auditor'];
export const READERS: Caller[] = ['admin', 'security-officer', 'auditor'];
export const SECURITY: Caller[] = ['admin', 'security-officer'];
export const ADMIN: Caller[] = ['admin'];

export interface Rule {
  method: string;
  /** Fastify route template as registered. */
  url: string;
  /** 'public' = anyone, no token needed. */
  allowed: Caller[] | 'public';
  /** Signers pass only for granted keys; others get the same 404 as a missing key. */
  keyScoped?: boolean;
  /** A server-sent event stream: a 200 never ends (test/support/inject-answer.ts). */
  stream?: boolean;
}

export const TABLE: Rule[] = [
  // Service and public endpoints (API.md: everyone, anonymous included).
  { method: 'GET', url: '/healthz', allowed: 'public' },
  { method: 'GET', url: '/readyz', allowed: 'public' },
  { method: 'GET', url: '/pki/:file', allowed: 'public' },
  { method: 'POST', url: '/ocsp/:ca', allowed: 'public' },
  { method: 'GET', url: '/ocsp/:ca/*', allowed: 'public' },
  { method: 'POST', url: '/tsa', allowed: 'public' },
  { method: 'GET', url: '/openapi.json', allowed: 'public' },
  { method: 'GET', url: '/openapi.yaml', allowed: 'public' },
  { method: 'GET', url: '/docs', allowed: 'public' },
  { method: 'GET', url: '/docs/', allowed: 'public' },
  { method: 'GET', url: '/docs/*', allowed: 'public' },
  { method: 'GET', url: '/docs/swagger-ui-init.js', allowed: 'public' },
  { method: 'GET', url: '/docs/static/*', allowed: 'public' },
  { method: 'GET', url: '/docs/docs/swagger-ui-init.js', allowed: 'public' },
  { method: 'GET', url: '/docs/index.html', allowed: 'public' },
  { method: 'GET', url: '/docs/LICENSE', allowed: 'public' },
  // The security console's static files (README "Security console"); its data comes from the API.
  { method: 'GET', url: '/console', allowed: 'public' },
  { method: 'GET', url: '/console/*', allowed: 'public' },
  // Metrics: admin, security-officer, auditor (anonymous only when configured).
  { method: 'GET', url: '/metrics', allowed: READERS },
  // Use of a key: admin and signers granted the key.
  { method: 'POST', url: '/v1/keys/:name/sign', allowed: ['admin', 'signer'], keyScoped: true },
  { method: 'GET', url: '/v1/keys/:name', allowed: ['admin', 'signer'], keyScoped: true },
  { method: 'GET', url: '/v1/keys/:name/certificate-chain', allowed: ['admin', 'signer'], keyScoped: true },
  // Reads for the security team and auditors.
  { method: 'GET', url: '/v1/keys', allowed: READERS },
  { method: 'GET', url: '/v1/certificates', allowed: READERS },
  { method: 'GET', url: '/v1/certificates/:serial', allowed: READERS },
  { method: 'GET', url: '/v1/certificates/:serial/revocation', allowed: READERS },
  { method: 'GET', url: '/v1/rotations', allowed: READERS },
  { method: 'GET', url: '/v1/rotations/:id', allowed: READERS },
  { method: 'GET', url: '/v1/distribution', allowed: READERS },
  { method: 'GET', url: '/v1/distribution/events', allowed: READERS, stream: true },
  { method: 'GET', url: '/v1/status', allowed: READERS },
  { method: 'GET', url: '/v1/truststores', allowed: READERS },
  { method: 'GET', url: '/v1/truststores/:name', allowed: READERS },
  { method: 'GET', url: '/v1/truststores/:name/bundle', allowed: READERS },
  // Not named in API.md's table; read access like the other operational reads.
  { method: 'GET', url: '/v1/cas', allowed: READERS },
  { method: 'GET', url: '/v1/cas/:name', allowed: READERS },
  { method: 'GET', url: '/v1/regions', allowed: READERS },
  { method: 'GET', url: '/v1/regions/:region', allowed: READERS },
  { method: 'GET', url: '/v1/regions/:region/targets/:name', allowed: READERS },
  // Revoke, force a rotation, sync distribution: admin and security-officer.
  { method: 'POST', url: '/v1/certificates/:serial/revoke', allowed: SECURITY },
  { method: 'POST', url: '/v1/keys/:name/rotate', allowed: SECURITY },
  { method: 'POST', url: '/v1/distribution/sync', allowed: SECURITY },
  // Audit: admin, security-officer, auditor; an on-demand checkpoint writes, so not auditors.
  { method: 'GET', url: '/v1/audit', allowed: READERS },
  { method: 'GET', url: '/v1/audit/verify', allowed: READERS },
  { method: 'GET', url: '/v1/audit/checkpoints', allowed: READERS },
  { method: 'POST', url: '/v1/audit/checkpoints', allowed: SECURITY },
  // Security console sessions (README "Security console"): signing in takes a token in the body;
  // signers get no session, so the session routes are open to the console roles only.
  { method: 'POST', url: '/v1/sessions', allowed: 'public' },
  { method: 'GET', url: '/v1/sessions/current', allowed: READERS },
  { method: 'DELETE', url: '/v1/sessions', allowed: READERS },
  // Create/alter keys, CAs, tokens, truststores, regions, targets: admin.
  { method: 'POST', url: '/v1/keys', allowed: ADMIN },
  { method: 'GET', url: '/v1/keys/:name/versions/:version/csr', allowed: ADMIN },
  { method: 'POST', url: '/v1/keys/:name/versions/:version/certificate', allowed: ADMIN },
  { method: 'POST', url: '/v1/cas', allowed: ADMIN },
  { method: 'GET', url: '/v1/cas/:name/csr', allowed: ADMIN },
  { method: 'POST', url: '/v1/cas/:name/certificate', allowed: ADMIN },
  { method: 'POST', url: '/v1/cas/:name/renew', allowed: ADMIN },
  { method: 'POST', url: '/v1/rotations/:id/force', allowed: ADMIN },
  { method: 'POST', url: '/v1/tokens', allowed: ADMIN },
  { method: 'GET', url: '/v1/tokens', allowed: ADMIN },
  { method: 'GET', url: '/v1/tokens/:id', allowed: ADMIN },
  { method: 'PATCH', url: '/v1/tokens/:id', allowed: ADMIN },
  { method: 'DELETE', url: '/v1/tokens/:id', allowed: ADMIN },
  // Workload identity (OIDC): identity providers and workload rules are admin-only, reads included.
  { method: 'POST', url: '/v1/identity-providers', allowed: ADMIN },
  { method: 'GET', url: '/v1/identity-providers', allowed: ADMIN },
  { method: 'GET', url: '/v1/identity-providers/:name', allowed: ADMIN },
  { method: 'PATCH', url: '/v1/identity-providers/:name', allowed: ADMIN },
  { method: 'DELETE', url: '/v1/identity-providers/:name', allowed: ADMIN },
  { method: 'POST', url: '/v1/workload-rules', allowed: ADMIN },
  { method: 'GET', url: '/v1/workload-rules', allowed: ADMIN },
  { method: 'GET', url: '/v1/workload-rules/:name', allowed: ADMIN },
  { method: 'PATCH', url: '/v1/workload-rules/:name', allowed: ADMIN },
  { method: 'DELETE', url: '/v1/workload-rules/:name', allowed: ADMIN },
  { method: 'POST', url: '/v1/truststores', allowed: ADMIN },
  { method: 'PATCH', url: '/v1/truststores/:name', allowed: ADMIN },
  { method: 'POST', url: '/v1/regions', allowed: ADMIN },
  { method: 'DELETE', url: '/v1/regions/:region', allowed: ADMIN },
  { method: 'POST', url: '/v1/regions/:region/targets', allowed: ADMIN },
  { method: 'PATCH', url: '/v1/regions/:region/targets/:name', allowed: ADMIN },
  { method: 'DELETE', url: '/v1/regions/:region/targets/:name', allowed: ADMIN },
];

/** The rule for a live route; undefined for a route the table does not know. */
export function ruleFor(method: string, url: string): Rule | undefined {
  return TABLE.find((rule) => rule.method === method && rule.url === url);
}

/**
 * The least privileged caller the table lets through: anonymous for public routes, else the first
 * of signer, auditor, security-officer, admin that is allowed.
 */
export function leastCaller(rule: Rule): Caller | 'anonymous' {
  if (rule.allowed === 'public') return 'anonymous';
  const allowed = rule.allowed;
  return (
    (['signer', 'auditor', 'security-officer', 'admin'] as Caller[]).find((caller) => allowed.includes(caller)) ??
    'admin'
  );
}
