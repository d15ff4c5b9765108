import { createHash } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { DomainError, ErrorCode } from '../../src/common/errors';
import type { KeyInfo } from '../../src/hsm/key-store';
import type { Handle } from '../../src/hsm/pkcs11-api';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import { formatPkcs11Uri, parsePkcs11Uri } from '../../src/hsm/pkcs11-uri';
import { createTestToken, type TestToken } from '../support/softhsm';
import { openStore } from './hsm-test-kit';

describe(`${Pkcs11KeyStore.name} rejects bad input with typed errors and leaves the token unchanged`, () => {
  let token: TestToken;
  let store: Pkcs11KeyStore;
  let library: Pkcs11Library;
  let session: Handle;
  let ecKey: KeyInfo;
  let rsaKey: KeyInfo;
  const sha256 = createHash('sha256').update('x').digest();

  function tokenObjectCount(): number {
    library.api.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_TOKEN, value: true }]);
    const handles = library.api.C_FindObjects(session, 10_000);
    library.api.C_FindObjectsFinal(session);
    return handles.length;
  }

  /** Runs `attempt`, expects a DomainError with `code`, and checks no object and no signature was made. */
  async function expectRejected(attempt: () => Promise<unknown>, code: ErrorCode): Promise<DomainError> {
    const objects = tokenObjectCount();
    const { signAttempts, signOperations, keysGenerated } = store.counters();
    const error = await attempt().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ code });
    expect(tokenObjectCount()).toBe(objects);
    expect(store.counters()).toMatchObject({ signAttempts, signOperations, keysGenerated });
    return error as DomainError;
  }

  beforeAll(async () => {
    token = await createTestToken('bad-input');
    store = await openStore(token);
    ecKey = await store.createKey({ spec: 'EC-256', label: 'ec' });
    rsaKey = await store.createKey({ spec: 'RSA-2048', label: 'rsa' });
    // Seal once so the token also holds a sealing key (an AES key a URI could point at).
    await store.seal('record-1', Buffer.from('secret'));
    library = Pkcs11Library.acquire(token.modulePath);
    session = library.api.C_OpenSession(
      library.locateToken(token.tokenLabel)?.slot as Handle,
      pkcs11js.CKF_SERIAL_SESSION,
    );
  });

  afterAll(async () => {
    if (session) library.api.C_CloseSession(session);
    await store?.close();
    library?.release();
  });

  it('wrong digest length → INVALID_DIGEST_LENGTH before the token is touched', async () => {
    const error = await expectRejected(
      () => store.sign(ecKey.uri, sha256.subarray(0, 31), { hash: 'SHA-256' }),
      ErrorCode.INVALID_DIGEST_LENGTH,
    );
    expect(error.message).toBe('sign: digest is 31 bytes; SHA-256 digests are 32 bytes');
    await expectRejected(() => store.sign(rsaKey.uri, sha256, { hash: 'SHA-384' }), ErrorCode.INVALID_DIGEST_LENGTH);
    await expectRejected(
      () => store.sign(ecKey.uri, 'not a buffer' as unknown as Buffer, { hash: 'SHA-256' }),
      ErrorCode.INVALID_DIGEST_LENGTH,
    );
  });

  it('unknown key reference → NOT_FOUND (unknown id, unknown token, destroyed key); malformed → VALIDATION_ERROR', async () => {
    const unknownId = formatPkcs11Uri({ token: token.tokenLabel, id: Buffer.from('00112233', 'hex'), object: 'ec' });
    const error = await expectRejected(() => store.sign(unknownId, sha256, { hash: 'SHA-256' }), ErrorCode.NOT_FOUND);
    expect(error.message).toContain(unknownId);
    await expectRejected(
      () => store.sign(formatPkcs11Uri({ token: 'no-such-token', id: Buffer.from([1]) }), sha256, { hash: 'SHA-256' }),
      ErrorCode.NOT_FOUND,
    );
    // Right id, wrong object label: the URI does not name this key.
    const wrongLabel = formatPkcs11Uri({ ...parsePkcs11Uri(ecKey.uri), object: 'rsa' });
    await expectRejected(() => store.sign(wrongLabel, sha256, { hash: 'SHA-256' }), ErrorCode.NOT_FOUND);
    await expectRejected(() => store.sign('pkcs11:object=ec', sha256, { hash: 'SHA-256' }), ErrorCode.VALIDATION_ERROR);
    await expectRejected(
      () => store.sign(`${ecKey.uri}?pin-value=1234`, sha256, { hash: 'SHA-256' }),
      ErrorCode.VALIDATION_ERROR,
    );
    const doomed = await store.createKey({ spec: 'EC-256', label: 'doomed' });
    await store.sign(doomed.uri, sha256, { hash: 'SHA-256' });
    await store.destroyKey(doomed.uri);
    await expectRejected(() => store.sign(doomed.uri, sha256, { hash: 'SHA-256' }), ErrorCode.NOT_FOUND);
    await expectRejected(() => store.getPublicKey(unknownId), ErrorCode.NOT_FOUND);
    await expectRejected(() => store.destroyKey(unknownId), ErrorCode.NOT_FOUND);
  });

  it('a URI naming the sealing key (an AES key) is no signing key → NOT_FOUND', async () => {
    const sealingId = (await store.rotateSealingKey()).keyId;
    const uri = formatPkcs11Uri({ token: token.tokenLabel, id: Buffer.from(sealingId, 'hex') });
    await expectRejected(() => store.sign(uri, sha256, { hash: 'SHA-256' }), ErrorCode.NOT_FOUND);
  });

  it('wrong mechanism for the key type → UNSUPPORTED_ALGORITHM (RSA padding on an EC key, unknown hash or padding)', async () => {
    // Once before the key is cached, once after: both paths refuse before C_SignInit.
    const freshEc = await store.createKey({ spec: 'EC-384', label: 'fresh' });
    const digest48 = createHash('sha384').update('x').digest();
    await expectRejected(
      () => store.sign(freshEc.uri, digest48, { hash: 'SHA-384', rsaPadding: 'pkcs1' }),
      ErrorCode.UNSUPPORTED_ALGORITHM,
    );
    await store.sign(freshEc.uri, digest48, { hash: 'SHA-384' });
    await expectRejected(
      () => store.sign(freshEc.uri, digest48, { hash: 'SHA-384', rsaPadding: 'pss' }),
      ErrorCode.UNSUPPORTED_ALGORITHM,
    );
    await expectRejected(
      () => store.sign(ecKey.uri, sha256, { hash: 'MD5' as never }),
      ErrorCode.UNSUPPORTED_ALGORITHM,
    );
    await expectRejected(
      () => store.sign(rsaKey.uri, sha256, { hash: 'SHA-256', rsaPadding: 'oaep' as never }),
      ErrorCode.UNSUPPORTED_ALGORITHM,
    );
    await expectRejected(
      () => store.createKey({ spec: 'EC-192' as never, label: 'x' }),
      ErrorCode.UNSUPPORTED_ALGORITHM,
    );
  });

  it('duplicate id → ALREADY_EXISTS, and PKCS#11 is not given the chance to create a twin', async () => {
    const id = Buffer.from(ecKey.id, 'hex');
    const error = await expectRejected(
      () => store.createKey({ spec: 'EC-256', label: 'again', id }),
      ErrorCode.ALREADY_EXISTS,
    );
    expect(error.message).toContain(ecKey.id);
    await expectRejected(
      () => store.createKey({ spec: 'RSA-2048', label: 'other-type', id }),
      ErrorCode.ALREADY_EXISTS,
    );
  });

  it('concurrent creations of one id produce one key pair and one ALREADY_EXISTS', async () => {
    const id = Buffer.from('c0ffee', 'hex');
    const results = await Promise.allSettled([
      store.createKey({ spec: 'EC-256', label: 'race', id }),
      store.createKey({ spec: 'EC-256', label: 'race', id }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({
      code: ErrorCode.ALREADY_EXISTS,
    });
    expect((await store.listKeys()).filter((k) => k.id === 'c0ffee')).toHaveLength(1);
  });

  it('empty label or oversized id → VALIDATION_ERROR', async () => {
    await expectRejected(() => store.createKey({ spec: 'EC-256', label: ' ' }), ErrorCode.VALIDATION_ERROR);
    await expectRejected(
      () => store.createKey({ spec: 'EC-256', label: 'x', id: Buffer.alloc(65) }),
      ErrorCode.VALIDATION_ERROR,
    );
  });
});
