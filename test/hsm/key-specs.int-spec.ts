import { inspect } from 'node:util';
import { KEY_SPEC_INFO, type KeySpec } from '../../src/pki/key-spec';
import type { KeyInfo } from '../../src/hsm/key-store';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { parsePkcs11Uri } from '../../src/hsm/pkcs11-uri';
import { createTestToken, type TestToken } from '../support/softhsm';
import {
  SIGNING_MODES,
  TEST_HSM_NAME,
  TEST_KEY_SPEC,
  TEST_KEY_SPECS,
  openStore,
  sample,
  verifyWithNode,
  verifyWithOpenSsl,
} from './hsm-test-kit';

describe.each(SIGNING_MODES)(
  `${Pkcs11KeyStore.name} key specs (${TEST_HSM_NAME}), signing $mode`,
  ({ signWorkers, signThreadModule }) => {
    let token: TestToken;
    let store: Pkcs11KeyStore;
    const keys = new Map<KeySpec, KeyInfo>();

    beforeAll(async () => {
      token = await createTestToken('specs');
      store = await openStore(token, { signWorkers, signThreadModule });
      // Generated concurrently: key generation runs on the libuv pool, RSA-4096 takes a while.
      await Promise.all(
        TEST_KEY_SPECS.map(async (spec) => keys.set(spec, await store.createKey({ spec, label: `spec-${spec}` }))),
      );
    });

    afterAll(() => store?.close());

    describe.each(TEST_KEY_SPECS.map((spec) => [spec]))('%s', (spec) => {
      it('is generated in the token and named by a PKCS#11 URI with token, id and label', () => {
        const key = keys.get(spec) as KeyInfo;
        const ref = parsePkcs11Uri(key.uri);
        expect(ref.token).toBe(key.tokenLabel);
        expect(ref.id.toString('hex')).toBe(key.id);
        expect(ref.object).toBe(`spec-${spec}`);
        expect(key.spec).toBe(spec);
      });

      it("signs a digest that OpenSSL's CLI and Node's crypto verify with the exported public key", async () => {
        const key = keys.get(spec) as KeyInfo;
        const s = sample(spec);
        const signature = await store.sign(key.uri, s.digest, { hash: s.hash });
        if (KEY_SPEC_INFO[spec].kind === 'EC')
          expect(signature).toHaveLength(KEY_SPEC_INFO[spec].rawSignatureLength as number);
        expect(verifyWithNode(spec, key.publicKeySpki, s, signature)).toBe(true);
        expect(verifyWithOpenSsl(spec, key.publicKeySpki, s, signature)).toBe('Verified OK');
      });

      it('exports the same SubjectPublicKeyInfo through getPublicKey and describeKey', async () => {
        const key = keys.get(spec) as KeyInfo;
        expect((await store.getPublicKey(key.uri)).equals(key.publicKeySpki)).toBe(true);
        const described = await store.describeKey(key.uri);
        expect(described).toMatchObject({ spec, label: `spec-${spec}`, id: key.id, role: 'signing' });
      });
    });

    it.each(['RSA-2048', 'RSA-3072'] as const)(
      '%s signs PKCS#1 v1.5 when a caller asks for it explicitly',
      async (spec) => {
        const key = keys.get(spec) as KeyInfo;
        const s = sample(spec, 'pkcs1 payload');
        const signature = await store.sign(key.uri, s.digest, { hash: s.hash, rsaPadding: 'pkcs1' });
        expect(verifyWithNode(spec, key.publicKeySpki, s, signature, 'pkcs1')).toBe(true);
        expect(verifyWithOpenSsl(spec, key.publicKeySpki, s, signature, 'pkcs1')).toBe('Verified OK');
      },
    );

    // P-384 where the module has EC; RSA-3072 (paired with SHA-384) on openCryptoki.
    const otherHashSpec: KeySpec = TEST_KEY_SPECS.includes('EC-384') ? 'EC-384' : 'RSA-3072';
    it(`signs with a hash other than the spec pairing when the caller says so (${otherHashSpec} over SHA-256)`, async () => {
      const key = keys.get(otherHashSpec) as KeyInfo;
      const s = { ...sample('EC-256', 'other hash'), hash: 'SHA-256' as const };
      const signature = await store.sign(key.uri, s.digest, { hash: 'SHA-256' });
      expect(verifyWithNode(otherHashSpec, key.publicKeySpki, s, signature)).toBe(true);
    });

    it('hands out a DigestSigner that knows nothing of PKCS#11', async () => {
      const key = keys.get(TEST_KEY_SPEC) as KeyInfo;
      const signer = await store.getSigner(key.uri);
      expect(signer.spec).toBe(TEST_KEY_SPEC);
      expect(signer.publicKeySpki.equals(key.publicKeySpki)).toBe(true);
      const s = sample(TEST_KEY_SPEC, 'via signer');
      expect(verifyWithNode(TEST_KEY_SPEC, signer.publicKeySpki, s, await signer.signDigest(s.digest, s.hash))).toBe(
        true,
      );
    });

    it('lists every generated pair with its spec, and counts signatures', async () => {
      const listing = await store.listKeys();
      for (const [spec, key] of keys) {
        expect(listing).toContainEqual(
          expect.objectContaining({
            id: key.id,
            spec,
            hasPrivateKey: true,
            hasPublicKey: true,
            tokenLabel: key.tokenLabel,
          }),
        );
      }
      expect(store.counters().signOperations).toBeGreaterThanOrEqual(TEST_KEY_SPECS.length);
      expect(store.counters().keysGenerated).toBe(TEST_KEY_SPECS.length);
    });

    it('never shows the PIN when the store is inspected, logged or serialised', () => {
      const inspected = inspect(store, { depth: 10, showHidden: true });
      expect(inspected).toContain(token.tokenLabel); // deep enough to reach the session pools
      expect(inspected).not.toContain(token.pin);
      expect(JSON.stringify(store.health())).not.toContain(token.pin);
    });
  },
);
