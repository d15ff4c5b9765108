import type { KeyListing, ReconciliationReport } from './key-store';
import { keyIdentity, parsePkcs11Uri } from './pkcs11-uri';

/**
 * Compares the key pairs found in the tokens with the URIs the database references.
 * URIs are compared by (token, CKA_ID), so differences in percent-encoding or in `object=` do not
 * count. A pair whose private key is gone is "missing" even if its public key is still there.
 * Referenced URIs that do not parse are reported as missing rather than thrown: one bad row must
 * not hide the rest of the report.
 */
export function reconcileKeyObjects(
  tokenKeys: readonly KeyListing[],
  referencedKeyUris: Iterable<string>,
): ReconciliationReport {
  const referenced = new Map<string, string>();
  const missingObjects: string[] = [];
  for (const uri of referencedKeyUris) {
    try {
      referenced.set(keyIdentity(parsePkcs11Uri(uri)), uri);
    } catch {
      missingObjects.push(uri);
    }
  }
  const present = new Map<string, KeyListing>();
  for (const key of tokenKeys) present.set(keyIdentity({ token: key.tokenLabel, id: Buffer.from(key.id, 'hex') }), key);

  const orphanObjects = tokenKeys.filter(
    (key) => !referenced.has(keyIdentity({ token: key.tokenLabel, id: Buffer.from(key.id, 'hex') })),
  );
  for (const [identity, uri] of referenced) {
    if (!present.get(identity)?.hasPrivateKey) missingObjects.push(uri);
  }
  return { orphanObjects, missingObjects };
}
