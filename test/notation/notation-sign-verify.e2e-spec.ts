import * as fs from 'node:fs';
import * as path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { TestRegistry } from '../support/registry';
import { freePort, ServerProcess } from '../support/server-process';
import {
  buildServerAndPlugin,
  createKey,
  describeWithNotation,
  expectSuccess,
  identityOf,
  InspectedSignature,
  notationBundle,
  NotationHome,
  pushImage,
  SignetApi,
  signerToken,
  startSignet,
  stopSignet,
  tsaRootPem,
} from './support/notation-kit';

/**
 * The real `notation` CLI, with notation-signet installed the way users install it, against one real
 * Signet server (embedded defaults) and one real docker-registry: plugin and key management, signing
 * in both envelope formats with three key specs, with and without Signet's RFC 3161 timestamps,
 * verification with nothing but Signet's `notation` bundle, promotion, and the errors a user meets.
 */
describeWithNotation("real Notation signs through notation-signet and verifies with Signet's bundle", (binary) => {
  let server: ServerProcess;
  let api: SignetApi;
  let dir: string;
  let registry: TestRegistry;
  let home: NotationHome;
  let plugin: string;
  let tokenFile: string;
  let token: string;
  let tsaRoot: string;
  /** image reference → key that signed it (one signature per image, so a verify proves that signature). */
  const signed: Array<{ ref: string; key: string; format: 'jws' | 'cose'; timestamp: boolean }> = [];

  const KEYS = [
    ['ec256', 'tier-ec256', 'EC-256'],
    ['ec384', 'tier-ec384', 'EC-384'],
    ['rsa3072', 'tier-rsa3072', 'RSA-3072'],
  ] as const;

  const notation = (args: string[], env: Record<string, string> = {}) => home.notation(args, env);
  const ok = expectSuccess;
  const image = (name: string) => pushImage(registry, 'team/app', name, dir);
  const timestampFlags = () => ['--timestamp-url', `${server.url}/tsa`, '--timestamp-root-cert', tsaRoot];

  beforeAll(async () => {
    plugin = buildServerAndPlugin();
    const started = await startSignet('notation-tier-');
    ({ server, api, dir } = started);
    registry = await TestRegistry.start();
    home = new NotationHome(binary);
    for (const [, name, spec] of KEYS) await createKey(api, name, spec);
    await createKey(api, 'tier-test', 'EC-256');
    await createKey(api, 'tier-prod', 'EC-256', { requires: ['tier-test'] });
    await createKey(api, 'tier-ungranted', 'EC-256');
    ({ token, file: tokenFile } = await signerToken(api, dir, 'pipeline', [
      ...KEYS.map(([, name]) => name),
      'tier-test',
      'tier-prod',
    ]));
    expect((await api('POST', '/v1/truststores', { name: 'tier', cas: ['signet-dev-root'] })).status).toBe(201);
    tsaRoot = await tsaRootPem(server.url, dir);
  }, 600_000);

  afterAll(async () => {
    await stopSignet(server);
    await registry?.dispose();
  });

  it(`${binary.version}: installs the single-file plugin with "plugin install --file" and lists it`, async () => {
    const installed = await notation(['plugin', 'install', '--file', plugin]);
    ok(installed);
    expect(installed.stdout).toMatch(/Successfully installed plugin signet, version \d+\.\d+\.\d+/);
    const file = path.join(home.notationDir, 'plugins', 'signet', 'notation-signet');
    expect(fs.lstatSync(file).isFile()).toBe(true); // a regular file, not a symlink
    const listed = await notation(['plugin', 'ls']);
    ok(listed);
    expect(listed.stdout).toMatch(/^signet\s+Signs with keys held in Signet.*\[SIGNATURE_GENERATOR\.RAW\]\s+<nil>/m);
  });

  it('adds keys that read the token from a file (token_file) and from an environment variable (token_env)', async () => {
    for (const [alias, name] of KEYS) {
      const source = alias === 'ec384' ? 'token_env=SIGNET_TOKEN' : `token_file=${tokenFile}`;
      ok(
        await notation([
          'key',
          'add',
          alias,
          '--plugin',
          'signet',
          '--id',
          name,
          '--plugin-config',
          `url=${server.url}`,
          '--plugin-config',
          source,
        ]),
      );
    }
    const listed = await notation(['key', 'ls']);
    ok(listed);
    for (const [alias, name] of KEYS)
      expect(listed.stdout).toMatch(new RegExp(`^${alias}\\s+${name}\\s+signet\\s*$`, 'm'));
    // Only the variable's name and the file's path are in Notation's configuration, never the token.
    expect(fs.readFileSync(path.join(home.notationDir, 'signingkeys.json'), 'utf8')).not.toContain(token);
  });

  it('signs JWS and COSE envelopes with EC-256, EC-384 and RSA-3072 keys, with and without a timestamp; ls and inspect show what Signet returned', async () => {
    const plan: Array<[alias: string, format: 'jws' | 'cose', timestamp: boolean]> = [
      ['ec256', 'jws', true],
      ['ec256', 'cose', false],
      ['ec384', 'jws', false],
      ['ec384', 'cose', true],
      ['rsa3072', 'jws', true],
      ['rsa3072', 'cose', true],
    ];
    for (const [alias, format, timestamp] of plan) {
      const key = KEYS.find(([a]) => a === alias)![1];
      const ref = await image(`${alias}-${format}-${timestamp ? 'ts' : 'plain'}`);
      const result = await notation(
        [
          'sign',
          '--insecure-registry',
          '--key',
          alias,
          '--signature-format',
          format,
          ...(timestamp ? timestampFlags() : []),
          ref,
        ],
        alias === 'ec384' ? { SIGNET_TOKEN: token } : {},
      );
      ok(result);
      expect(result.stdout).toContain(`Successfully signed ${ref}`);
      signed.push({ ref, key, format, timestamp });
    }

    for (const { ref, key, format, timestamp } of signed) {
      const listed = await notation(['ls', '--insecure-registry', ref]);
      ok(listed);
      expect(listed.stdout).toContain('application/vnd.cncf.notary.signature');
      expect(listed.stdout.match(/└── sha256:[0-9a-f]{64}|├── sha256:[0-9a-f]{64}/g)).toHaveLength(1);

      const inspected = await notation(['inspect', '--insecure-registry', '-o', 'json', ref]);
      ok(inspected);
      const [signature] = (JSON.parse(inspected.stdout) as { Signatures: InspectedSignature[] }).Signatures;
      expect(signature.mediaType).toBe(format === 'jws' ? 'application/jose+json' : 'application/cose');
      expect(signature.signedAttributes.signingScheme).toBe('notary.x509');
      expect(signature.unsignedAttributes.signingAgent).toMatch(/notation-go\/\S+ signet\/\d+\.\d+\.\d+/);
      expect(signature.signedArtifact.digest).toBe(ref.split('@')[1]);
      // The chain in the envelope is the one Signet returns for the key, leaf first, root last.
      const chainPem = (await api('GET', `/v1/keys/${key}/certificate-chain`)).raw.toString('utf8');
      const expected = chainPem
        .match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!
        .map((pem) => new X509Certificate(pem));
      expect(signature.certificates.map((c) => c.SHA256Fingerprint)).toEqual(
        expected.map((c) => c.fingerprint256.replace(/:/g, '').toLowerCase()),
      );
      expect(signature.certificates[0].issuedTo).toBe(`CN=${key},O=Signet Notation Tier,ST=Berlin,C=DE`);
      const tsa = signature.unsignedAttributes.timestampSignature;
      if (timestamp) {
        // "[earliest, latest]" from genTime ± accuracy, and the TSA chain under Signet's TSA root.
        expect(tsa).toBeDefined();
        expect(tsa!.timestamp).toMatch(/^\[\d{4}-\d\d-\d\dT[\d:]+Z, \d{4}-\d\d-\d\dT[\d:]+Z\]$/);
        expect(tsa!.certificates[0].issuedTo).toBe(
          'CN=Signet Development TSA,O=Signet Development,ST=Development,C=US',
        );
        expect(tsa!.certificates.at(-1)!.issuedBy).toBe(
          'CN=Signet Development TSA Root,O=Signet Development,ST=Development,C=US',
        );
      } else {
        expect(tsa).toBeUndefined();
      }
    }
  });

  it('verifies every one of them with nothing but the `notation` bundle: trustpolicy.json and the ca and tsa stores', async () => {
    expect(signed).toHaveLength(6);
    home.installBundle(await notationBundle(api, 'tier'));
    expect(fs.readdirSync(home.notationDir).sort()).toEqual([
      'plugins',
      'signingkeys.json',
      'trustpolicy.json',
      'trustpolicy.oci.json',
      'truststore',
    ]);
    const policy = JSON.parse(fs.readFileSync(path.join(home.notationDir, 'trustpolicy.json'), 'utf8'));
    expect(policy.trustPolicies[0]).toMatchObject({
      trustStores: ['ca:tier', 'tsa:tier'],
      signatureVerification: { level: 'strict', verifyTimestamp: 'afterCertExpiry' },
    });
    for (const [, name] of KEYS) expect(policy.trustPolicies[0].trustedIdentities).toContain(identityOf(name));
    for (const { ref } of signed) {
      const verified = await notation(['verify', '--insecure-registry', ref]);
      ok(verified);
      expect(verified.stdout).toContain(`Successfully verified signature for ${ref}`);
    }
  });

  it('rejects a signature by a key whose subject is not in the trust policy, and accepts it once a newer bundle names it', async () => {
    await createKey(api, 'tier-outsider', 'EC-384');
    const grant = await api('GET', '/v1/tokens');
    const pipeline = (grant.json.tokens as Array<{ id: string; name: string }> | undefined)?.find(
      (t) => t.name === 'pipeline',
    );
    expect(pipeline).toBeDefined();
    expect(
      (
        await api('PATCH', `/v1/tokens/${pipeline!.id}`, {
          keys: [...KEYS.map(([, name]) => name), 'tier-test', 'tier-prod', 'tier-outsider'],
        })
      ).status,
    ).toBe(200);
    const ref = await image('outsider');
    ok(
      await notation([
        'sign',
        '--insecure-registry',
        '--id',
        'tier-outsider',
        '--plugin',
        'signet',
        '--plugin-config',
        `url=${server.url}`,
        '--plugin-config',
        `token_file=${tokenFile}`,
        ref,
      ]),
    );

    // The installed bundle predates the key: its chain is trusted, its subject is not.
    const refused = await notation(['verify', '--insecure-registry', '--verbose', ref]);
    expect(refused.code).not.toBe(0);
    expect(refused.output).toContain(
      'signing certificate from the digital signature does not match the X.509 trusted identities',
    );
    expect(fs.readFileSync(path.join(home.notationDir, 'trustpolicy.json'), 'utf8')).not.toContain('tier-outsider');

    home.installBundle(await notationBundle(api, 'tier'));
    expect(
      JSON.parse(fs.readFileSync(path.join(home.notationDir, 'trustpolicy.json'), 'utf8')).trustPolicies[0]
        .trustedIdentities,
    ).toContain(identityOf('tier-outsider'));
    ok(await notation(['verify', '--insecure-registry', ref]));
  });

  it.each(['jws', 'cose'] as const)(
    'promotion through Notation (%s): the prod key refuses an image the test key has not signed, then signs it',
    async (format) => {
      const ref = await image(`promote-${format}`);
      const viaPlugin = (key: string) => [
        'sign',
        '--insecure-registry',
        '--signature-format',
        format,
        '--id',
        key,
        '--plugin',
        'signet',
        '--plugin-config',
        `url=${server.url}`,
        '--plugin-config',
        `token_file=${tokenFile}`,
        ref,
      ];

      const refused = await notation(viaPlugin('tier-prod'));
      expect(refused.code).not.toBe(0);
      expect(refused.output).toContain('PROMOTION_REQUIRED');
      expect(refused.output).toContain('tier-test');

      ok(await notation(viaPlugin('tier-test')));
      const promoted = await notation(viaPlugin('tier-prod'));
      ok(promoted);
      const inspected = JSON.parse((await notation(['inspect', '--insecure-registry', '-o', 'json', ref])).stdout) as {
        Signatures: Array<{ certificates: Array<{ issuedTo: string }> }>;
      };
      expect(inspected.Signatures.map((s) => s.certificates[0].issuedTo.split(',')[0]).sort()).toEqual([
        'CN=tier-prod',
        'CN=tier-test',
      ]);
    },
  );

  describe('errors as a user meets them: the message names the cause', () => {
    let ref: string;
    beforeAll(async () => {
      ref = await image('errors');
    });
    const signWith = (config: string[], extra: string[] = [], key = 'tier-ec256') =>
      notation([
        'sign',
        '--insecure-registry',
        '--id',
        key,
        '--plugin',
        'signet',
        ...config.flatMap((c) => ['--plugin-config', c]),
        ...extra,
        ref,
      ]);

    it('a wrong token', async () => {
      const wrong = path.join(dir, 'wrong.token');
      fs.writeFileSync(wrong, 'sgt_not-a-real-token\n', { mode: 0o600 });
      const result = await signWith([`url=${server.url}`, `token_file=${wrong}`]);
      expect(result.code).not.toBe(0);
      expect(result.output).toContain('failed to sign with the plugin signet');
      expect(result.output).toContain('answered HTTP 401');
      expect(result.output).toContain(
        `the token from token_file '${wrong}' was refused: it is unknown, expired or revoked`,
      );
      expect(result.output).not.toContain('sgt_not-a-real-token');
    });

    it('an empty token variable', async () => {
      const result = await signWith([`url=${server.url}`, 'token_env=SIGNET_TOKEN_UNSET']);
      expect(result.code).not.toBe(0);
      expect(result.output).toContain("environment variable 'SIGNET_TOKEN_UNSET' (token_env) is not set or empty");
    });

    it('a key the token is not granted', async () => {
      const result = await signWith([`url=${server.url}`, `token_file=${tokenFile}`], [], 'tier-ungranted');
      expect(result.code).not.toBe(0);
      expect(result.output).toContain('answered HTTP 404');
      expect(result.output).toContain("no key 'tier-ungranted' that the token from token_file");
      expect(result.output).toContain('either it does not exist or the token is not granted it');
    });

    it('Signet down', async () => {
      const closed = `http://127.0.0.1:${await freePort()}`;
      const result = await signWith([`url=${closed}`, `token_file=${tokenFile}`]);
      expect(result.code).not.toBe(0);
      expect(result.output).toContain(`cannot reach Signet at ${closed} (ECONNREFUSED)`);
    });

    it('the TSA down', async () => {
      const closed = `http://127.0.0.1:${await freePort()}/tsa`;
      const result = await signWith(
        [`url=${server.url}`, `token_file=${tokenFile}`],
        ['--timestamp-url', closed, '--timestamp-root-cert', tsaRoot],
      );
      expect(result.code).not.toBe(0);
      expect(result.output).toContain('timestamp');
      expect(result.output).toContain(closed);
      expect(result.output).toContain('connection refused');
    });

    it('no signature was stored by any failed attempt', async () => {
      const listed = await notation(['ls', '--insecure-registry', ref]);
      ok(listed);
      expect(listed.stdout).toContain('has no associated signature');
    });
  });
});
