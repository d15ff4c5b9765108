import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_TIMEOUT_MS, isLoopback, readConnection } from './plugin-config';
import { PluginError } from './protocol';

describe('plugin-config', () => {
  let dir: string;
  let tokenFile: string;
  const token = 'sgt_unit_0123456789abcdef';

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-plugin-config-'));
    tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `  ${token}\r\n`);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const failure = (fn: () => unknown): PluginError => {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(PluginError);
      return error as PluginError;
    }
    throw new Error('expected a PluginError');
  };

  describe(isLoopback.name, () => {
    it.each(['127.0.0.1', '127.8.9.10', 'localhost', 'LocalHost', '[::1]', '::1'])('treats %s as loopback', (host) => {
      expect(isLoopback(host)).toBe(true);
    });
    it.each([
      '128.0.0.1',
      '10.0.0.1',
      '0.0.0.0',
      'localhost.example.com',
      '[::2]',
      '[fe80::1]',
      'signet',
      '127.0.0.1.nip.io',
    ])('does not treat %s as loopback', (host) => {
      expect(isLoopback(host)).toBe(false);
    });
  });

  describe(readConnection.name, () => {
    it('reads url, a trimmed token from token_file, and the default timeout', () => {
      const connection = readConnection({ url: 'https://signet.example.com', token_file: tokenFile }, {});
      expect(connection.baseUrl.href).toBe('https://signet.example.com/');
      expect(connection.token).toBe(token);
      expect(connection.ca).toBeUndefined();
      expect(connection.timeoutMs).toBe(DEFAULT_TIMEOUT_MS);
    });

    it('reads the token from the variable token_env names', () => {
      expect(readConnection({ url: 'https://signet.example.com', token_env: 'T' }, { T: token }).token).toBe(token);
    });

    it('expands a leading ~/ in token_file (the shell does not, after key=)', () => {
      const home = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-home-'));
      fs.writeFileSync(path.join(home, '.signet-token'), token);
      try {
        expect(readConnection({ url: 'https://s.example', token_file: '~/.signet-token' }, { HOME: home }).token).toBe(
          token,
        );
      } finally {
        fs.rmSync(home, { recursive: true, force: true });
      }
    });

    it.each(['http://127.0.0.1:8443', 'http://localhost:8443/signet', 'http://[::1]:8443'])(
      'allows plain http to loopback: %s',
      (url) => {
        expect(readConnection({ url, token_file: tokenFile }, {}).baseUrl.protocol).toBe('http:');
      },
    );

    it('allows plain http to another host only with insecure=true', () => {
      expect(failure(() => readConnection({ url: 'http://10.1.2.3', token_file: tokenFile }, {})).message).toMatch(
        /refusing plain http/,
      );
      expect(
        readConnection({ url: 'http://10.1.2.3', token_file: tokenFile, insecure: 'true' }, {}).baseUrl.hostname,
      ).toBe('10.1.2.3');
      expect(
        failure(() => readConnection({ url: 'http://10.1.2.3', token_file: tokenFile, insecure: 'false' }, {})).code,
      ).toBe('VALIDATION_ERROR');
      expect(
        failure(() => readConnection({ url: 'http://10.1.2.3', token_file: tokenFile, insecure: 'yes' }, {})).message,
      ).toMatch(/'insecure' must be 'true' or 'false'/);
    });

    it.each([
      ['ftp://signet.example.com', /must be https:\/\//],
      ['signet.example.com', /not a valid URL/],
      ['https://user:pw@signet.example.com', /must not carry credentials/],
      ['https://signet.example.com/?x=1', /query or fragment/],
    ])('refuses the url %s', (url, message) => {
      const error = failure(() => readConnection({ url, token_file: tokenFile }, {}));
      expect(error.code).toBe('VALIDATION_ERROR');
      expect(error.message).toMatch(message);
    });

    it.each(['0', '-5', '1.5', 'soon', '600001'])('refuses timeout_ms=%s', (value) => {
      expect(
        failure(() => readConnection({ url: 'https://s.example', token_file: tokenFile, timeout_ms: value }, {}))
          .message,
      ).toMatch(/timeout_ms/);
    });

    it('refuses a token with inner whitespace without echoing it', () => {
      const file = path.join(dir, 'two-tokens');
      fs.writeFileSync(file, 'sgt_first sgt_second');
      const error = failure(() => readConnection({ url: 'https://s.example', token_file: file }, {}));
      expect(error.message).toMatch(/spaces or non-printable/);
      expect(error.message).not.toContain('sgt_');
    });

    it('refuses an empty token file', () => {
      const file = path.join(dir, 'empty');
      fs.writeFileSync(file, '\n');
      expect(failure(() => readConnection({ url: 'https://s.example', token_file: file }, {})).message).toMatch(
        /is empty/,
      );
    });

    it('reads ca_file, and refuses one holding no certificate', () => {
      const ca = path.join(dir, 'ca.pem');
      fs.writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
      expect(
        readConnection({ url: 'https://s.example', token_file: tokenFile, ca_file: ca }, {}).ca?.toString(),
      ).toContain('BEGIN CERTIFICATE');
      expect(
        failure(() => readConnection({ url: 'https://s.example', token_file: tokenFile, ca_file: tokenFile }, {}))
          .message,
      ).toMatch(/holds no PEM certificate/);
    });
  });
});
