import { createPublicKey } from 'node:crypto';
import { KEY_SPEC_INFO, type KeySpec } from '../pki/key-spec';
import { EC_COORDINATE_LENGTH } from './key-templates';

/**
 * CKA_EC_POINT is a DER OCTET STRING around the uncompressed point (PKCS#11 2.40); some modules
 * return the bare point. Accept both, return the bare point.
 */
export function uncompressedPoint(ecPoint: Buffer, coordinateLength: number): Buffer {
  const rawLength = 1 + 2 * coordinateLength;
  if (ecPoint.length === rawLength && ecPoint[0] === 0x04) return ecPoint;
  if (ecPoint[0] === 0x04) {
    let offset = 1;
    let length = ecPoint[offset++];
    if (length & 0x80) {
      const bytes = length & 0x7f;
      length = 0;
      for (let i = 0; i < bytes; i++) length = (length << 8) | ecPoint[offset++];
    }
    const point = ecPoint.subarray(offset, offset + length);
    if (point.length === rawLength && point[0] === 0x04) return point;
  }
  throw new Error(`unexpected CKA_EC_POINT encoding (${ecPoint.length} bytes)`);
}

/** SubjectPublicKeyInfo DER from the public attributes read from the token. */
export function spkiFromEcPoint(spec: KeySpec, ecPoint: Buffer): Buffer {
  const curve = KEY_SPEC_INFO[spec].curve;
  if (!curve) throw new Error(`${spec} is not an EC spec`);
  const size = EC_COORDINATE_LENGTH[curve];
  const point = uncompressedPoint(ecPoint, size);
  const key = createPublicKey({
    key: {
      kty: 'EC',
      crv: curve,
      x: point.subarray(1, 1 + size).toString('base64url'),
      y: point.subarray(1 + size).toString('base64url'),
    },
    format: 'jwk',
  });
  return key.export({ type: 'spki', format: 'der' });
}

export function spkiFromRsa(modulus: Buffer, publicExponent: Buffer): Buffer {
  const key = createPublicKey({
    key: {
      kty: 'RSA',
      n: stripLeadingZeros(modulus).toString('base64url'),
      e: stripLeadingZeros(publicExponent).toString('base64url'),
    },
    format: 'jwk',
  });
  return key.export({ type: 'spki', format: 'der' });
}

function stripLeadingZeros(value: Buffer): Buffer {
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start++;
  return value.subarray(start);
}
