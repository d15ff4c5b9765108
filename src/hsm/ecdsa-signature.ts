/**
 * ECDSA signature encodings: PKCS#11 (and Notation, JWS) use raw r‖s (IEEE P1363); X.509, CMS
 * and OpenSSL use DER `SEQUENCE { INTEGER r, INTEGER s }`.
 */

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  if (length < 0x100) return Buffer.from([0x81, length]);
  return Buffer.from([0x82, length >> 8, length & 0xff]);
}

function derInteger(unsigned: Buffer): Buffer {
  let start = 0;
  while (start < unsigned.length - 1 && unsigned[start] === 0) start++;
  let value = unsigned.subarray(start);
  if (value[0] & 0x80) value = Buffer.concat([Buffer.from([0]), value]);
  return Buffer.concat([Buffer.from([0x02]), derLength(value.length), value]);
}

export function ecdsaRawToDer(raw: Buffer): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0)
    throw new Error(`ecdsaRawToDer: raw signature length ${raw.length} is not even`);
  const half = raw.length / 2;
  const body = Buffer.concat([derInteger(raw.subarray(0, half)), derInteger(raw.subarray(half))]);
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
}

function readLength(der: Buffer, offset: number): { length: number; next: number } {
  const first = der[offset];
  if (first === undefined) throw new Error('ecdsaDerToRaw: truncated');
  if (first < 0x80) return { length: first, next: offset + 1 };
  const bytes = first & 0x7f;
  if (bytes === 0 || bytes > 2 || offset + 1 + bytes > der.length) throw new Error('ecdsaDerToRaw: bad length');
  let length = 0;
  for (let i = 0; i < bytes; i++) length = (length << 8) | der[offset + 1 + i];
  return { length, next: offset + 1 + bytes };
}

/** `coordinateLength`: 32 (P-256), 48 (P-384), 66 (P-521). */
export function ecdsaDerToRaw(der: Buffer, coordinateLength: number): Buffer {
  if (der[0] !== 0x30) throw new Error('ecdsaDerToRaw: not a SEQUENCE');
  const seq = readLength(der, 1);
  if (seq.next + seq.length !== der.length) throw new Error('ecdsaDerToRaw: trailing or missing bytes');
  const out = Buffer.alloc(coordinateLength * 2);
  let offset = seq.next;
  for (let i = 0; i < 2; i++) {
    if (der[offset] !== 0x02) throw new Error('ecdsaDerToRaw: expected INTEGER');
    const int = readLength(der, offset + 1);
    let value = der.subarray(int.next, int.next + int.length);
    while (value.length > 0 && value[0] === 0) value = value.subarray(1);
    if (value.length > coordinateLength) throw new Error('ecdsaDerToRaw: integer longer than the curve');
    value.copy(out, i * coordinateLength + coordinateLength - value.length);
    offset = int.next + int.length;
  }
  if (offset !== der.length) throw new Error('ecdsaDerToRaw: trailing bytes');
  return out;
}
