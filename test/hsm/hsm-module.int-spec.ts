import { realpathSync } from 'node:fs';
import { Inject, Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { HsmModule } from '../../src/hsm/hsm.module';
import type { HsmOptions } from '../../src/hsm/hsm-options';
import { KEY_STORE, type KeyStore } from '../../src/hsm/key-store';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import { createTestToken, type TestToken } from '../support/softhsm';
import { TEST_KEY_SPEC, sample, verifyWithNode } from './hsm-test-kit';

@Injectable()
class SigningConsumer {
  constructor(@Inject(KEY_STORE) readonly keyStore: KeyStore) {}
}

/** A feature module that does not import HsmModule: the store reaches it because HsmModule is global. */
@Module({ providers: [SigningConsumer] })
class FeatureModule {}

describe(HsmModule.name, () => {
  let token: TestToken;
  let options: HsmOptions;

  beforeAll(async () => {
    token = await createTestToken('module');
    options = { modulePath: token.modulePath, tokenLabel: token.tokenLabel, pin: token.pin, poolSize: 2 };
  });

  it('provides one store by class and by the KEY_STORE token, globally, and closes it with the application', async () => {
    const app = await Test.createTestingModule({ imports: [HsmModule.forRoot(options), FeatureModule] }).compile();
    await app.init();
    const store = app.get(Pkcs11KeyStore);
    expect(app.get(KEY_STORE)).toBe(store);
    expect(app.get(SigningConsumer).keyStore).toBe(store);
    expect(store.health()).toMatchObject({ state: 'ready', sessions: 2 });

    const key = await store.createKey({ spec: TEST_KEY_SPEC, label: 'via-module' });
    const s = sample(TEST_KEY_SPEC);
    expect(
      verifyWithNode(TEST_KEY_SPEC, key.publicKeySpki, s, await store.sign(key.uri, s.digest, { hash: s.hash })),
    ).toBe(true);

    await app.close();
    expect(store.health().state).toBe('down');
    expect(Pkcs11Library.referenceCount(token.modulePath)).toBe(0);
  });

  it('takes its options from a factory (forRootAsync)', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [HsmModule.forRootAsync({ useFactory: async () => ({ ...options, poolSize: 3 }) })],
    }).compile();
    await moduleRef.init();
    expect(moduleRef.get(Pkcs11KeyStore).health()).toMatchObject({
      state: 'ready',
      sessions: 3,
      configuredSessions: 3,
    });
    await moduleRef.close();
  });

  it('stops the boot with a message naming the token and the PKCS#11 code — never the PIN', async () => {
    const wrongPin = 'not-the-pin-4711';
    const failure = await Test.createTestingModule({ imports: [HsmModule.forRoot({ ...options, pin: wrongPin })] })
      .compile()
      .catch((err: Error) => err);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toBe(
      `hsm: cannot open sessions on token '${token.tokenLabel}': CKR_PIN_INCORRECT`,
    );
    expect(JSON.stringify(failure)).not.toContain(wrongPin);
    expect(Pkcs11Library.referenceCount(token.modulePath)).toBe(0);

    const noToken = await Test.createTestingModule({
      imports: [HsmModule.forRoot({ ...options, tokenLabel: 'missing-token' })],
    })
      .compile()
      .catch((err: Error) => err);
    expect((noToken as Error).message).toBe(
      `hsm: token 'missing-token' not found in ${realpathSync(token.modulePath)}`,
    );
  });
});
