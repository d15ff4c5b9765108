import { execFileSync } from 'node:child_process';
import * as pkcs11js from 'pkcs11js';
import { KEY_SPECS, KEY_SPEC_INFO, type KeySpec } from '../../src/pki/key-spec';
import type { KeyInfo } from '../../src/hsm/key-store';
import type { Handle } from '../../src/hsm/pkcs11-api';
import { toPkcs11Error } from '../../src/hsm/pkcs11-errors';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import { createTestToken, type TestToken } from '../support/softhsm';
import { openStore } from './hsm-test-kit';

/** The CKR_ name a PKCS#11 call fails with, or 'CKR_OK'. */
function ckrOf(fn: () => unknown): string {
  try {
    fn();
    return 'CKR_OK';
  } catch (err) {
    return toPkcs11Error(err, 'test')?.ckr ?? String(err);
  }
}

describe(`${Pkcs11KeyStore.name} keeps private keys inside the HSM`, () => {
  let token: TestToken;
  let store: Pkcs11KeyStore;
  let library: Pkcs11Library;
  let session: Handle;
  const keys = new Map<KeySpec, KeyInfo>();

  const privateKeyHandle = (key: KeyInfo): Handle => {
    const api = library.api;
    api.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_ID, value: Buffer.from(key.id, 'hex') },
    ]);
    const handles = api.C_FindObjects(session, 2);
    api.C_FindObjectsFinal(session);
    expect(handles).toHaveLength(1);
    return handles[0];
  };

  beforeAll(async () => {
    token = await createTestToken('extract');
    store = await openStore(token);
    await Promise.all(
      KEY_SPECS.map(async (spec) => keys.set(spec, await store.createKey({ spec, label: `nx-${spec}` }))),
    );
    // An independent session of this process on the same token (login is per process and token).
    library = Pkcs11Library.acquire(token.modulePath);
    const slot = library.locateToken(token.tokenLabel)?.slot as Handle;
    session = library.api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  });

  afterAll(async () => {
    if (session) library.api.C_CloseSession(session);
    await store?.close();
    library?.release();
  });

  it('reads back CKA_LOCAL, CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE as true (and the template as asked)', () => {
    for (const key of keys.values()) {
      const attributes = library.api.C_GetAttributeValue(session, privateKeyHandle(key), [
        { type: pkcs11js.CKA_LOCAL },
        { type: pkcs11js.CKA_ALWAYS_SENSITIVE },
        { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_MODIFIABLE },
        { type: pkcs11js.CKA_COPYABLE },
        { type: pkcs11js.CKA_TOKEN },
        { type: pkcs11js.CKA_PRIVATE },
      ]);
      expect(attributes.map((a) => a.value[0])).toEqual([1, 1, 1, 1, 0, 0, 0, 1, 1]);
    }
  });

  it('refuses to reveal the private value: CKA_VALUE (EC), CKA_PRIVATE_EXPONENT and CKA_PRIME_1 (RSA) → CKR_ATTRIBUTE_SENSITIVE', () => {
    for (const [spec, key] of keys) {
      const handle = privateKeyHandle(key);
      const secretAttributes =
        KEY_SPEC_INFO[spec].kind === 'EC'
          ? [pkcs11js.CKA_VALUE]
          : [pkcs11js.CKA_PRIVATE_EXPONENT, pkcs11js.CKA_PRIME_1];
      for (const type of secretAttributes) {
        expect(ckrOf(() => library.api.C_GetAttributeValue(session, handle, [{ type }]))).toBe(
          'CKR_ATTRIBUTE_SENSITIVE',
        );
      }
    }
  });

  it('refuses C_WrapKey of a signing key under a real AES wrapping key → CKR_KEY_UNEXTRACTABLE', () => {
    const wrappingKey = library.api.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_WRAP, value: true },
    ]);
    try {
      for (const key of keys.values()) {
        const handle = privateKeyHandle(key);
        expect(
          ckrOf(() =>
            library.api.C_WrapKey(
              session,
              { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD },
              wrappingKey,
              handle,
              Buffer.alloc(8192),
            ),
          ),
        ).toBe('CKR_KEY_UNEXTRACTABLE');
      }
    } finally {
      library.api.C_DestroyObject(session, wrappingKey);
    }
  });

  it('refuses to flip the protection back or copy the key (CKA_MODIFIABLE and CKA_COPYABLE false)', () => {
    const handle = privateKeyHandle(keys.get('EC-256') as KeyInfo);
    // SoftHSM2 answers with the v3.0 code CKR_ACTION_PROHIBITED (pkcs11js knows it as vendor-defined 0x1B).
    expect(
      ckrOf(() => library.api.C_SetAttributeValue(session, handle, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }])),
    ).toBe('CKR_ACTION_PROHIBITED');
    expect(ckrOf(() => library.api.C_CopyObject(session, handle, [{ type: pkcs11js.CKA_TOKEN, value: false }]))).toBe(
      'CKR_ACTION_PROHIBITED',
    );
  });

  it('is shown by pkcs11-tool as sensitive, always sensitive, never extractable and local', () => {
    // pkcs11-tool runs in its own process, reading the token from disk; the PIN goes through its environment, not argv.
    const output = execFileSync(
      'pkcs11-tool',
      [
        '--module',
        token.modulePath,
        '--token-label',
        token.tokenLabel,
        '--login',
        '--pin',
        'env:SIGNET_TEST_PIN',
        '--list-objects',
        '--type',
        'privkey',
      ],
      { encoding: 'utf8', env: { ...process.env, SOFTHSM2_CONF: token.softhsmConf, SIGNET_TEST_PIN: token.pin } },
    );
    const objects = output.split(/^Private Key Object; /m).slice(1);
    expect(objects).toHaveLength(keys.size);
    for (const key of keys.values()) {
      const block = objects.find((o) => o.includes(`label:      ${key.label}`));
      expect(block).toBeDefined();
      const access = /Access:\s+(.*)/.exec(block as string)?.[1] ?? '';
      expect(access.split(', ').sort()).toEqual(['always sensitive', 'local', 'never extractable', 'sensitive']);
      expect(block).toContain(`ID:         ${key.id}`);
    }
  });
});
