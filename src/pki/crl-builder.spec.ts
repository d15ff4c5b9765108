import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as asn1js from 'asn1js';
import * as x509 from '@peculiar/x509';
import { PkiError } from './pki-error';
import { TestHierarchy, createHierarchy } from '../../test/ca/ca-fixtures';
import { CrlEntry, buildCrl } from './crl-builder';
import { enumerated, extension, generalizedTime, sequence, unsignedInteger, x509Time } from './der-writer';
import { REASON_CODES } from './revocation-reasons';
import { generateSerialNumber, normalizeSerialHex } from './serial-number';

const REASON_CODE = '2.5.29.21';
const INVALIDITY_DATE = '2.5.29.24';
const CRL_NUMBER = '2.5.29.20';

/** The TBSCertList bytes exactly as received (asn1js keeps the undecoded view). */
function rawTbs(der: Buffer): Uint8Array {
  const outer = asn1js.fromBER(new Uint8Array(der)).result as asn1js.Sequence;
  return outer.valueBlock.value[0].valueBeforeDecodeView;
}

/** Verifies with Node crypto over the TBS as found in the DER, independent of our reader. */
function verifyCrl(der: Buffer, publicKey: crypto.KeyObject, rsaPss = false): boolean {
  const crl = new x509.X509Crl(der);
  const tbs = Buffer.from(rawTbs(der));
  const signature = Buffer.from(crl.signature);
  const hash = (crl.signatureAlgorithm as { hash: { name: string } }).hash.name.replace('SHA-', 'sha');
  if (rsaPss)
    return crypto.verify(
      hash,
      tbs,
      { key: publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(hash.slice(3)) / 8 },
      signature,
    );
  return crypto.verify(hash, tbs, publicKey, signature);
}

describe(buildCrl.name, () => {
  let h: TestHierarchy;
  beforeAll(async () => {
    h = await createHierarchy('EC-384');
  });

  it('builds a signed v2 CRL with cRLNumber, AKI, thisUpdate/nextUpdate and per-entry reason and invalidityDate', async () => {
    const thisUpdate = new Date('2030-03-01T10:00:00.400Z');
    const nextUpdate = new Date('2030-03-02T10:00:00Z');
    const entries: CrlEntry[] = [
      {
        serialHex: '7A00000000000000000000000000000001',
        revokedAt: new Date('2030-02-01T00:00:00Z'),
        reason: 'keyCompromise',
        invalidityDate: new Date('2030-01-31T12:00:00Z'),
      },
      { serialHex: '00ff', revokedAt: new Date('2030-02-02T00:00:00Z'), reason: 'unspecified' },
      { serialHex: '42', revokedAt: new Date('2030-02-03T00:00:00Z') },
      { serialHex: 'abcdef', revokedAt: new Date('2030-02-04T00:00:00Z'), reason: 'cessationOfOperation' },
    ];
    const built = await buildCrl({
      issuer: h.issuingIssuer,
      crlNumber: 1234567890123n,
      thisUpdate,
      nextUpdate,
      entries,
    });
    expect(built.entryCount).toBe(4);
    expect(built.thisUpdate.toISOString()).toBe('2030-03-01T10:00:00.000Z');

    const crl = new x509.X509Crl(built.der);
    expect(crl.version).toBe(1); // v2
    expect(crl.issuer).toBe(new x509.X509Certificate(h.issuing.der).subject);
    expect(crl.thisUpdate.toISOString()).toBe('2030-03-01T10:00:00.000Z');
    expect(crl.nextUpdate!.toISOString()).toBe('2030-03-02T10:00:00.000Z');
    expect(verifyCrl(built.der, h.issuingSigner.publicKey)).toBe(true);
    expect(verifyCrl(built.der, h.rootSigner.publicKey)).toBe(false);

    const aki = crl.getExtension(x509.AuthorityKeyIdentifierExtension)!;
    expect(aki.keyId).toBe(
      new x509.X509Certificate(h.issuing.der).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
    );
    const crlNumber = crl.getExtension(CRL_NUMBER)!;
    expect(crlNumber.critical).toBe(false);
    expect(Buffer.from(crlNumber.value).toString('hex')).toBe(
      '02' + '06' + (1234567890123).toString(16).padStart(12, '0'),
    );

    const [first, second, third, fourth] = crl.entries;
    expect(first.serialNumber).toBe('7a00000000000000000000000000000001');
    expect(first.revocationDate.toISOString()).toBe('2030-02-01T00:00:00.000Z');
    expect(first.reason).toBe(x509.X509CrlReason.keyCompromise);
    expect(first.invalidity!.toISOString()).toBe('2030-01-31T12:00:00.000Z');
    // 0x00ff is written as the positive INTEGER 00 ff.
    expect(second.serialNumber).toBe('ff');
    // 'unspecified' and no reason both leave reasonCode out (RFC 5280 §5.3.1).
    expect(second.extensions.map((e) => e.type)).toEqual([]);
    expect(third.extensions).toEqual([]);
    expect(fourth.reason).toBe(x509.X509CrlReason.cessationOfOperation);
    expect(fourth.extensions.map((e) => e.type)).toEqual([REASON_CODE]);
    expect(first.extensions.map((e) => e.type)).toEqual([REASON_CODE, INVALIDITY_DATE]);
  });

  it('writes entries byte-for-byte as the generic DER encoder would (serial padding, UTC/Generalized time, extensions)', async () => {
    const reasons = [
      'keyCompromise',
      'caCompromise',
      'affiliationChanged',
      'superseded',
      'cessationOfOperation',
      'unspecified',
      undefined,
    ] as const;
    const dates = [
      new Date('2049-12-31T23:59:59Z'),
      new Date('2050-01-01T00:00:00Z'),
      new Date('1949-06-01T12:00:00Z'),
      new Date('2031-02-03T04:05:06.789Z'),
    ];
    const entries: CrlEntry[] = [];
    for (let i = 0; i < 300; i++) {
      const serial = crypto.randomBytes(1 + (i % 20));
      entries.push({
        serialHex: (i % 3 === 0 ? '00' : '') + serial.toString('hex').slice(i % 2), // odd lengths, leading zeros, high bits
        revokedAt: dates[i % dates.length],
        reason: reasons[i % reasons.length],
        invalidityDate: i % 4 === 0 ? dates[(i + 1) % dates.length] : undefined,
      });
    }
    const unique = entries.filter(
      (e, i) => entries.findIndex((o) => normalizeSerialHex(o.serialHex) === normalizeSerialHex(e.serialHex)) === i,
    );
    const built = await buildCrl({
      issuer: h.issuingIssuer,
      crlNumber: 9,
      nextUpdate: new Date('2099-01-01'),
      thisUpdate: new Date('2030-01-01'),
      entries: unique,
    });
    const expected = sequence(
      ...unique.map((e) => {
        const extensions = [];
        if (e.reason && e.reason !== 'unspecified')
          extensions.push(extension('2.5.29.21', false, enumerated(REASON_CODES[e.reason])));
        if (e.invalidityDate) extensions.push(extension('2.5.29.24', false, generalizedTime(e.invalidityDate)));
        const magnitude = Buffer.from(
          normalizeSerialHex(e.serialHex).padStart(
            normalizeSerialHex(e.serialHex).length + (normalizeSerialHex(e.serialHex).length % 2),
            '0',
          ),
          'hex',
        );
        return sequence(
          unsignedInteger(magnitude),
          x509Time(e.revokedAt),
          ...(extensions.length ? [sequence(...extensions)] : []),
        );
      }),
    );
    const tbs = asn1js.fromBER(rawTbs(built.der)).result as asn1js.Sequence;
    expect(Buffer.from(tbs.valueBlock.value[5].valueBeforeDecodeView)).toEqual(expected);
  });

  it('omits revokedCertificates when nothing is revoked', async () => {
    const built = await buildCrl({
      issuer: h.rootIssuer,
      crlNumber: 1,
      nextUpdate: new Date(Date.now() + 3600_000),
      entries: [],
    });
    const crl = new x509.X509Crl(built.der);
    expect(crl.entries).toEqual([]);
    expect(verifyCrl(built.der, h.rootSigner.publicKey)).toBe(true);
    // TBS: version, algorithm, issuer, thisUpdate, nextUpdate, [0] extensions — no empty SEQUENCE.
    const tbs = asn1js.fromBER(rawTbs(built.der)).result as asn1js.Sequence;
    expect(tbs.valueBlock.value).toHaveLength(6);
    expect(tbs.valueBlock.value[5].idBlock).toMatchObject({ tagClass: 3, tagNumber: 0 });
  });

  it('reads entries from an async iterator (database cursor)', async () => {
    async function* cursor(): AsyncGenerator<CrlEntry> {
      for (let i = 0; i < 250; i++)
        yield { serialHex: generateSerialNumber(), revokedAt: new Date(), reason: 'superseded' };
    }
    const built = await buildCrl({
      issuer: h.issuingIssuer,
      crlNumber: 2,
      nextUpdate: new Date(Date.now() + 3600_000),
      entries: cursor(),
    });
    expect(new x509.X509Crl(built.der).entries).toHaveLength(250);
    expect(built.entryCount).toBe(250);
  });

  it('signs RSA CRLs with RSASSA-PSS by default', async () => {
    const rsa = await createHierarchy('RSA-2048');
    const built = await buildCrl({
      issuer: rsa.issuingIssuer,
      crlNumber: 3,
      nextUpdate: new Date(Date.now() + 3600_000),
      entries: [{ serialHex: '01', revokedAt: new Date() }],
    });
    expect(new x509.X509Crl(built.der).signatureAlgorithm).toMatchObject({ name: 'RSA-PSS', saltLength: 32 });
    expect(verifyCrl(built.der, rsa.issuingSigner.publicKey, true)).toBe(true);
  });

  it.each<[string, Partial<Parameters<typeof buildCrl>[0]>, string]>([
    [
      'nextUpdate before thisUpdate',
      { thisUpdate: new Date('2030-01-02'), nextUpdate: new Date('2030-01-01') },
      'nextUpdate',
    ],
    ['negative cRLNumber', { crlNumber: -1 }, 'crlNumber'],
    [
      'a duplicated serial',
      {
        entries: [
          { serialHex: '0a', revokedAt: new Date() },
          { serialHex: 'A', revokedAt: new Date() },
        ],
      },
      'entries[1].serialHex',
    ],
    ['a bad serial', { entries: [{ serialHex: 'zz', revokedAt: new Date() }] }, 'entries[0].serialHex'],
    [
      'a bad reason',
      { entries: [{ serialHex: '01', revokedAt: new Date(), reason: 'certificateHold' as never }] },
      'entries[0].reason',
    ],
    ['a bad date', { entries: [{ serialHex: '01', revokedAt: new Date('nope') }] }, 'entries[0].revokedAt'],
  ])('rejects %s', async (_label, override, field) => {
    const params = {
      issuer: h.issuingIssuer,
      crlNumber: 1,
      nextUpdate: new Date(Date.now() + 3600_000),
      entries: [] as CrlEntry[],
      ...override,
    };
    const error = await buildCrl(params).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PkiError);
    expect((error as PkiError).code).toBe('VALIDATION_ERROR');
    expect((error as PkiError).details?.field).toBe(field);
  });
});
