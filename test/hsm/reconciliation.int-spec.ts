import * as pkcs11js from 'pkcs11js';
import type { KeyInfo } from '../../src/hsm/key-store';
import type { Handle } from '../../src/hsm/pkcs11-api';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import { formatPkcs11Uri, parsePkcs11Uri } from '../../src/hsm/pkcs11-uri';
import { createTestToken, type TestToken } from '../support/softhsm';
import { openStore } from './hsm-test-kit';

describe(`${Pkcs11KeyStore.name} reconciliation of token objects and database references`, () => {
  let token: TestToken;
  let store: Pkcs11KeyStore;
  let referenced: KeyInfo;
  let orphan: KeyInfo;
  let halfGone: KeyInfo;

  beforeAll(async () => {
    token = await createTestToken('reconcile');
    store = await openStore(token);
    referenced = await store.createKey({ spec: 'EC-256', label: 'referenced' });
    orphan = await store.createKey({ spec: 'EC-384', label: 'orphan' });
    halfGone = await store.createKey({ spec: 'RSA-2048', label: 'half-gone' });
    await store.seal('some-record', Buffer.from('sealing keys are not key pairs'));

    // Remove only the private key of `halfGone`, as a partial manual cleanup would.
    const library = Pkcs11Library.acquire(token.modulePath);
    const session = library.api.C_OpenSession(
      library.locateToken(token.tokenLabel)?.slot as Handle,
      pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION,
    );
    try {
      library.api.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_ID, value: Buffer.from(halfGone.id, 'hex') },
      ]);
      const [handle] = library.api.C_FindObjects(session, 1);
      library.api.C_FindObjectsFinal(session);
      library.api.C_DestroyObject(session, handle);
    } finally {
      library.api.C_CloseSession(session);
      library.release();
    }
  });

  afterAll(() => store?.close());

  it('reports objects no row references and rows whose private key is missing', async () => {
    // Same key, spelled differently: no object label, upper-case percent-encoding.
    const respelled = `pkcs11:token=${token.tokenLabel};id=${Buffer.from(referenced.id, 'hex')
      .toString('hex')
      .toUpperCase()
      .replace(/(..)/g, '%$1')}`;
    const neverCreated = formatPkcs11Uri({
      token: token.tokenLabel,
      id: Buffer.from('deadbeef', 'hex'),
      object: 'ghost',
    });
    const report = await store.reconcile([respelled, halfGone.uri, neverCreated, 'not-a-uri']);

    expect(parsePkcs11Uri(respelled).id.toString('hex')).toBe(referenced.id);
    expect(report.orphanObjects.map((o) => o.id)).toEqual([orphan.id]);
    expect(report.orphanObjects[0]).toMatchObject({
      label: 'orphan',
      spec: 'EC-384',
      hasPrivateKey: true,
      hasPublicKey: true,
    });
    expect(report.missingObjects.sort()).toEqual([halfGone.uri, neverCreated, 'not-a-uri'].sort());
  });

  it('lists the half-gone pair as public-only and never lists sealing keys', async () => {
    const listing = await store.listKeys('signing');
    expect(listing.find((k) => k.id === halfGone.id)).toMatchObject({
      hasPrivateKey: false,
      hasPublicKey: true,
      spec: 'RSA-2048',
    });
    expect(listing.map((k) => k.label).sort()).toEqual(['half-gone', 'orphan', 'referenced']);
  });
});
