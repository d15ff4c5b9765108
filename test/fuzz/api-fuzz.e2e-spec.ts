import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import type { InjectOptions } from 'light-my-request';
import { registeredRoutes, RegisteredRoute } from '../../src/observability/route-registry';
import { BINARY_BODY_ROUTES } from '../../src/observability/body-types';
import { injectAnswer } from '../support/inject-answer';
import { Caller, leastCaller, ruleFor } from '../support/route-roles';
import { fuzzParameters, pathSegment, queryString, rawBody, RawBody } from './arbitraries';
import { FUZZ_KEY, FUZZ_SUBJECT, FuzzApp, ISSUING_CA, ROOT_CA, responseProblem, startFuzzApp } from './fuzz-harness';

/**
 * Property-based tests over every route the live router registers (a new route is fuzzed without
 * touching this file): random and near-valid JSON bodies, hostile path parameters and query
 * strings, each as admin and as the least privileged caller API.md's role table lets through, so
 * validation rather than authorisation is what answers. Every answer must be < 500, every 4xx in
 * the error shape without internal text, and a rejected request must not call C_Sign.
 */

const REGION = 'fuzz-region';
const TRUSTSTORE = 'fuzz-ts';
const TARGET = 'fuzz-target';
const REVOCABLE_KEY = 'fuzz-revocable';
const ROTATION_ID = '00000000-0000-4000-8000-000000000000';
const IDP = 'fuzz-idp';
const IDP_ISSUER = 'https://idp.invalid';
const RULE = 'fuzz-rule';

/** A valid body per route, the seed of the near-valid mutations; other routes get random bodies only. */
const SAMPLE_BODIES: Record<string, object> = {
  'POST /v1/keys': {
    name: 'fuzz-new',
    keySpec: 'EC-256',
    subject: { ...FUZZ_SUBJECT, CN: 'fuzz-new' },
    rotation: { schedule: 'quarterly', overlapDays: 7 },
  },
  'POST /v1/keys/:name/sign': {
    digest: Buffer.alloc(32, 7).toString('base64'),
    hashAlgorithm: 'SHA-256',
    signatureFormat: 'raw',
    artifact: { digest: `sha256:${'a'.repeat(64)}` },
  },
  'POST /v1/keys/:name/rotate': { reason: 'fuzz' },
  'POST /v1/cas': {
    name: 'fuzz-ca',
    kind: 'issuing',
    parent: ROOT_CA,
    keySpec: 'EC-256',
    subject: { ...FUZZ_SUBJECT, CN: 'Fuzz CA' },
    validityDays: 365,
  },
  'POST /v1/cas/:name/renew': { reason: 'fuzz' },
  'POST /v1/certificates/:serial/revoke': { reason: 'superseded', invalidityDate: '2026-01-01T00:00:00Z' },
  'POST /v1/rotations/:id/force': { reason: 'fuzz' },
  'POST /v1/tokens': { name: 'fuzz-token', role: 'auditor', keys: [], expiresInDays: 1 },
  'PATCH /v1/tokens/:id': { keys: [FUZZ_KEY], expiresInDays: 2 },
  'POST /v1/truststores': {
    name: 'fuzz-ts-2',
    cas: [ROOT_CA],
    trustPolicy: { registryScopes: ['*'], level: 'strict' },
  },
  'PATCH /v1/truststores/:name': { cas: [ROOT_CA], trustPolicy: { level: 'audit' } },
  'POST /v1/regions': { name: 'fuzz-region-2' },
  'POST /v1/regions/:region/targets': {
    name: 'fuzz-target-2',
    kind: 'oci-registry',
    endpoint: 'https://registry.invalid',
    repository: 'signet/trust',
    truststore: TRUSTSTORE,
    required: false,
  },
  'PATCH /v1/regions/:region/targets/:name': { required: false, credentials: { username: 'u', password: 'p' } },
  'POST /v1/identity-providers': {
    name: 'fuzz-idp-2',
    issuer: 'https://idp2.invalid',
    audiences: ['signet'],
    allowedAlgorithms: ['RS256', 'ES256'],
    clockSkewSeconds: 60,
    singleUse: false,
  },
  'PATCH /v1/identity-providers/:name': {
    audiences: ['signet', 'other'],
    jwksUri: 'https://idp.invalid/jwks',
    clockSkewSeconds: 30,
    singleUse: true,
  },
  'POST /v1/workload-rules': {
    name: 'fuzz-rule-2',
    provider: IDP,
    claims: { repository: 'acme/*', ref: 'refs/heads/main' },
    keys: [FUZZ_KEY],
    expiresAt: '2030-01-01T00:00:00Z',
  },
  'PATCH /v1/workload-rules/:name': { claims: { repository: 'acme/app' }, keys: [FUZZ_KEY], expiresAt: null },
};

/** Query parameter names the routes read (random names are mixed in). */
const QUERY_NAMES = ['key', 'version', 'format', 'after', 'type', 'subject', 'limit', 'full', 'ca', 'state'];

/** Generous: a request that takes this long is hanging. */
const ANSWER_BOUND_MS = 30_000;

const BODY_METHODS = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);

describe('fuzzed bodies, path parameters and query strings on every live route (in-process app, real PostgreSQL and SoftHSM2)', () => {
  let fuzz: FuzzApp;
  let routes: RegisteredRoute[];
  const valid: Record<string, string> = {};

  beforeAll(async () => {
    fuzz = await startFuzzApp();
    const admin = { authorization: `Bearer ${fuzz.tokens.admin}` };
    const created = async (options: InjectOptions) => {
      const response = await fuzz.t.app.inject({ ...options, headers: { ...admin, ...options.headers } });
      if (response.statusCode >= 300)
        throw new Error(`${options.method} ${options.url}: ${response.statusCode} ${response.body}`);
      return response.json();
    };
    await created({
      method: 'POST',
      url: '/v1/keys',
      payload: { name: REVOCABLE_KEY, keySpec: 'EC-256', subject: { ...FUZZ_SUBJECT, CN: REVOCABLE_KEY } },
    });
    await created({ method: 'POST', url: '/v1/truststores', payload: { name: TRUSTSTORE, cas: [ROOT_CA] } });
    await created({ method: 'POST', url: '/v1/regions', payload: { name: REGION } });
    await created({
      method: 'POST',
      url: `/v1/regions/${REGION}/targets`,
      payload: {
        name: TARGET,
        kind: 'oci-registry',
        endpoint: 'https://registry.invalid',
        repository: 'signet/trust',
        truststore: TRUSTSTORE,
      },
    });
    await created({
      method: 'POST',
      url: '/v1/identity-providers',
      payload: { name: IDP, issuer: IDP_ISSUER, audiences: ['signet'] },
    });
    await created({
      method: 'POST',
      url: '/v1/workload-rules',
      payload: { name: RULE, provider: IDP, claims: { sub: '*' }, keys: [FUZZ_KEY] },
    });
    const victim = await created({
      method: 'POST',
      url: '/v1/tokens',
      payload: { name: 'fuzz-victim', role: 'auditor' },
    });
    const certificates = await created({ method: 'GET', url: `/v1/certificates?key=${REVOCABLE_KEY}` });
    const issuing = await created({ method: 'GET', url: `/v1/cas/${ISSUING_CA}` });
    const generation = issuing.generations[issuing.generations.length - 1].name as string;
    Object.assign(valid, { id: victim.id, serial: certificates.certificates[0].serial, generation });
    routes = registeredRoutes(fuzz.t.app.getHttpAdapter().getInstance() as FastifyInstance);
    await fuzz.settle();
  });
  afterAll(() => fuzz.close());

  /** The valid value of each path parameter of a route (existing resources, so handlers are reached). */
  function validParams(route: RegisteredRoute): string[] {
    const names = [...route.url.matchAll(/:(\w+)|\*/g)].map((m) => m[1] ?? '*');
    return names.map((param) => {
      if (param === 'name') {
        if (route.url.startsWith('/v1/keys')) return FUZZ_KEY;
        if (route.url.startsWith('/v1/cas')) return ISSUING_CA;
        if (route.url.startsWith('/v1/truststores')) return TRUSTSTORE;
        if (route.url.startsWith('/v1/identity-providers')) return IDP;
        if (route.url.startsWith('/v1/workload-rules')) return RULE;
        return TARGET;
      }
      const fixed: Record<string, string> = {
        version: '1',
        serial: valid.serial,
        id: route.url.startsWith('/v1/tokens') ? valid.id : ROTATION_ID,
        region: REGION,
        file: `${valid.generation}.crt`,
        ca: valid.generation,
        '*': 'MAA%3D',
      };
      return fixed[param] ?? 'x';
    });
  }

  function fill(route: RegisteredRoute, values: string[]): string {
    let index = 0;
    return route.url.replace(/:(\w+)|\*/g, () => values[index++]);
  }

  function callers(route: RegisteredRoute): Array<Caller | 'anonymous'> {
    const rule = ruleFor(route.method, route.url);
    // A route missing from the role table fails the authorisation matrix; here it is fuzzed as admin.
    return [...new Set<Caller | 'anonymous'>(['admin', rule ? leastCaller(rule) : 'admin'])];
  }

  /**
   * Sends one request and returns what is wrong with the answer: a 5xx, a 4xx outside the error
   * shape, internal text, or C_Sign called for a rejected request.
   */
  async function send(
    route: RegisteredRoute,
    caller: Caller | 'anonymous',
    url: string,
    body?: RawBody,
    recheck = true,
  ): Promise<string | undefined> {
    const before = fuzz.signAttempts();
    const answer = injectAnswer(fuzz.t.app, route, {
      method: route.method as 'GET',
      url,
      headers: {
        ...(caller === 'anonymous' ? {} : { authorization: `Bearer ${fuzz.tokens[caller]}` }),
        ...(body?.contentType ? { 'content-type': body.contentType } : {}),
      },
      ...(body ? { payload: body.payload } : {}),
    });
    const where = `${route.method} ${url.slice(0, 300)} as ${caller}${body ? ` with ${body.contentType} ${body.payload.slice(0, 300)}` : ''}`;
    const response = await Promise.race([
      answer,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ANSWER_BOUND_MS).unref()),
    ]);
    if (!response) return `${where}: no answer within ${ANSWER_BOUND_MS} ms`;
    const signs = fuzz.signAttempts() - before;
    const problem = responseProblem(response);
    if (problem) return `${where}: ${problem}`;
    if (body !== undefined && isNonJsonBody(route, body) && response.statusCode !== 415)
      return `${where}: a body that is not UTF-8 JSON answered ${response.statusCode}, not 415`;
    if (response.statusCode >= 400 && signs !== 0) {
      // The counter is process-wide: background work an earlier accepted request started (a CRL, an
      // OCSP answer) can land during this one on a loaded machine. A rejection that signs does so
      // every time, so the same request is sent once more after the background settles.
      if (!recheck) return `${where}: rejected with ${response.statusCode} after ${signs} C_Sign call(s)`;
      await fuzz.settle();
      return send(route, caller, url, body, false);
    }
    if (response.statusCode < 300 && route.method !== 'GET') await fuzz.settle();
    return undefined;
  }

  /** Whether `body` is something other than UTF-8 JSON sent to a JSON route (issue #17: 415 before anything reads it). */
  function isNonJsonBody(route: RegisteredRoute, body: RawBody): boolean {
    if (BINARY_BODY_ROUTES.has(route.url)) return false;
    if (body.contentType === undefined) return body.payload.length > 0;
    const mediaType = body.contentType.split(';')[0].trim().toLowerCase();
    const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(body.contentType)?.[1]?.toLowerCase();
    return mediaType !== 'application/json' || (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8');
  }

  /** Runs one property per route and caller; collects every route's counterexample instead of stopping at the first. */
  async function everyRoute(
    applies: (route: RegisteredRoute) => boolean,
    property: (
      route: RegisteredRoute,
      caller: Caller | 'anonymous',
    ) => fc.IAsyncProperty<[unknown]> | fc.IAsyncPropertyWithHooks<[unknown]>,
  ): Promise<string[]> {
    const failures: string[] = [];
    let checked = 0;
    for (const route of routes.filter(applies)) {
      for (const caller of callers(route)) {
        const details = await fc.check(property(route, caller), { ...fuzzParameters(), endOnFailure: true });
        checked++;
        if (details.failed)
          failures.push(
            `${route.method} ${route.url} as ${caller}: ${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)} (seed ${details.seed}, path ${details.counterexamplePath})`,
          );
      }
    }
    expect(checked).toBeGreaterThan(0);
    return failures;
  }

  const expectNoProblem = (problem: string | undefined) => {
    if (problem) throw new Error(problem);
  };

  it('answers fuzzed JSON bodies (random values, wrong types, deep nesting, huge strings, unknown fields, near-valid mutations) on every route that takes a body with < 500 and the error shape, without calling C_Sign for a rejection', async () => {
    const failures = await everyRoute(
      (route) => BODY_METHODS.has(route.method),
      (route, caller) =>
        fc.asyncProperty(rawBody(SAMPLE_BODIES[`${route.method} ${route.url}`]), async (body) =>
          expectNoProblem(await send(route, caller, fill(route, validParams(route)), body)),
        ) as fc.IAsyncProperty<[unknown]>,
    );
    expect(failures).toEqual([]);
  });

  it('answers hostile path parameters (unicode, traversal, %00, bad escapes, very long) on every route with parameters with < 500 and the error shape', async () => {
    const failures = await everyRoute(
      (route) => /:\w+|\*/.test(route.url),
      (route, caller) => {
        const params = validParams(route);
        // Each parameter either keeps its valid value or is replaced; at least one is replaced.
        const values = fc
          .tuple(...params.map((param) => fc.option(pathSegment, { nil: param, freq: 3 })))
          .filter((chosen) => chosen.some((value, i) => value !== params[i]));
        const sample = SAMPLE_BODIES[`${route.method} ${route.url}`];
        const body = BODY_METHODS.has(route.method)
          ? { payload: JSON.stringify(sample ?? {}), contentType: 'application/json' }
          : undefined;
        return fc.asyncProperty(values, async (chosen) =>
          expectNoProblem(await send(route, caller, fill(route, chosen), body)),
        ) as fc.IAsyncProperty<[unknown]>;
      },
    );
    expect(failures).toEqual([]);
  });

  it('answers fuzzed query strings (known and random names, repeated, hostile values, bad escapes) on every route with < 500 and the error shape', async () => {
    const failures = await everyRoute(
      () => true,
      (route, caller) => {
        const sample = SAMPLE_BODIES[`${route.method} ${route.url}`];
        const body = BODY_METHODS.has(route.method)
          ? { payload: JSON.stringify(sample ?? {}), contentType: 'application/json' }
          : undefined;
        return fc.asyncProperty(queryString(QUERY_NAMES), async (query) =>
          expectNoProblem(await send(route, caller, fill(route, validParams(route)) + query, body)),
        ) as fc.IAsyncProperty<[unknown]>;
      },
    );
    expect(failures).toEqual([]);
  });

  it('answers the inputs that once gave 5xx or an unshaped error (deep nesting, NUL in a path, bad percent-encoding, an over-long parameter) in the error shape', async () => {
    const admin = { authorization: `Bearer ${fuzz.tokens.admin}`, 'content-type': 'application/json' };
    const cases: Array<[InjectOptions, number, string]> = [
      [
        { method: 'POST', url: '/v1/tokens', payload: '['.repeat(20_000) + ']'.repeat(20_000) },
        400,
        'VALIDATION_ERROR',
      ],
      [
        { method: 'POST', url: '/v1/truststores', payload: '{"a":'.repeat(5000) + '1' + '}'.repeat(5000) },
        400,
        'VALIDATION_ERROR',
      ],
      [{ method: 'GET', url: `/v1/regions/a%00b` }, 400, 'VALIDATION_ERROR'],
      [{ method: 'DELETE', url: `/v1/regions/${REGION}/targets/a%00b` }, 400, 'VALIDATION_ERROR'],
      [{ method: 'GET', url: '/v1/cas/%ZZ' }, 400, 'VALIDATION_ERROR'],
      [{ method: 'GET', url: `/v1/certificates/${'a'.repeat(5000)}` }, 414, 'BAD_REQUEST'],
    ];
    for (const [options, status, code] of cases) {
      const response = await fuzz.t.app.inject({ ...options, headers: admin });
      expect({
        url: options.url?.toString().slice(0, 40),
        status: response.statusCode,
        problem: responseProblem(response),
        code: response.json().error?.code,
      }).toEqual({ url: options.url?.toString().slice(0, 40), status, problem: undefined, code });
    }
  });

  it('answers fuzzed bearer ID tokens on the sign route (JWS-shaped: hostile headers, algorithms, claims of any type, a configured or unknown issuer) with 401 or 503 in the error shape, never calling C_Sign', async () => {
    const b64 = (value: unknown) =>
      Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
    const header = fc.oneof(
      fc.record(
        {
          alg: fc.constantFrom('none', 'None', 'HS256', 'RS256', 'ES256', 'PS256', 'EdDSA', ''),
          kid: fc.option(fc.string(), { nil: undefined }),
          typ: fc.option(fc.string(), { nil: undefined }),
        },
        { requiredKeys: ['alg'] },
      ),
      fc.jsonValue(),
      fc.string(),
    );
    const nowS = Math.floor(Date.now() / 1000);
    const claims = fc.oneof(
      fc.record(
        {
          iss: fc.oneof(fc.constant(IDP_ISSUER), fc.constant('https://unknown.invalid'), fc.jsonValue()),
          aud: fc.oneof(fc.constant('signet'), fc.array(fc.string()), fc.jsonValue()),
          sub: fc.oneof(fc.string(), fc.jsonValue()),
          exp: fc.oneof(fc.constant(nowS + 300), fc.integer(), fc.jsonValue()),
          iat: fc.oneof(fc.constant(nowS), fc.jsonValue()),
          repository: fc.jsonValue(),
        },
        { requiredKeys: [] },
      ),
      fc.jsonValue(),
      fc.string(),
    );
    const token = fc
      .tuple(
        header,
        claims,
        fc.oneof(fc.constant(''), fc.base64String(), fc.string({ unit: fc.constantFrom('A', 'b', '-', '_', '0') })),
      )
      .map(([h, c, sig]) => `${b64(h)}.${b64(c)}.${sig.replace(/[^A-Za-z0-9_-]/g, '')}`);
    const body = JSON.stringify(SAMPLE_BODIES['POST /v1/keys/:name/sign']);
    const details = await fc.check(
      fc.asyncProperty(token, async (bearer) => {
        const before = fuzz.signAttempts();
        const response = await fuzz.t.app.inject({
          method: 'POST',
          url: `/v1/keys/${FUZZ_KEY}/sign`,
          headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
          payload: body,
        });
        // 503 is the one 5xx expected: the configured issuer (.invalid) cannot be fetched, and that fails closed.
        const problem =
          response.statusCode === 503
            ? response.json().error?.code === 'IDENTITY_PROVIDER_UNAVAILABLE'
              ? undefined
              : response.body.slice(0, 200)
            : responseProblem(response);
        if (problem) throw new Error(`${bearer.slice(0, 200)}: ${problem}`);
        if (response.statusCode !== 401 && response.statusCode !== 503)
          throw new Error(`${bearer.slice(0, 200)}: ${response.statusCode} ${response.body.slice(0, 200)}`);
        if (fuzz.signAttempts() !== before) throw new Error(`${bearer.slice(0, 200)}: C_Sign called`);
      }),
      fuzzParameters(),
    );
    expect(details.failed ? String(details.errorInstance) : undefined).toBeUndefined();
  });

  it('answers a JSON body over the configured limit with 413 PAYLOAD_TOO_LARGE on every route that takes a body', async () => {
    const limit = fuzz.t.config.bodyLimitBytes;
    const failures: string[] = [];
    for (const route of routes.filter((r) => BODY_METHODS.has(r.method))) {
      const before = fuzz.signAttempts();
      const response = await fuzz.t.app.inject({
        method: route.method as 'POST',
        url: fill(route, validParams(route)),
        headers: { authorization: `Bearer ${fuzz.tokens.admin}`, 'content-type': 'application/json' },
        payload: JSON.stringify({ name: 'x'.repeat(limit + 1) }),
      });
      if (response.statusCode !== 413 || response.json().error?.code !== 'PAYLOAD_TOO_LARGE')
        failures.push(`${route.method} ${route.url}: ${response.statusCode} ${response.body.slice(0, 200)}`);
      if (fuzz.signAttempts() !== before) failures.push(`${route.method} ${route.url}: C_Sign called for a 413`);
    }
    expect(failures).toEqual([]);
  });
});
