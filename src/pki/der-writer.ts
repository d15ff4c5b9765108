/**
 * Minimal DER encoder. CRLs and OCSP responses are assembled with it directly: a generic ASN.1
 * object model costs far too much per entry for 100,000-entry CRLs, and direct assembly keeps
 * every byte (time formats, omitted defaults) under our control.
 */

const oidCache = new Map<string, Buffer>();

export function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Tag-length-value with a single-octet tag; content parts are concatenated. */
export function tlv(tag: number, ...content: Buffer[]): Buffer {
  return tlvOf(tag, content);
}

/** Like `tlv` for a content list of any length (no argument spreading), copied once into place. */
export function tlvOf(tag: number, content: readonly Buffer[]): Buffer {
  let length = 0;
  for (const part of content) length += part.length;
  const lengthSize = derLengthSize(length);
  const out = Buffer.allocUnsafe(1 + lengthSize + length);
  out[0] = tag;
  if (lengthSize === 1) out[1] = length;
  else {
    out[1] = 0x80 | (lengthSize - 1);
    for (let i = lengthSize - 1, n = length; i >= 1; i--, n = Math.floor(n / 256)) out[1 + i] = n & 0xff;
  }
  let offset = 1 + lengthSize;
  for (const part of content) offset += part.copy(out, offset);
  return out;
}

export function derLengthSize(length: number): number {
  if (length < 0x80) return 1;
  let size = 1;
  for (let n = length; n > 0; n = Math.floor(n / 256)) size++;
  return size;
}

export const sequence = (...content: Buffer[]): Buffer => tlv(0x30, ...content);
export const set = (...content: Buffer[]): Buffer => tlv(0x31, ...content);
export const octetString = (value: Buffer): Buffer => tlv(0x04, value);
export const derNull = (): Buffer => Buffer.from([0x05, 0x00]);
export const boolean = (value: boolean): Buffer => Buffer.from([0x01, 0x01, value ? 0xff : 0x00]);
/** [n] EXPLICIT: constructed context-specific wrapper. */
export const explicit = (tagNumber: number, ...content: Buffer[]): Buffer => tlv(0xa0 | tagNumber, ...content);
/** [n] IMPLICIT over a primitive type. */
export const implicitPrimitive = (tagNumber: number, content: Buffer): Buffer => tlv(0x80 | tagNumber, content);
/** [n] IMPLICIT over a constructed type (SEQUENCE contents). */
export const implicitConstructed = (tagNumber: number, ...content: Buffer[]): Buffer =>
  tlv(0xa0 | tagNumber, ...content);

export function bitString(value: Buffer, unusedBits = 0): Buffer {
  return tlv(0x03, Buffer.from([unusedBits]), value);
}

/** INTEGER from unsigned big-endian magnitude bytes: strips leading zeros, adds 00 when the top bit is set. */
export function unsignedInteger(magnitude: Buffer): Buffer {
  return tlv(0x02, unsignedIntegerContent(magnitude));
}

export function unsignedIntegerContent(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.length === 0 ? Buffer.from([0]) : magnitude.subarray(start);
  return trimmed[0] & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed;
}

export function smallInteger(value: number | bigint): Buffer {
  const big = BigInt(value);
  if (big < 0n) throw new RangeError('smallInteger: negative values are not supported');
  const hex = big.toString(16);
  return unsignedInteger(Buffer.from(hex.length % 2 ? '0' + hex : hex, 'hex'));
}

export function enumerated(value: number): Buffer {
  if (value < 0 || value > 127) throw new RangeError('enumerated: value out of range');
  return Buffer.from([0x0a, 0x01, value]);
}

export function oid(dotted: string): Buffer {
  const cached = oidCache.get(dotted);
  if (cached) return cached;
  const arcs = dotted.split('.').map((arc) => BigInt(arc));
  const body: number[] = [];
  const first = arcs[0] * 40n + arcs[1];
  for (const arc of [first, ...arcs.slice(2)]) {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let rest = arc >> 7n; rest > 0n; rest >>= 7n) chunk.unshift(Number(rest & 0x7fn) | 0x80);
    body.push(...chunk);
  }
  const encoded = tlv(0x06, Buffer.from(body));
  oidCache.set(dotted, encoded);
  return encoded;
}

export const utf8String = (value: string): Buffer => tlv(0x0c, Buffer.from(value, 'utf8'));
export const printableString = (value: string): Buffer => tlv(0x13, Buffer.from(value, 'ascii'));
export const ia5String = (value: string): Buffer => tlv(0x16, Buffer.from(value, 'ascii'));

const pad2 = (n: number): string => (n < 10 ? '0' : '') + n;

/** UTCTime YYMMDDHHMMSSZ (whole seconds; RFC 5280 for dates before 2050). */
export function utcTime(date: Date): Buffer {
  const year = date.getUTCFullYear();
  const text =
    pad2(year % 100) +
    pad2(date.getUTCMonth() + 1) +
    pad2(date.getUTCDate()) +
    pad2(date.getUTCHours()) +
    pad2(date.getUTCMinutes()) +
    pad2(date.getUTCSeconds()) +
    'Z';
  return tlv(0x17, Buffer.from(text, 'ascii'));
}

/** GeneralizedTime YYYYMMDDHHMMSSZ without fractional seconds (RFC 5280; Go's parser rejects fractions). */
export function generalizedTime(date: Date): Buffer {
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new RangeError('generalizedTime: year out of range');
  const text =
    String(year).padStart(4, '0') +
    pad2(date.getUTCMonth() + 1) +
    pad2(date.getUTCDate()) +
    pad2(date.getUTCHours()) +
    pad2(date.getUTCMinutes()) +
    pad2(date.getUTCSeconds()) +
    'Z';
  return tlv(0x18, Buffer.from(text, 'ascii'));
}

/** X.509 Time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
export function x509Time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  return year >= 1950 && year < 2050 ? utcTime(date) : generalizedTime(date);
}

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }. */
export function extension(extnId: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? sequence(oid(extnId), boolean(true), octetString(value))
    : sequence(oid(extnId), octetString(value));
}
