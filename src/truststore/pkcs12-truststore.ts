import * as forge from 'node-forge';

/**
 * A PKCS#12 truststore: one unencrypted certBag per certificate with a friendlyName (the alias)
 * and Oracle's trusted-key-usage attribute (without it Java ignores certificate-only entries),
 * and a SHA-256 HMAC over the contents. Built from DER with node-forge's ASN.1 layer (its
 * certificate parser handles RSA keys only; these roots are usually EC).
 *
 * The bundle holds no secret, so the integrity password is the JDK's well-known `changeit`;
 * the MAC salt is derived from the content so one truststore version always yields the same bytes.
 * Check what you downloaded by the truststore digest, not by this MAC.
 */
export const PKCS12_TRUSTSTORE_PASSWORD = 'changeit';
const MAC_ITERATIONS = 2048;

const OID = {
  data: '1.2.840.113549.1.7.1',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  // Java: a certBag carrying this attribute is a trusted certificate entry
  oracleTrustedKeyUsage: '2.16.840.1.113894.746875.1.1',
  anyExtendedKeyUsage: '2.5.29.37.0',
  sha256: '2.16.840.1.101.3.4.2.1',
};

export interface Pkcs12Entry {
  alias: string;
  der: Buffer;
}

const { asn1 } = forge;
const U = asn1.Class.UNIVERSAL;
const T = asn1.Type;

function oid(id: string): forge.asn1.Asn1 {
  return asn1.create(U, T.OID, false, asn1.oidToDer(id).getBytes());
}

function octets(bytes: string): forge.asn1.Asn1 {
  return asn1.create(U, T.OCTETSTRING, false, bytes);
}

function seq(...items: forge.asn1.Asn1[]): forge.asn1.Asn1 {
  return asn1.create(U, T.SEQUENCE, true, items);
}

function explicit0(item: forge.asn1.Asn1): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [item]);
}

function der(item: forge.asn1.Asn1): string {
  return asn1.toDer(item).getBytes();
}

/** DER SET OF: members sorted by their encoding. */
function setOf(items: forge.asn1.Asn1[]): forge.asn1.Asn1 {
  const sorted = items
    .map((item) => ({ item, bytes: der(item) }))
    .sort((a, b) => (a.bytes < b.bytes ? -1 : a.bytes > b.bytes ? 1 : 0));
  return asn1.create(
    U,
    T.SET,
    true,
    sorted.map((s) => s.item),
  );
}

function certBag(entry: Pkcs12Entry): forge.asn1.Asn1 {
  const attributes = setOf([
    // forge encodes a BMPSTRING from a JS string itself (two octets per character)
    seq(oid(OID.friendlyName), setOf([asn1.create(U, T.BMPSTRING, false, entry.alias)])),
    seq(oid(OID.oracleTrustedKeyUsage), setOf([oid(OID.anyExtendedKeyUsage)])),
  ]);
  return seq(
    oid(OID.certBag),
    explicit0(seq(oid(OID.x509Certificate), explicit0(octets(entry.der.toString('binary'))))),
    attributes,
  );
}

export function buildPkcs12Truststore(entries: Pkcs12Entry[], password = PKCS12_TRUSTSTORE_PASSWORD): Buffer {
  const aliases = new Set(entries.map((e) => e.alias));
  if (aliases.size !== entries.length) throw new Error('buildPkcs12Truststore: aliases must be unique');
  const safeContents = seq(...entries.map(certBag));
  const authenticatedSafe = seq(seq(oid(OID.data), explicit0(octets(der(safeContents)))));
  const authSafeBytes = der(authenticatedSafe);

  const salt = forge.md.sha256
    .create()
    .update('signet-pkcs12-mac-salt')
    .update(authSafeBytes)
    .digest()
    .getBytes()
    .slice(0, 16);
  const macKey = forge.pkcs12.generateKey(
    password,
    forge.util.createBuffer(salt),
    3,
    MAC_ITERATIONS,
    32,
    forge.md.sha256.create(),
  );
  const hmac = forge.hmac.create();
  hmac.start(forge.md.sha256.create(), macKey);
  hmac.update(authSafeBytes);
  const macData = seq(
    seq(seq(oid(OID.sha256), asn1.create(U, T.NULL, false, '')), octets(hmac.digest().getBytes())),
    octets(salt),
    asn1.create(U, T.INTEGER, false, asn1.integerToDer(MAC_ITERATIONS).getBytes()),
  );
  const pfx = seq(
    asn1.create(U, T.INTEGER, false, asn1.integerToDer(3).getBytes()),
    seq(oid(OID.data), explicit0(octets(authSafeBytes))),
    macData,
  );
  return Buffer.from(der(pfx), 'binary');
}
