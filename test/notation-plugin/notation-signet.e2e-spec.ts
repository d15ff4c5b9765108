import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KEY_SPEC_INFO, KEY_SPECS, KeySpec } from '../../src/pki/key-spec';
import { PROJECT_ROOT, tempDir } from '../support/server-process';
import {
  PluginResult,
  buildPlugin,
  generateSignatureRequest,
  jwsSigningInput,
  opensslVerifies,
  runPlugin as runPluginProcess,
} from './support/notation-driver';
import { IssuedKey, createPki } from './support/openssl-pki';
import { SignetDouble, signetError } from './support/signet-double';

/**
 * The built notation-signet driven exactly as Notation drives it (command argument, JSON on stdin,
 * exit code, JSON on stdout or stderr), against a TEST DOUBLE of Signet's key and sign endpoints
 * (support/signet-double.ts) that signs for real with OpenSSL-issued chains. The real signing API
 * is being built in parallel; the end-to-end test against the real server comes with it.
 * Signatures are verified with the OpenSSL CLI, not with the plugin's own code.
 */
const KEY_NAMES: Record<KeySpec, string> = {
  'EC-256': 'release',
  'EC-384': 'release-p384',
  'EC-521': 'release-p521',
  'RSA-2048': 'legacy-rsa2048',
  'RSA-3072': 'release-rsa3072',
  'RSA-4096': 'archive-rsa4096',
};

describe('notation-signet (Notation plugin executable)', () => {
  const token = `sgt_${crypto.randomBytes(24).toString('hex')}`;
  const outputs: string[] = []; // every byte the plugin printed, for the token check at the end
  let dir: string;
  let tokenFile: string;
  let keys: Map<string, IssuedKey>;
  let impostor: IssuedKey;
  let signet: SignetDouble;
  let config: Record<string, string>;

  const runPlugin = async (...args: Parameters<typeof runPluginProcess>): Promise<PluginResult> => {
    const result = await runPluginProcess(...args);
    outputs.push(result.stdout, result.stderr);
    return result;
  };
  const expectFailure = (result: PluginResult, errorCode: string) => {
    expect({ code: result.code, stdout: result.stdout, errorCode: result.json.errorCode }).toEqual({
      code: 1,
      stdout: '',
      errorCode,
    });
    expect(typeof result.json.errorMessage).toBe('string');
  };
  const sign = (spec: KeySpec, pluginConfig = config, keyId = KEY_NAMES[spec]) =>
    runPlugin(
      'generate-signature',
      generateSignatureRequest(spec, keyId, pluginConfig, jwsSigningInput(spec).signingInput),
    );

  beforeAll(async () => {
    buildPlugin();
    dir = tempDir('notation-signet-');
    const pki = createPki(path.join(dir, 'pki'));
    keys = new Map(KEY_SPECS.map((spec) => [KEY_NAMES[spec], pki.issue(KEY_NAMES[spec], spec)]));
    impostor = pki.issue('impostor', 'EC-256');
    tokenFile = path.join(dir, 'signet-token');
    fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    signet = new SignetDouble(keys, token);
    config = { url: await signet.start(), token_file: tokenFile };
  });
  afterAll(async () => {
    await signet?.stop();
  });
  beforeEach(() => signet.reset());

  describe('get-plugin-metadata', () => {
    it('answers the static metadata Notation validates, without calling Signet', async () => {
      // notation-go sends the key's merged pluginConfig with this command too.
      const result = await runPlugin('get-plugin-metadata', { pluginConfig: config });
      const { version } = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
        version: string;
      };
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.json).toEqual({
        name: 'signet',
        description: expect.stringMatching(/\S/),
        version,
        url: expect.stringMatching(/^https:\/\//),
        supportedContractVersions: ['1.0'],
        capabilities: ['SIGNATURE_GENERATOR.RAW'],
      });
      expect(signet.requests).toHaveLength(0);
    });

    it('answers with an empty request too (a person running it by hand)', async () => {
      const result = await runPlugin('get-plugin-metadata', '');
      expect(result.code).toBe(0);
      expect(result.json.name).toBe('signet');
    });
  });

  describe('describe-key', () => {
    it.each(KEY_SPECS)('returns the keySpec Signet reports for a %s key, with the same keyId', async (spec) => {
      const result = await runPlugin('describe-key', {
        contractVersion: '1.0',
        keyId: KEY_NAMES[spec],
        pluginConfig: config,
      });
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.json).toEqual({ keyId: KEY_NAMES[spec], keySpec: spec });
      expect(signet.requests).toEqual([
        { method: 'GET', path: `/v1/keys/${KEY_NAMES[spec]}`, authorization: `Bearer ${token}` },
      ]);
    });

    it('reports ACCESS_DENIED for a key Signet does not show this token (404)', async () => {
      const result = await runPlugin('describe-key', {
        contractVersion: '1.0',
        keyId: 'someone-elses-key',
        pluginConfig: config,
      });
      expectFailure(result, 'ACCESS_DENIED');
      expect(result.json.errorMessage).toContain('NOT_FOUND');
    });
  });

  describe('generate-signature', () => {
    it.each(KEY_SPECS)(
      'signs a Notary JWS signing input with a %s key; OpenSSL verifies it with the leaf of the returned chain',
      async (spec) => {
        const { signingInput, digest, size } = jwsSigningInput(spec);
        const request = generateSignatureRequest(spec, KEY_NAMES[spec], config, signingInput);
        const result = await runPlugin('generate-signature', request);

        expect(result.code).toBe(0);
        expect(result.stderr).toBe('');
        const info = KEY_SPEC_INFO[spec];
        expect(result.json).toEqual({
          keyId: KEY_NAMES[spec],
          signature: expect.any(String),
          signingAlgorithm: info.signingAlgorithm,
          certificateChain: keys.get(KEY_NAMES[spec])!.chain.map((der) => der.toString('base64')),
        });
        const signature = Buffer.from(result.json.signature as string, 'base64');
        if (info.kind === 'EC') expect(signature).toHaveLength(info.rawSignatureLength!);
        const leaf = (result.json.certificateChain as string[])[0];
        const signed = Buffer.from(signingInput, 'latin1');
        expect(
          opensslVerifies(path.join(dir, `verify-${spec}`), spec, signed, result.json.signature as string, leaf),
        ).toBe(true);
        // …and OpenSSL is not rubber-stamping: the same signature over a changed payload fails.
        const tampered = Buffer.from(
          signingInput.replace(/\.(.)/, (_, c: string) => `.${c === 'e' ? 'f' : 'e'}`),
          'latin1',
        );
        expect(
          opensslVerifies(
            path.join(dir, `verify-${spec}-tampered`),
            spec,
            tampered,
            result.json.signature as string,
            leaf,
          ),
        ).toBe(false);

        // Payload mode: Signet received the signing input itself, exactly as Notation sent it.
        expect(signet.requests).toHaveLength(1);
        expect(signet.requests[0]).toEqual({
          method: 'POST',
          path: `/v1/keys/${KEY_NAMES[spec]}/sign`,
          authorization: `Bearer ${token}`,
          body: { payload: request.payload, hashAlgorithm: info.hash, signatureFormat: 'raw' },
        });
        expect(signet.signedArtifacts).toEqual([
          expect.objectContaining({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size }),
        ]);
      },
    );

    it('reads the token from the variable named by token_env', async () => {
      const result = await runPlugin(
        'generate-signature',
        generateSignatureRequest(
          'EC-256',
          'release',
          { url: signet.url, token_env: 'SIGNET_TOKEN' },
          jwsSigningInput('EC-256').signingInput,
        ),
        { env: { SIGNET_TOKEN: token } },
      );
      expect(result.code).toBe(0);
      expect(signet.requests[0].authorization).toBe(`Bearer ${token}`);
    });

    it('talks https to a Signet whose certificate comes from a private CA named by ca_file', async () => {
      const pki = createPki(path.join(dir, 'tls'));
      const tls = pki.tlsServer();
      const secure = new SignetDouble(keys, token, tls);
      try {
        const url = await secure.start();
        const ok = await sign('EC-384', { url, token_file: tokenFile, ca_file: tls.caFile });
        expect(ok.code).toBe(0);
        expect(secure.requests).toHaveLength(1);

        const untrusted = await sign('EC-384', { url, token_file: tokenFile });
        expectFailure(untrusted, 'ERROR');
        expect(untrusted.json.errorMessage).toMatch(/TLS verification .* failed .*ca_file/);
        expect(secure.requests).toHaveLength(1); // the token never went to a server it could not authenticate
      } finally {
        await secure.stop();
      }
    });
  });

  describe('request errors (nothing reaches Signet)', () => {
    it('refuses a contract version other than 1.0 with UNSUPPORTED_CONTRACT_VERSION', async () => {
      const request = {
        ...generateSignatureRequest('EC-256', 'release', config, jwsSigningInput('EC-256').signingInput),
        contractVersion: '2.0',
      };
      expectFailure(await runPlugin('generate-signature', request), 'UNSUPPORTED_CONTRACT_VERSION');
      expectFailure(
        await runPlugin('describe-key', { contractVersion: '1.1', keyId: 'release', pluginConfig: config }),
        'UNSUPPORTED_CONTRACT_VERSION',
      );
      expect(signet.requests).toHaveLength(0);
    });

    it.each([
      ['not JSON', '{"contractVersion": "1.0", "keyId": '],
      ['a JSON array', '[]'],
      ['empty', ''],
    ])('answers VALIDATION_ERROR when stdin is %s', async (_, stdin) => {
      expectFailure(await runPlugin('generate-signature', stdin), 'VALIDATION_ERROR');
    });

    it.each([[['sign']], [[]], [['describe-key', 'extra']]])(
      'answers VALIDATION_ERROR for the command line %j',
      async (args) => {
        const result = await runPlugin(args, { contractVersion: '1.0', keyId: 'release', pluginConfig: config });
        expectFailure(result, 'VALIDATION_ERROR');
        expect(result.json.errorMessage).toContain('get-plugin-metadata|describe-key|generate-signature');
      },
    );

    it('refuses a hashAlgorithm that does not pair with the keySpec, and an unknown keySpec', async () => {
      const base = generateSignatureRequest('EC-384', 'release-p384', config, jwsSigningInput('EC-384').signingInput);
      const mismatched = await runPlugin('generate-signature', { ...base, hashAlgorithm: 'SHA-256' });
      expectFailure(mismatched, 'VALIDATION_ERROR');
      expect(mismatched.json.errorMessage).toContain('SHA-384');
      expectFailure(await runPlugin('generate-signature', { ...base, keySpec: 'EC-192' }), 'VALIDATION_ERROR');
      expectFailure(
        await runPlugin('generate-signature', { ...base, keySpec: 'RSA-3072', hashAlgorithm: 'SHA-512' }),
        'VALIDATION_ERROR',
      );
      expect(signet.requests).toHaveLength(0);
    });

    it('refuses a payload that is not base64 and a request without keyId', async () => {
      const base = generateSignatureRequest('EC-256', 'release', config, jwsSigningInput('EC-256').signingInput);
      expectFailure(
        await runPlugin('generate-signature', { ...base, payload: 'eyJhbGciOiJFUzI1NiJ9.e30' }),
        'VALIDATION_ERROR',
      );
      expectFailure(await runPlugin('generate-signature', { ...base, keyId: '' }), 'VALIDATION_ERROR');
      expect(signet.requests).toHaveLength(0);
    });

    it.each<[string, Record<string, string>, RegExp]>([
      ['no url', { token_file: 'TOKEN_FILE' }, /'url' is required/],
      ['no token setting', { url: 'SIGNET_URL' }, /exactly one of 'token_file'.*'token_env'/],
      [
        'both token settings',
        { url: 'SIGNET_URL', token_file: 'TOKEN_FILE', token_env: 'SIGNET_TOKEN' },
        /exactly one/,
      ],
      [
        'a token_file that does not exist',
        { url: 'SIGNET_URL', token_file: '/nonexistent/signet-token' },
        /cannot read token_file '\/nonexistent\/signet-token' \(ENOENT\)/,
      ],
      [
        'a token_file that is a directory',
        { url: 'SIGNET_URL', token_file: '/tmp' },
        /cannot read token_file '\/tmp' \(EISDIR\)/,
      ],
      ['an unset token_env', { url: 'SIGNET_URL', token_env: 'NO_SUCH_VARIABLE' }, /'NO_SUCH_VARIABLE'.*not set/],
      [
        'plain http to a non-loopback host',
        { url: 'http://signet.example.com', token_file: 'TOKEN_FILE' },
        /refusing plain http:\/\/ to non-loopback host 'signet\.example\.com'/,
      ],
      [
        'a misspelt key',
        { url: 'SIGNET_URL', token_file: 'TOKEN_FILE', cafile: '/etc/ssl/ca.pem' },
        /unknown key 'cafile'/,
      ],
      [
        'ca_file on an http url',
        { url: 'SIGNET_URL', token_file: 'TOKEN_FILE', ca_file: '/etc/hosts' },
        /'ca_file' only applies to an https:\/\/ url/,
      ],
    ])('answers VALIDATION_ERROR for pluginConfig with %s', async (_, template, message) => {
      const pluginConfig = Object.fromEntries(
        Object.entries(template).map(([key, value]) => [
          key,
          value === 'SIGNET_URL' ? signet.url : value === 'TOKEN_FILE' ? tokenFile : value,
        ]),
      );
      const result = await sign('EC-256', pluginConfig);
      expectFailure(result, 'VALIDATION_ERROR');
      expect(result.json.errorMessage).toMatch(message);
      expect(signet.requests).toHaveLength(0);
    });

    it('lets insecure=true lift the plain-http refusal (then fails only on reaching the host)', async () => {
      // 192.0.2.1 is TEST-NET-1: routable nowhere, so the attempt ends in a connect timeout or a network error.
      const result = await sign('EC-256', {
        url: 'http://192.0.2.1:8080',
        token_file: tokenFile,
        insecure: 'true',
        timeout_ms: '300',
      });
      expect(result.code).toBe(1);
      expect(['TIMEOUT', 'ERROR']).toContain(result.json.errorCode);
      expect(result.json.errorMessage).toContain('http://192.0.2.1:8080');
    });
  });

  describe('Signet refusals and failures', () => {
    it('maps a bad token (401) to ACCESS_DENIED', async () => {
      fs.writeFileSync(path.join(dir, 'wrong-token'), 'sgt_not-the-token');
      const result = await sign('EC-256', { url: signet.url, token_file: path.join(dir, 'wrong-token') });
      expectFailure(result, 'ACCESS_DENIED');
      expect(result.json.errorMessage).toContain('HTTP 401');
      expect(result.json.errorMetadata).toEqual({ httpStatus: '401', signetErrorCode: 'UNAUTHENTICATED' });
    });

    it('maps 403 and 404 to ACCESS_DENIED', async () => {
      signet.override = () => ({ status: 403, body: signetError('FORBIDDEN', 'role auditor cannot sign') });
      const forbidden = await sign('EC-256');
      expectFailure(forbidden, 'ACCESS_DENIED');
      expect(forbidden.json.errorMessage).toContain('FORBIDDEN: role auditor cannot sign');
      signet.override = undefined;
      expectFailure(await sign('EC-256', config, 'no-such-key'), 'ACCESS_DENIED');
    });

    it("maps 409 to VALIDATION_ERROR and passes on Signet's code and message", async () => {
      signet.override = () => ({
        status: 409,
        body: signetError('PROMOTION_REQUIRED', "key 'release' signs only artifacts already signed by 'qa'"),
      });
      const result = await sign('EC-256');
      expectFailure(result, 'VALIDATION_ERROR');
      expect(result.json.errorMessage).toContain(
        "HTTP 409: PROMOTION_REQUIRED: key 'release' signs only artifacts already signed by 'qa'",
      );
      expect(result.json.errorMetadata).toEqual({ httpStatus: '409', signetErrorCode: 'PROMOTION_REQUIRED' });
    });

    it('maps 400 and 413 to VALIDATION_ERROR', async () => {
      for (const [status, code] of [
        [400, 'INVALID_BASE64'],
        [413, 'PAYLOAD_TOO_LARGE'],
      ] as const) {
        signet.override = () => ({ status, body: signetError(code, 'refused') });
        const result = await sign('EC-256');
        expectFailure(result, 'VALIDATION_ERROR');
        expect(result.json.errorMetadata).toEqual({ httpStatus: String(status), signetErrorCode: code });
      }
    });

    it('maps 429 to THROTTLED with Retry-After in errorMetadata', async () => {
      signet.override = () => ({
        status: 429,
        body: signetError('RATE_LIMITED', 'too many signing requests'),
        headers: { 'retry-after': '7' },
      });
      const result = await sign('EC-256');
      expectFailure(result, 'THROTTLED');
      expect(result.json.errorMetadata).toEqual({
        httpStatus: '429',
        signetErrorCode: 'RATE_LIMITED',
        retryAfter: '7',
      });
      expect(result.json.errorMessage).toContain('retry after 7 s');
    });

    it('maps 500 and 503 to ERROR, also when the body is not JSON', async () => {
      signet.override = () => ({ status: 500, body: signetError('INTERNAL', 'internal error') });
      expectFailure(await sign('EC-256'), 'ERROR');
      signet.override = () => ({ status: 503, body: '<html>bad gateway</html>' });
      const result = await sign('EC-256');
      expectFailure(result, 'ERROR');
      expect(result.json.errorMetadata).toEqual({ httpStatus: '503' });
    });

    it('answers TIMEOUT when Signet never answers within timeout_ms', async () => {
      signet.override = () => 'hang';
      const started = Date.now();
      const result = await sign('EC-256', { ...config, timeout_ms: '300' });
      expectFailure(result, 'TIMEOUT');
      expect(result.json.errorMessage).toContain('did not answer within 300 ms');
      expect(Date.now() - started).toBeLessThan(20_000); // it gave up on its own; no wall-clock precision claimed
    });

    it('answers ERROR when nothing listens at the url', async () => {
      const closed = new SignetDouble(keys, token);
      const url = await closed.start();
      await closed.stop();
      const result = await sign('EC-256', { url, token_file: tokenFile });
      expectFailure(result, 'ERROR');
      expect(result.json.errorMessage).toContain('ECONNREFUSED');
    });
  });

  describe('checks on what Signet returned (what Notation would reject)', () => {
    const tamper = (change: (answer: Record<string, unknown>) => void) => {
      // Sign for real with the right key, then alter the answer.
      signet.override = (request) => {
        if (request.method !== 'POST') return undefined;
        const info = KEY_SPEC_INFO['EC-256'];
        const payload = Buffer.from(String(request.body!.payload), 'base64');
        const answer: Record<string, unknown> = {
          keyName: 'release',
          keyVersion: 1,
          keySpec: 'EC-256',
          signingAlgorithm: info.signingAlgorithm,
          signature: crypto
            .sign('sha256', payload, { key: keys.get('release')!.privateKey, dsaEncoding: 'ieee-p1363' })
            .toString('base64'),
          certificateChain: keys.get('release')!.chain.map((der) => der.toString('base64')),
        };
        change(answer);
        return { status: 200, body: answer };
      };
    };

    it.each<[string, (answer: Record<string, unknown>) => void, RegExp]>([
      [
        'a signature by another key',
        (a) =>
          (a.signature = crypto
            .sign('sha256', Buffer.from('x'), { key: impostor.privateKey, dsaEncoding: 'ieee-p1363' })
            .toString('base64')),
        /does not verify against the leaf/,
      ],
      [
        'a DER-encoded ECDSA signature',
        (a) =>
          (a.signature = crypto.sign('sha256', Buffer.from('x'), keys.get('release')!.privateKey).toString('base64')),
        /raw r\|\|s is 64 bytes/,
      ],
      ['the wrong signingAlgorithm', (a) => (a.signingAlgorithm = 'ECDSA-SHA-384'), /requires ECDSA-SHA-256/],
      ['an empty certificateChain', (a) => (a.certificateChain = []), /no certificateChain/],
      [
        'a chain whose leaf holds another key',
        (a) => (a.certificateChain = impostor.chain.map((d) => d.toString('base64'))),
        /does not verify against the leaf/,
      ],
      [
        'a chain ordered root first',
        (a) => (a.certificateChain = [...(a.certificateChain as string[])].reverse()),
        /holds a EC secp384r1 key, not EC-256/,
      ],
      [
        'a chain without its root',
        (a) => (a.certificateChain = (a.certificateChain as string[]).slice(0, 2)),
        /must end with a self-signed root/,
      ],
      [
        'a key of another spec',
        (a) => (a.keySpec = 'EC-384'),
        /signed with a EC-384 key but Notation asked for EC-256/,
      ],
    ])('answers ERROR for %s', async (_, change, message) => {
      tamper(change);
      const result = await sign('EC-256');
      expectFailure(result, 'ERROR');
      expect(result.json.errorMessage).toMatch(message);
    });
  });

  describe('installed as Notation installs it', () => {
    it('works as the single-file build, a regular 755 file in {config}/plugins/signet/ with no dist tree beside it', async () => {
      const pluginDir = path.join(dir, 'notation-config', 'plugins', 'signet');
      const executable = path.join(pluginDir, 'notation-signet');
      // The compiled builder, as the proposed `npm run build` step runs it.
      execFileSync(process.execPath, [
        path.join(PROJECT_ROOT, 'dist', 'src', 'notation-plugin', 'standalone.js'),
        executable,
      ]);

      const stat = fs.lstatSync(executable);
      expect(stat.isFile()).toBe(true);
      expect(stat.mode & 0o777).toBe(0o755);
      expect(fs.readdirSync(pluginDir)).toEqual(['notation-signet']);

      const metadata = await runPlugin('get-plugin-metadata', {}, { executable });
      expect(metadata.code).toBe(0);
      expect(metadata.json.name).toBe('signet');
      const { signingInput } = jwsSigningInput('RSA-3072');
      const result = await runPlugin(
        'generate-signature',
        generateSignatureRequest('RSA-3072', KEY_NAMES['RSA-3072'], config, signingInput),
        { executable },
      );
      expect(result.code).toBe(0);
      const chain = result.json.certificateChain as string[];
      expect(
        opensslVerifies(
          path.join(dir, 'verify-standalone'),
          'RSA-3072',
          Buffer.from(signingInput, 'latin1'),
          result.json.signature as string,
          chain[0],
        ),
      ).toBe(true);
    });
  });

  describe('the token', () => {
    it('is redacted even when Signet echoes it in an error message', async () => {
      signet.override = (request) => ({
        status: 400,
        body: signetError('BAD_REQUEST', `rejected ${request.authorization}`),
      });
      const result = await sign('EC-256');
      expectFailure(result, 'VALIDATION_ERROR');
      expect(result.json.errorMessage).toContain('rejected Bearer [redacted]');
    });

    it('never appeared in anything the plugin printed in this file', () => {
      expect(outputs.length).toBeGreaterThan(50);
      expect(outputs.filter((text) => text.includes(token))).toEqual([]);
    });
  });
});
