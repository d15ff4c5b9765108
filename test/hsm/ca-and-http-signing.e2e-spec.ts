import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { COMMANDS } from '../../src/cli/commands';
import { chainValidAt, http, signatureVerifies, signWith, SUBJECT } from '../rotation/rotation-helpers';
import { RotationTestApp, startRotationTestApp } from '../rotation/rotation-test-app';
import { TEST_HSM, TEST_HSM_NAME, TEST_KEY_SPEC } from './hsm-test-kit';

/**
 * The whole application on the matrix's module (SoftHSM2, or openCryptoki with
 * SIGNET_TEST_HSM=opencryptoki): the development hierarchy at boot, a root and an issuing CA made
 * over HTTP, a key under them, signatures over HTTP that verify with the issued chain. On a token
 * without EC, EC requests are refused with a 400 naming the missing mechanism and leave nothing
 * behind, and `signet status` says what the token offers.
 */
describe(`CA creation and signing over HTTP (${TEST_HSM_NAME})`, () => {
  let t: RotationTestApp;
  let api: ReturnType<typeof http>;

  beforeAll(async () => {
    t = await startRotationTestApp({ env: { SIGNET_LOG_LEVEL: 'fatal' } });
    api = http(t.app, t.adminToken);
  }, 180_000);

  afterAll(() => t?.close());

  it(`boots with a development hierarchy the token can hold (${TEST_HSM === 'opencryptoki' ? 'RSA-3072: no EC' : 'EC-384'})`, async () => {
    const { status, body } = await api('GET', '/v1/cas/signet-dev-issuing');
    expect(status).toBe(200);
    expect(JSON.stringify(body)).toContain(TEST_HSM === 'opencryptoki' ? 'RSA-3072' : 'EC-384');
  });

  it(`creates a ${TEST_KEY_SPEC} root and issuing CA, and a key under them whose HTTP signatures verify with its chain`, async () => {
    expect(
      (
        await api('POST', '/v1/cas', {
          name: 'matrix-root',
          kind: 'root',
          keySpec: TEST_KEY_SPEC,
          validityDays: 3650,
          subject: { ...SUBJECT, CN: 'Matrix Root' },
        })
      ).status,
    ).toBe(201);
    const issuing = await api('POST', '/v1/cas', {
      name: 'matrix-issuing',
      kind: 'issuing',
      parent: 'matrix-root',
      keySpec: TEST_KEY_SPEC,
      validityDays: 1825,
      subject: { ...SUBJECT, CN: 'Matrix Issuing' },
    });
    expect(issuing.status).toBe(201);
    const key = await api('POST', '/v1/keys', {
      name: 'matrix-key',
      keySpec: TEST_KEY_SPEC,
      issuer: 'matrix-issuing',
      subject: { ...SUBJECT, CN: 'matrix-key' },
    });
    expect(key.status).toBe(201);
    const signer = (await api('POST', '/v1/tokens', { name: 'matrix-signer', role: 'signer', keys: ['matrix-key'] }))
      .body.token as string;
    for (let i = 0; i < 3; i++) {
      const record = await signWith(t.app, signer, 'matrix-key', TEST_KEY_SPEC, new Date());
      expect(signatureVerifies(record)).toBe(true);
      expect(record.chain).toHaveLength(3);
      expect(new x509.X509Certificate(record.chain[1]).subject).toContain('CN=Matrix Issuing');
      expect(await chainValidAt(record.chain, new Date())).toBeUndefined();
    }
  });

  it("shows the token's capabilities in signet status", async () => {
    const status = COMMANDS.find((c) => c.name === 'status');
    const lines: string[] = [];
    await status?.run?.(
      { app: t.app, config: t.config, ownerDatabaseUrl: '', out: (line: string) => lines.push(line) } as never,
      { values: {}, positionals: [] },
    );
    process.exitCode = undefined;
    const line = lines.find((l) => l.startsWith('hsm capabilities: '));
    if (TEST_HSM === 'opencryptoki') {
      expect(line).toContain(
        `token '${t.token.tokenLabel}': key specs RSA-2048, RSA-3072, RSA-4096; unavailable: EC-256 (missing CKM_EC_KEY_PAIR_GEN, CKM_ECDSA)`,
      );
      expect(line).toContain('sealing (missing CKM_AES_GCM)');
    } else {
      expect(line).toBe(
        `hsm capabilities: token '${t.token.tokenLabel}': key specs EC-256, EC-384, EC-521, RSA-2048, RSA-3072, RSA-4096`,
      );
    }
  });

  if (TEST_HSM === 'opencryptoki') {
    it('refuses an EC CA and an EC key with 400 UNSUPPORTED_ALGORITHM naming CKM_EC_KEY_PAIR_GEN, and writes nothing', async () => {
      const ca = await api('POST', '/v1/cas', {
        name: 'ec-root',
        kind: 'root',
        keySpec: 'EC-384',
        validityDays: 3650,
        subject: { ...SUBJECT, CN: 'EC Root' },
      });
      expect(ca.status).toBe(400);
      expect(ca.body.error).toMatchObject({
        code: 'UNSUPPORTED_ALGORITHM',
        message: expect.stringContaining("key spec 'EC-384' needs CKM_EC_KEY_PAIR_GEN, CKM_ECDSA"),
      });
      expect((await api('GET', '/v1/cas/ec-root')).status).toBe(404);
      const key = await api('POST', '/v1/keys', {
        name: 'ec-key',
        keySpec: 'EC-256',
        issuer: 'matrix-issuing',
        subject: { ...SUBJECT, CN: 'ec-key' },
      });
      expect(key.status).toBe(400);
      expect(key.body.error).toMatchObject({
        code: 'UNSUPPORTED_ALGORITHM',
        message: expect.stringContaining("key spec 'EC-256' needs CKM_EC_KEY_PAIR_GEN, CKM_ECDSA"),
      });
      expect((await api('GET', '/v1/keys/ec-key')).status).toBe(404);
    });
  }
});
