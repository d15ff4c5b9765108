import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { PluginError } from './protocol';
import { SignetClient, errorCodeForStatus } from './signet-client';

describe(SignetClient.name, () => {
  let server: http.Server;
  let origin: string;
  const seen: { method?: string; url?: string; headers: http.IncomingHttpHeaders }[] = [];
  let answer: (res: http.ServerResponse) => void;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, headers: req.headers });
      req.resume();
      req.on('end', () => answer(res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    seen.length = 0;
    answer = (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"keySpec":"EC-256"}');
  });

  const client = (base = origin) =>
    new SignetClient({ baseUrl: new URL(base), token: 'sgt_x', timeoutMs: 5000 }, 'notation-signet/test');

  it('keeps a path prefix of the base url and encodes the key name', async () => {
    await client(`${origin}/signet/`).getKey('team/app', 'describe-key');
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/signet/v1/keys/team%2Fapp' });
    expect(seen[0].headers).toMatchObject({ authorization: 'Bearer sgt_x', 'user-agent': 'notation-signet/test' });
  });

  it('posts the sign body as JSON', async () => {
    const response = await client().sign(
      'release',
      { payload: 'YQ==', hashAlgorithm: 'SHA-256', signatureFormat: 'raw' },
      'generate-signature',
    );
    expect(response).toEqual({ status: 200, body: { keySpec: 'EC-256' } });
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/v1/keys/release/sign' });
    expect(seen[0].headers['content-type']).toBe('application/json');
  });

  it('does not follow a redirect (it would carry the token elsewhere)', async () => {
    answer = (res) => res.writeHead(302, { location: 'http://elsewhere.example/' }).end();
    await expect(client().getKey('release', 'describe-key')).rejects.toMatchObject({
      code: 'ERROR',
      message: expect.stringContaining('HTTP 302'),
    });
    expect(seen).toHaveLength(1);
  });

  it('refuses a 200 without a JSON body', async () => {
    answer = (res) => res.writeHead(200).end('ok');
    await expect(client().getKey('release', 'describe-key')).rejects.toBeInstanceOf(PluginError);
  });

  it.each([
    [
      401,
      '{"error":{"code":"UNAUTHENTICATED","message":"invalid token"}}',
      "answered HTTP 401: UNAUTHENTICATED: invalid token (the token from token_file '/etc/signet/ci.token' was refused: it is unknown, expired or revoked",
    ],
    [
      403,
      '{"error":{"code":"FORBIDDEN","message":"role auditor may not sign"}}',
      "(the token from token_file '/etc/signet/ci.token' may not sign: a signer token granted the key is needed)",
    ],
    [
      404,
      '{"error":{"code":"NOT_FOUND","message":"no key named \'release\'"}}',
      "(no key 'release' that the token from token_file '/etc/signet/ci.token' may use: either it does not exist or the token is not granted it",
    ],
  ])('says what to do about HTTP %d, naming the token setting (never the token)', async (status, body, expected) => {
    answer = (res) => res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    const withSource = new SignetClient(
      { baseUrl: new URL(origin), token: 'sgt_x', tokenSource: "token_file '/etc/signet/ci.token'", timeoutMs: 5000 },
      'notation-signet/test',
    );
    const error = (await withSource.getKey('release', 'describe-key').catch((e: unknown) => e)) as PluginError;
    expect(error).toBeInstanceOf(PluginError);
    expect(error.code).toBe('ACCESS_DENIED');
    expect(error.message).toContain(expected);
    expect(error.message).not.toContain('sgt_x');
  });

  it.each([
    [400, 'VALIDATION_ERROR'],
    [401, 'ACCESS_DENIED'],
    [403, 'ACCESS_DENIED'],
    [404, 'ACCESS_DENIED'],
    [409, 'VALIDATION_ERROR'],
    [413, 'VALIDATION_ERROR'],
    [429, 'THROTTLED'],
    [500, 'ERROR'],
    [502, 'ERROR'],
    [503, 'ERROR'],
    [504, 'TIMEOUT'],
    [302, 'ERROR'],
  ])('maps HTTP %d to %s', (status, code) => {
    expect(errorCodeForStatus(status)).toBe(code);
  });
});
