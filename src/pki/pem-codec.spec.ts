import { PkiError } from './pki-error';
import { derToPem, parsePemBlocks, pemOrDerToDer } from './pem-codec';

describe(derToPem.name, () => {
  it('wraps base64 at 64 columns and round-trips through parsePemBlocks', () => {
    const der = Buffer.from(Array.from({ length: 200 }, (_, i) => i));
    const pem = derToPem(der, 'CERTIFICATE');
    const lines = pem.trimEnd().split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(lines[lines.length - 1]).toBe('-----END CERTIFICATE-----');
    expect(lines.slice(1, -1).every((line) => line.length <= 64)).toBe(true);
    expect(parsePemBlocks(pem + pem)).toEqual([
      { label: 'CERTIFICATE', der },
      { label: 'CERTIFICATE', der },
    ]);
  });
});

describe(parsePemBlocks.name, () => {
  it('rejects text outside blocks and non-base64 bodies', () => {
    const pem = derToPem(Buffer.from('abc'), 'CERTIFICATE');
    expect(() => parsePemBlocks(`junk\n${pem}`)).toThrow(PkiError);
    expect(() => parsePemBlocks(`${pem}trailing`)).toThrow(PkiError);
    expect(() => parsePemBlocks('-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n')).toThrow(PkiError);
  });
});

describe(pemOrDerToDer.name, () => {
  it('passes DER through and requires exactly one block with the label', () => {
    const der = Buffer.from('3003020101', 'hex');
    expect(pemOrDerToDer(der, 'CERTIFICATE')).toBe(der);
    expect(pemOrDerToDer(derToPem(der, 'CERTIFICATE'), 'CERTIFICATE')).toEqual(der);
    expect(pemOrDerToDer(Buffer.from(derToPem(der, 'CERTIFICATE')), 'CERTIFICATE')).toEqual(der);
    expect(() => pemOrDerToDer(derToPem(der, 'X509 CRL'), 'CERTIFICATE')).toThrow(PkiError);
    expect(() => pemOrDerToDer(derToPem(der, 'CERTIFICATE').repeat(2), 'CERTIFICATE')).toThrow(PkiError);
  });
});
