import { ErrorCode } from '../../src/common/errors';
import { KEY_SPECS } from '../../src/pki/key-spec';
import type { HsmLogger } from '../../src/hsm/hsm-logger';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { createTestToken, type TestToken } from '../support/softhsm';
import { TEST_HSM, TEST_HSM_NAME, TEST_KEY_SPEC, openStore, sample } from './hsm-test-kit';

/**
 * The capability probe at start (C_GetMechanismList): on each module of the matrix the store knows
 * what the token offers, shows it in health() (and so `signet status`), and refuses what it lacks
 * with UNSUPPORTED_ALGORITHM naming the missing mechanisms — before any PKCS#11 call, not as a
 * CKR_MECHANISM_INVALID (a 500) from inside the token.
 */
describe(`${Pkcs11KeyStore.name} capability probe (${TEST_HSM_NAME})`, () => {
  let token: TestToken;
  let store: Pkcs11KeyStore;
  const warnings: string[] = [];
  const logger: HsmLogger = { log: () => undefined, warn: (m: string) => warnings.push(m), error: () => undefined };

  beforeAll(async () => {
    token = await createTestToken('caps');
    store = await openStore(token, { signWorkers: 0 }, { logger });
  });

  afterAll(() => store?.close());

  if (TEST_HSM === 'opencryptoki') {
    it('finds RSA but no EC and no AES-GCM in the soft token, and reports it in health() and the log', () => {
      const [health] = store.health().tokens;
      expect(health.capabilities).toEqual({
        keySpecs: ['RSA-2048', 'RSA-3072', 'RSA-4096'],
        missing: {
          'EC-256': ['CKM_EC_KEY_PAIR_GEN', 'CKM_ECDSA'],
          'EC-384': ['CKM_EC_KEY_PAIR_GEN', 'CKM_ECDSA'],
          'EC-521': ['CKM_EC_KEY_PAIR_GEN', 'CKM_ECDSA'],
          sealing: ['CKM_AES_GCM'],
        },
      });
      expect(warnings.join('\n')).toContain(
        `token '${token.tokenLabel}': key specs RSA-2048, RSA-3072, RSA-4096; unavailable: EC-256 (missing CKM_EC_KEY_PAIR_GEN, CKM_ECDSA)`,
      );
    });

    it.each(['EC-256', 'EC-384', 'EC-521'] as const)(
      'refuses to create an %s key with UNSUPPORTED_ALGORITHM naming CKM_EC_KEY_PAIR_GEN, and creates nothing',
      async (spec) => {
        const before = store.counters().keysGenerated;
        await expect(store.createKey({ spec, label: `ec-${spec}` })).rejects.toMatchObject({
          code: ErrorCode.UNSUPPORTED_ALGORITHM,
          message: expect.stringContaining(
            `key spec '${spec}' needs CKM_EC_KEY_PAIR_GEN, CKM_ECDSA, which token '${token.tokenLabel}' does not offer`,
          ),
          details: { feature: spec, missingMechanisms: ['CKM_EC_KEY_PAIR_GEN', 'CKM_ECDSA'] },
        });
        expect(store.counters().keysGenerated).toBe(before);
        expect((await store.listKeys()).filter((k) => k.label === `ec-${spec}`)).toEqual([]);
      },
    );

    it('refuses sealing with UNSUPPORTED_ALGORITHM naming CKM_AES_GCM, and creates no sealing key', async () => {
      await expect(store.seal('record-1', Buffer.from('secret'))).rejects.toMatchObject({
        code: ErrorCode.UNSUPPORTED_ALGORITHM,
        message: expect.stringContaining('sealing secrets needs CKM_AES_GCM'),
      });
      await expect(store.rotateSealingKey()).rejects.toMatchObject({ code: ErrorCode.UNSUPPORTED_ALGORITHM });
      expect(store.counters().sealOperations).toBe(0);
    });
  } else {
    it('finds every key spec, PKCS#1 v1.5 and sealing in SoftHSM2', () => {
      expect(store.health().tokens[0].capabilities).toEqual({ keySpecs: [...KEY_SPECS], missing: {} });
      expect(warnings).toEqual([]);
    });
  }

  it(`creates and signs with a ${TEST_KEY_SPEC} key, which the token offers`, async () => {
    const key = await store.createKey({ spec: TEST_KEY_SPEC, label: 'offered' });
    const s = sample(TEST_KEY_SPEC);
    await expect(store.sign(key.uri, s.digest, { hash: s.hash })).resolves.toBeInstanceOf(Buffer);
  });
});
