import * as crypto from 'node:crypto';
import { PkiError } from './pki-error';

/**
 * Serial numbers.
 *
 * Issued serials are 16 CSPRNG bytes with the first byte forced into 0x40..0x7f: always positive,
 * always exactly 16 DER content octets (no 00 pad, never shortened), 126 random bits.
 *
 * Canonical form everywhere (database, status lookups, logs): lower-case hex of the INTEGER
 * magnitude without leading zeros ("0" for zero). Issued serials are therefore always 32 hex
 * digits. Input (API paths, CLI) is accepted case-insensitively, with leading zeros and with
 * optional ':' separators as OpenSSL prints them.
 */
export const SERIAL_RANDOM_BYTES = 16;
/** RFC 5280 §4.1.2.2: conforming serials fit in 20 octets. */
export const MAX_SERIAL_OCTETS = 20;

export function generateSerialNumber(): string {
  const bytes = crypto.randomBytes(SERIAL_RANDOM_BYTES);
  bytes[0] = (bytes[0] & 0x3f) | 0x40;
  return bytes.toString('hex');
}

export function normalizeSerialHex(input: string, field = 'serial'): string {
  if (typeof input !== 'string' || input.length === 0 || input.length > 128) {
    throw new PkiError('VALIDATION_ERROR', `normalizeSerialHex: '${field}' must be a hexadecimal serial number`, {
      field,
    });
  }
  const compact = input.includes(':') ? input.split(':').join('') : input;
  if (!/^[0-9a-fA-F]+$/.test(compact)) {
    throw new PkiError('VALIDATION_ERROR', `normalizeSerialHex: '${field}' must be a hexadecimal serial number`, {
      field,
    });
  }
  const canonical = compact.toLowerCase().replace(/^0+/, '') || '0';
  if (canonical.length > MAX_SERIAL_OCTETS * 2) {
    throw new PkiError(
      'VALIDATION_ERROR',
      `normalizeSerialHex: '${field}' is longer than ${MAX_SERIAL_OCTETS} octets`,
      { field },
    );
  }
  return canonical;
}

/** DER INTEGER content octets for a (non-negative) serial given in any accepted hex form. */
export function serialHexToIntegerContent(serialHex: string): Buffer {
  const canonical = normalizeSerialHex(serialHex);
  const bytes = Buffer.from(canonical.length % 2 ? '0' + canonical : canonical, 'hex');
  return bytes[0] & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
}

/**
 * Canonical hex from INTEGER content octets. A negative serial (non-conforming external
 * certificate) keeps its two's-complement octets so it still has one stable name.
 */
export function serialHexFromIntegerContent(content: Buffer): string {
  return content.toString('hex').replace(/^0+/, '') || '0';
}
