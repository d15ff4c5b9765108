import { PkiError } from './pki-error';
import {
  generateSerialNumber,
  normalizeSerialHex,
  serialHexFromIntegerContent,
  serialHexToIntegerContent,
} from './serial-number';

describe(normalizeSerialHex.name, () => {
  it.each([
    ['4A3F00', '4a3f00'],
    ['004a3f00', '4a3f00'],
    ['0000', '0'],
    ['4a:3f:00', '4a3f00'],
    ['00:8F', '8f'],
  ])('normalises %s to %s', (input, expected) => {
    expect(normalizeSerialHex(input)).toBe(expected);
  });

  it.each(['', 'xyz', '4a 3f', '-1', '0x4a', 'a'.repeat(41)])(
    'rejects %j with VALIDATION_ERROR naming the field',
    (input) => {
      try {
        normalizeSerialHex(input, 'serial');
        throw new Error('expected a PkiError');
      } catch (error) {
        expect(error).toBeInstanceOf(PkiError);
        expect((error as PkiError).code).toBe('VALIDATION_ERROR');
        expect((error as PkiError).details).toEqual({ field: 'serial' });
      }
    },
  );

  it('accepts leading zeros beyond 20 octets as long as the value fits', () => {
    expect(normalizeSerialHex('00'.repeat(10) + '7f'.repeat(20))).toBe('7f'.repeat(20));
  });
});

describe(generateSerialNumber.name, () => {
  it('produces 32 hex digits whose first octet is 0x40..0x7f (positive, never shortened)', () => {
    for (let i = 0; i < 200; i++) {
      const serial = generateSerialNumber();
      expect(serial).toMatch(/^[4-7][0-9a-f]{31}$/);
      expect(normalizeSerialHex(serial)).toBe(serial);
      expect(serialHexToIntegerContent(serial)).toHaveLength(16);
    }
  });
});

describe('INTEGER content conversion', () => {
  it('adds a 00 octet when the top bit is set and strips it back', () => {
    expect(serialHexToIntegerContent('8f').toString('hex')).toBe('008f');
    expect(serialHexToIntegerContent('7f').toString('hex')).toBe('7f');
    expect(serialHexToIntegerContent('abc').toString('hex')).toBe('0abc');
    expect(serialHexFromIntegerContent(Buffer.from('008f', 'hex'))).toBe('8f');
    expect(serialHexFromIntegerContent(Buffer.from('00', 'hex'))).toBe('0');
  });
});
