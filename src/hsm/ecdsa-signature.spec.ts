import { generateKeyPairSync, sign, verify } from 'node:crypto';
import fc from 'fast-check';
import { ecdsaDerToRaw, ecdsaRawToDer } from './ecdsa-signature';

describe('ecdsa-signature', () => {
  it.each([
    ['P-256', 32, 'sha256'],
    ['P-384', 48, 'sha384'],
    ['P-521', 66, 'sha512'],
  ] as const)('converts %s signatures both ways exactly as OpenSSL encodes them', (curve, size, hash) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
    for (let i = 0; i < 20; i++) {
      const message = Buffer.from(`message ${i}`);
      const der = sign(hash, message, privateKey);
      const raw = ecdsaDerToRaw(der, size);
      expect(raw).toHaveLength(2 * size);
      expect(ecdsaRawToDer(raw).equals(der)).toBe(true);
      expect(verify(hash, message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, raw)).toBe(true);
    }
  });

  it('round-trips any r‖s, including leading zeros and high bits', () => {
    fc.assert(
      fc.property(fc.constantFrom(32, 48, 66), fc.uint8Array({ minLength: 132, maxLength: 132 }), (size, bytes) => {
        const raw = Buffer.from(bytes.subarray(0, 2 * size));
        raw[0] = 0; // leading zero byte in r
        expect(ecdsaDerToRaw(ecdsaRawToDer(raw), size).equals(raw)).toBe(true);
      }),
    );
  });

  it('rejects malformed input', () => {
    expect(() => ecdsaRawToDer(Buffer.alloc(3))).toThrow(/not even/);
    expect(() => ecdsaDerToRaw(Buffer.from('3006020101020101ff', 'hex'), 32)).toThrow();
    expect(() => ecdsaDerToRaw(Buffer.from('3003020101', 'hex'), 32)).toThrow();
    expect(() => ecdsaDerToRaw(ecdsaRawToDer(Buffer.alloc(134, 0xff)), 66)).toThrow(/longer than the curve/);
  });
});
