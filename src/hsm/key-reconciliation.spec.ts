import { reconcileKeyObjects } from './key-reconciliation';
import type { KeyListing } from './key-store';
import { formatPkcs11Uri } from './pkcs11-uri';

function listing(token: string, id: string, label: string, hasPrivateKey = true): KeyListing {
  return {
    uri: formatPkcs11Uri({ token, id: Buffer.from(id, 'hex'), object: label }),
    role: 'signing',
    tokenLabel: token,
    id,
    label,
    spec: 'EC-256',
    hasPrivateKey,
    hasPublicKey: true,
  };
}

describe(reconcileKeyObjects.name, () => {
  const inToken = [
    listing('signet', '01', 'a'),
    listing('signet', '02', 'b'),
    listing('signet-ca', '01', 'root'),
    listing('signet', '03', 'c', false),
  ];

  it('matches by token and id, whatever the spelling of the referenced URI', () => {
    const report = reconcileKeyObjects(inToken, [
      'pkcs11:id=%01;token=signet',
      'pkcs11:token=signet-ca;id=%01;object=renamed',
      inToken[1].uri,
      inToken[3].uri,
    ]);
    expect(report.orphanObjects).toEqual([]);
    // The pair whose private key is gone is referenced but missing.
    expect(report.missingObjects).toEqual([inToken[3].uri]);
  });

  it('reports unreferenced pairs as orphans and unknown or malformed references as missing', () => {
    const ghost = 'pkcs11:token=signet;id=%ff';
    const report = reconcileKeyObjects(inToken, [inToken[0].uri, ghost, 'garbage']);
    expect(report.orphanObjects.map((k) => `${k.tokenLabel}/${k.label}`)).toEqual([
      'signet/b',
      'signet-ca/root',
      'signet/c',
    ]);
    expect(report.missingObjects).toEqual(['garbage', ghost]);
  });

  it('does not confuse the same id on two tokens', () => {
    const report = reconcileKeyObjects(inToken, [inToken[2].uri]);
    expect(report.orphanObjects.map((k) => k.label)).toEqual(['a', 'b', 'c']);
  });
});
