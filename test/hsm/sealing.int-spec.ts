import { randomBytes } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { ErrorCode } from '../../src/common/errors';
import type { Handle, Mechanism } from '../../src/hsm/pkcs11-api';
import { Pkcs11FaultInjector } from '../../src/hsm/pkcs11-fault-injector';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import { decodeSealedEnvelope, encodeSealedEnvelope } from '../../src/hsm/sealed-envelope';
import { createTestToken, type TestToken } from '../support/softhsm';
import { openStore } from './hsm-test-kit';

describe(`${Pkcs11KeyStore.name} seals secrets with AES-256-GCM in the token`, () => {
  let token: TestToken;
  let store: Pkcs11KeyStore;
  const secret = Buffer.from('{"username":"robot$ci","password":"hunter2"}');

  beforeAll(async () => {
    token = await createTestToken('sealing');
    store = await openStore(token);
  });

  afterAll(() => store?.close());

  it('round-trips a secret; the envelope carries the key id and a fresh IV, never the plaintext', async () => {
    const first = await store.seal('target:eu-1/harbor', secret);
    const second = await store.seal('target:eu-1/harbor', secret);
    expect(first.includes(secret)).toBe(false);
    expect(first.equals(second)).toBe(false);
    const [a, b] = [decodeSealedEnvelope(first), decodeSealedEnvelope(second)];
    expect(a.keyId.equals(b.keyId)).toBe(true);
    expect(a.iv).toHaveLength(12);
    expect(a.iv.equals(b.iv)).toBe(false);
    expect(a.ciphertext).toHaveLength(secret.length + 16);
    expect((await store.unseal('target:eu-1/harbor', first)).equals(secret)).toBe(true);
    expect((await store.unseal('target:eu-1/harbor', second)).equals(secret)).toBe(true);
    await expect(store.seal('empty', Buffer.alloc(0))).rejects.toMatchObject({ code: ErrorCode.VALIDATION_ERROR });
  });

  it("binds the record's id: a sealed value moved to another record, or altered, does not open", async () => {
    const sealed = await store.seal('target:eu-1/harbor', secret);
    await expect(store.unseal('target:us-1/harbor', sealed)).rejects.toMatchObject({
      code: ErrorCode.INTERNAL,
      message: expect.stringContaining('authentication failed'),
    });
    const envelope = decodeSealedEnvelope(sealed);
    const flipped = Buffer.from(envelope.ciphertext);
    flipped[0] ^= 1;
    await expect(
      store.unseal('target:eu-1/harbor', encodeSealedEnvelope({ ...envelope, ciphertext: flipped })),
    ).rejects.toMatchObject({ code: ErrorCode.INTERNAL });
    const otherIv = Buffer.from(envelope.iv);
    otherIv[11] ^= 1;
    await expect(
      store.unseal('target:eu-1/harbor', encodeSealedEnvelope({ ...envelope, iv: otherIv })),
    ).rejects.toMatchObject({ code: ErrorCode.INTERNAL });
    await expect(store.unseal('target:eu-1/harbor', sealed.subarray(0, 10))).rejects.toMatchObject({
      code: ErrorCode.INTERNAL,
    });
    // The session that saw the failures is replaced: later operations are unaffected.
    expect((await store.unseal('target:eu-1/harbor', sealed)).equals(secret)).toBe(true);
    expect(store.health()).toMatchObject({ state: 'ready', sessions: 4 });
  });

  it('keeps the sealing key in the token: sensitive, never extractable, value unreadable', async () => {
    const keyId = decodeSealedEnvelope(await store.seal('r', secret)).keyId;
    const library = Pkcs11Library.acquire(token.modulePath);
    const session = library.api.C_OpenSession(
      library.locateToken(token.tokenLabel)?.slot as Handle,
      pkcs11js.CKF_SERIAL_SESSION,
    );
    try {
      library.api.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_ID, value: keyId },
      ]);
      const [handle] = library.api.C_FindObjects(session, 1);
      library.api.C_FindObjectsFinal(session);
      const attributes = library.api.C_GetAttributeValue(session, handle, [
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
        { type: pkcs11js.CKA_VALUE_LEN },
      ]);
      expect(attributes.slice(0, 3).map((a) => a.value[0])).toEqual([1, 0, 1]);
      expect(attributes[3].value[0]).toBe(32);
      expect(() => library.api.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_VALUE }])).toThrow(
        /CKR_ATTRIBUTE_SENSITIVE/,
      );
    } finally {
      library.api.C_CloseSession(session);
      library.release();
    }
  });

  it('rotates the sealing key: new writes use the new key, old records still open, also after a restart', async () => {
    const before = await store.seal('rotating', secret);
    const rotated = await store.rotateSealingKey();
    const after = await store.seal('rotating', secret);
    expect(decodeSealedEnvelope(after).keyId.toString('hex')).toBe(rotated.keyId);
    expect(decodeSealedEnvelope(before).keyId.toString('hex')).not.toBe(rotated.keyId);
    expect(rotated.label).toBe(`signet-seal-${rotated.generation}`);

    const restarted = await openStore(token);
    try {
      expect((await restarted.unseal('rotating', before)).equals(secret)).toBe(true);
      expect((await restarted.unseal('rotating', after)).equals(secret)).toBe(true);
      expect(decodeSealedEnvelope(await restarted.seal('rotating', secret)).keyId.toString('hex')).toBe(rotated.keyId);
    } finally {
      await restarted.close();
    }
  });

  it('lets the token generate the IV where it insists (FIPS-mode HSM, simulated through the seam)', async () => {
    const faults = new Pkcs11FaultInjector();
    const generatedIvs: Buffer[] = [];
    // Like a FIPS-mode HSM: refuse a caller's IV, write its own into the zeroed IV buffer.
    faults.intercept('C_EncryptInit', (real, args) => {
      const mechanism = args[1] as Mechanism & { parameter: { iv: Buffer } };
      if (mechanism.mechanism === pkcs11js.CKM_AES_GCM) {
        if (mechanism.parameter.iv.some((b) => b !== 0))
          throw Object.assign(new Error('CKR_MECHANISM_PARAM_INVALID'), { code: pkcs11js.CKR_MECHANISM_PARAM_INVALID });
        randomBytes(12).copy(mechanism.parameter.iv);
        generatedIvs.push(Buffer.from(mechanism.parameter.iv));
      }
      return real(...args);
    });
    const fips = await openStore(token, {}, { faults });
    try {
      const sealed = await fips.seal('fips', secret);
      expect(generatedIvs).toHaveLength(1);
      expect(decodeSealedEnvelope(sealed).iv.equals(generatedIvs[0])).toBe(true);
      expect((await store.unseal('fips', sealed)).equals(secret)).toBe(true);
    } finally {
      await fips.close();
    }
  });

  it('counts seal and unseal operations', () => {
    expect(store.counters().sealOperations).toBeGreaterThan(0);
    expect(store.counters().unsealOperations).toBeGreaterThan(0);
  });
});
