import { CrlEntry, buildCrl } from '../../src/pki/crl-builder';
import { derToPem } from '../../src/pki/pem-codec';
import { generateSerialNumber } from '../../src/pki/serial-number';
import { KeySpec } from '../../src/pki/key-spec';
import { TestHierarchy, createHierarchy, issueLeaf, openssl, tempDir } from './ca-fixtures';

describe('CRLs checked by the OpenSSL CLI', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());
  const day = 86_400_000;

  describe.each<KeySpec>(['EC-384', 'RSA-3072'])('%s CA hierarchy', (caSpec) => {
    let h: TestHierarchy;
    let revokedLeaf: string;
    let goodLeaf: string;
    let revokedSerial: string;
    let crls: string;
    let issuingCrlDer: Buffer;
    let rootFile: string;
    let issuingFile: string;

    beforeAll(async () => {
      h = await createHierarchy(caSpec);
      const revoked = await issueLeaf(h.issuingIssuer, 'EC-256');
      const good = await issueLeaf(h.issuingIssuer, 'EC-256');
      revokedSerial = revoked.leaf.serialHex;
      revokedLeaf = tmp.file(`${caSpec}-revoked.pem`, revoked.leaf.pem);
      goodLeaf = tmp.file(`${caSpec}-good.pem`, good.leaf.pem);
      rootFile = tmp.file(`${caSpec}-root.pem`, h.root.pem);
      issuingFile = tmp.file(`${caSpec}-issuing.pem`, h.issuing.pem);
      const now = Date.now();
      const entries: CrlEntry[] = [
        {
          serialHex: revokedSerial,
          revokedAt: new Date(now - 3600_000),
          reason: 'keyCompromise',
          invalidityDate: new Date(now - 7200_000),
        },
        { serialHex: generateSerialNumber(), revokedAt: new Date(now - 60_000), reason: 'superseded' },
        { serialHex: generateSerialNumber(), revokedAt: new Date(now - 60_000), reason: 'unspecified' },
      ];
      const issuingCrl = await buildCrl({
        issuer: h.issuingIssuer,
        crlNumber: 42,
        nextUpdate: new Date(now + day),
        entries,
      });
      const rootCrl = await buildCrl({
        issuer: h.rootIssuer,
        crlNumber: 7,
        nextUpdate: new Date(now + day),
        entries: [],
      });
      issuingCrlDer = issuingCrl.der;
      crls = tmp.file(`${caSpec}-crls.pem`, derToPem(issuingCrl.der, 'X509 CRL') + derToPem(rootCrl.der, 'X509 CRL'));
    });

    it('verify -crl_check fails for the revoked leaf and passes for a good one', async () => {
      const revoked = await openssl([
        'verify',
        '-x509_strict',
        '-crl_check',
        '-CRLfile',
        crls,
        '-CAfile',
        rootFile,
        '-untrusted',
        issuingFile,
        revokedLeaf,
      ]);
      expect(revoked.code).not.toBe(0);
      expect(revoked.stdout + revoked.stderr).toMatch(/certificate revoked/);
      const good = await openssl([
        'verify',
        '-x509_strict',
        '-crl_check_all',
        '-CRLfile',
        crls,
        '-CAfile',
        rootFile,
        '-untrusted',
        issuingFile,
        goodLeaf,
      ]);
      expect(good.stderr).toBe('');
      expect(good.code).toBe(0);
    });

    it('crl -text shows cRLNumber, AKI and reason codes (none for unspecified); the signature verifies', async () => {
      const file = tmp.file(`${caSpec}-issuing.crl`, issuingCrlDer);
      const result = await openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text', '-CAfile', issuingFile]);
      expect(result.code).toBe(0);
      expect(result.stderr).toMatch(/verify OK/);
      const text = result.stdout;
      expect(text).toMatch(/Version 2 \(0x1\)/);
      expect(text).toMatch(/X509v3 CRL Number: \s*\n\s+42\n/);
      expect(text).toMatch(/X509v3 Authority Key Identifier:/);
      expect(text).toMatch(/Next Update:/);
      expect(text).toContain(`Serial Number: ${revokedSerial.toUpperCase()}`);
      expect(text).toMatch(/Key Compromise/);
      expect(text).toMatch(/Invalidity Date:/);
      expect(text).toMatch(/Superseded/);
      expect(text.match(/X509v3 CRL Reason Code/g)).toHaveLength(2);
      expect(text).not.toMatch(/Unspecified/);
      // The root must not verify the issuing CA's CRL.
      const wrong = await openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-CAfile', rootFile]);
      expect(wrong.stderr).not.toMatch(/verify OK/);
    });
  });

  it('builds a 100,000-entry CRL that OpenSSL parses completely and verifies', async () => {
    const h = await createHierarchy('EC-384');
    const count = 100_000;
    const reasons = ['keyCompromise', 'superseded', 'cessationOfOperation', 'unspecified', undefined] as const;
    function* entries(): Generator<CrlEntry> {
      const base = Date.now() - 30 * day;
      for (let i = 0; i < count; i++) {
        yield {
          serialHex: generateSerialNumber(),
          revokedAt: new Date(base + i * 1000),
          reason: reasons[i % reasons.length],
        };
      }
    }
    const built = await buildCrl({
      issuer: h.issuingIssuer,
      crlNumber: 100_000,
      nextUpdate: new Date(Date.now() + day),
      entries: entries(),
    });
    expect(built.entryCount).toBe(count);
    const file = tmp.file('big.crl', built.der);
    const issuingFile = tmp.file('big-issuing.pem', h.issuing.pem);
    const result = await openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text', '-CAfile', issuingFile]);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/verify OK/);
    expect(result.stdout.match(/Serial Number: /g)).toHaveLength(count);
    expect(result.stdout.match(/X509v3 CRL Reason Code/g)).toHaveLength((count / reasons.length) * 3);
  });
});
