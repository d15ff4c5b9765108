import * as asn1js from 'asn1js';
import { derLength, generalizedTime, oid, smallInteger, tlvOf, unsignedInteger, utcTime, x509Time } from './der-writer';

/** asn1js decodes what we encode, as an independent check. */
function decode(der: Buffer): asn1js.AsnType {
  const parsed = asn1js.fromBER(new Uint8Array(der));
  expect(parsed.offset).toBe(der.length);
  return parsed.result;
}

describe('der-writer', () => {
  it.each([0, 1, 127, 128, 255, 256, 65535, 65536, 5_000_000])('encodes length %d minimally', (length) => {
    const encoded = tlvOf(0x04, [Buffer.alloc(length)]);
    const element = decode(encoded) as asn1js.OctetString;
    expect(element.valueBlock.valueHexView.length).toBe(length);
    expect(derLength(length).length).toBe(length < 128 ? 1 : 1 + Math.ceil(Math.log2(length + 1) / 8));
  });

  it('encodes unsigned integers minimally with a sign octet when needed', () => {
    expect(unsignedInteger(Buffer.from('00007f', 'hex')).toString('hex')).toBe('02017f');
    expect(unsignedInteger(Buffer.from('80', 'hex')).toString('hex')).toBe('02020080');
    expect(unsignedInteger(Buffer.alloc(3)).toString('hex')).toBe('020100');
    expect((decode(smallInteger(123456789n)) as asn1js.Integer).toBigInt()).toBe(123456789n);
  });

  it.each([
    '1.2.840.10045.4.3.3',
    '2.5.29.37.0',
    '1.3.6.1.5.5.7.48.1.2',
    '2.16.840.1.101.3.4.2.1',
    '1.3.6.1.4.1.311.60.2.1.3',
  ])('encodes OID %s', (dotted) => {
    expect((decode(oid(dotted)) as asn1js.ObjectIdentifier).getValue()).toBe(dotted);
  });

  it('writes whole-second UTCTime before 2050 and GeneralizedTime from 2050, without fractions', () => {
    const date = new Date('2049-12-31T23:59:59.999Z');
    expect(utcTime(date).subarray(2).toString()).toBe('491231235959Z');
    expect(x509Time(date)[0]).toBe(0x17);
    const later = new Date('2050-01-01T00:00:00.500Z');
    expect(x509Time(later)[0]).toBe(0x18);
    expect(generalizedTime(later).subarray(2).toString()).toBe('20500101000000Z');
  });
});
