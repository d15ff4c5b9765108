import { Writable } from 'node:stream';
import { createLogger, PinoNestLogger, scrubText } from './logger';

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
    logger.info({ req: { headers: { authorization: 'Bearer sgt_abc' } }, pin: '1234', target: { credentials: { password: 'pw' }, token: 't' } }, 'x');
    const text = lines.join('');
    expect(text).not.toContain('sgt_abc');
    expect(text).not.toContain('1234');
    expect(text).not.toMatch(/"pw"|"t"/);
    expect(text).toContain('[redacted]');
  });

  it('scrubs bearer tokens, Signet tokens, private keys and URL passwords from free text', () => {
    const text = scrubText('auth Bearer abc.def token sgt_XYZ123 url postgres://u:secret@db/x -----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----');
    expect(text).not.toMatch(/abc\.def|XYZ123|secret|AAA/);
  });

  it('scrubs secrets in messages logged through the Nest adapter', () => {
    const { lines, logger } = capture();
    new PinoNestLogger(logger).error(new Error('login failed for postgres://signet:hunter2@127.0.0.1/signet'));
    expect(lines.join('')).not.toContain('hunter2');
  });
});
