import { Writable } from 'node:stream';
import { createLogger, PinoNestLogger, scrubText, scrubUrl } from './logger';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, logger: createLogger('debug', stream) };
}

describe('logger redaction', () => {
  it('censors Authorization headers, PINs, tokens and credentials in structured fields', () => {
    const { lines, logger } = capture();
    logger.info(
      {
        req: { headers: { authorization: 'Bearer sgt_abc' } },
        pin: '1234',
        target: { credentials: { password: 'pw' }, token: 't' },
      },
      'x',
    );
    const text = lines.join('');
    expect(text).not.toContain('sgt_abc');
    expect(text).not.toContain('1234');
    expect(text).not.toMatch(/"pw"|"t"/);
    expect(text).toContain('[redacted]');
  });

  it('scrubs bearer tokens, Signet tokens, private keys and URL passwords from free text', () => {
    const text = scrubText(
      'auth Bearer abc.def token sgt_XYZ123 url postgres://u:secret@db/x -----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----',
    );
    expect(text).not.toMatch(/abc\.def|XYZ123|secret|AAA/);
  });

  it('scrubs secrets in messages logged through the Nest adapter', () => {
    const { lines, logger } = capture();
    new PinoNestLogger(logger).error(new Error('login failed for postgres://signet:hunter2@127.0.0.1/signet'));
    expect(lines.join('')).not.toContain('hunter2');
  });

  it('scrubs secret-named query parameters and token-shaped values from URLs, keeping the rest', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2lnbmF0dXJl';
    const url = scrubUrl(
      `/v1/keys?access_token=sgt_${'A'.repeat(43)}&ID_Token=${jwt}&code=abc123&password=hunter2&secret=s3&token=t0k&access%5Ftoken=enc&x=sgt%5F${'B'.repeat(43)}&y=${encodeURIComponent(jwt)}&limit=5`,
    );
    expect(url).toBe(
      '/v1/keys?access_token=[redacted]&ID_Token=[redacted]&code=[redacted]&password=[redacted]&secret=[redacted]&token=[redacted]&access%5Ftoken=[redacted]&[redacted]&[redacted]&limit=5',
    );
    expect(scrubUrl(`/v1/keys/sgt_${'C'.repeat(43)}/sign`)).toBe('/v1/keys/sgt_[redacted]/sign');
    expect(scrubUrl('/v1/certificates?key=release')).toBe('/v1/certificates?key=release');
    expect(scrubText(`GET https://idp/cb?state=1&code=xyz&id_token=${jwt} failed`)).toBe(
      'GET https://idp/cb?state=1&code=[redacted]&id_token=[redacted] failed',
    );
    expect(scrubText(`token ${jwt} rejected`)).toBe('token [redacted jwt] rejected');
  });

  it('writes request log lines with the scrubbed URL (the serializer Fastify uses for req)', () => {
    const { lines, logger } = capture();
    logger.info(
      { req: { method: 'GET', url: '/v1/cas?access_token=sgt_secretsecret&limit=1', headers: {}, ip: '10.0.0.1' } },
      'incoming request',
    );
    const line = JSON.parse(lines.join(''));
    expect(line.req).toEqual({
      method: 'GET',
      url: '/v1/cas?access_token=[redacted]&limit=1',
      remoteAddress: '10.0.0.1',
    });
  });
});
