/**
 * thisUpdate and nextUpdate of a DER CRL (RFC 5280 §5.1), read in the browser from the public
 * /pki/{generation}.crl: the Overview shows what verifiers actually download, not a database column.
 *   CertificateList ::= SEQUENCE { tbsCertList SEQUENCE { version INTEGER OPTIONAL, signature
 *   AlgorithmIdentifier, issuer Name, thisUpdate Time, nextUpdate Time OPTIONAL, … }, … }
 */
interface Tlv {
  tag: number;
  start: number;
  end: number;
}

function readTlv(der: Uint8Array, offset: number): Tlv {
  if (offset + 2 > der.length) throw new Error('CRL: truncated DER');
  const tag = der[offset];
  let length = der[offset + 1];
  let start = offset + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4) throw new Error('CRL: unsupported DER length');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i];
    start += bytes;
  }
  if (start + length > der.length) throw new Error('CRL: truncated DER');
  return { tag, start, end: start + length };
}

function readTime(der: Uint8Array, tlv: Tlv): Date {
  const text = String.fromCharCode(...der.subarray(tlv.start, tlv.end));
  const m = tlv.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : tlv.tag === 0x18 ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text) : null;
  if (!m) throw new Error('CRL: expected a UTCTime or GeneralizedTime');
  // RFC 5280: UTCTime years 50..99 are 19xx, 00..49 are 20xx.
  const year = tlv.tag === 0x17 ? (Number(m[1]) >= 50 ? 1900 : 2000) + Number(m[1]) : Number(m[1]);
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

export function crlDates(der: Uint8Array): { thisUpdate: Date; nextUpdate: Date | null } {
  const outer = readTlv(der, 0);
  if (outer.tag !== 0x30) throw new Error('CRL: not a SEQUENCE');
  const tbs = readTlv(der, outer.start);
  if (tbs.tag !== 0x30) throw new Error('CRL: tbsCertList is not a SEQUENCE');
  let field = readTlv(der, tbs.start);
  if (field.tag === 0x02) field = readTlv(der, field.end); // version
  const issuer = readTlv(der, field.end); // field was the signature AlgorithmIdentifier
  const thisUpdateTlv = readTlv(der, issuer.end);
  const thisUpdate = readTime(der, thisUpdateTlv);
  if (thisUpdateTlv.end >= tbs.end) return { thisUpdate, nextUpdate: null };
  const next = readTlv(der, thisUpdateTlv.end);
  return { thisUpdate, nextUpdate: next.tag === 0x17 || next.tag === 0x18 ? readTime(der, next) : null };
}
