/**
 * Binary envelope of a secret sealed with AES-256-GCM in the token:
 *
 *   0x01 | keyIdLength | keyId (CKA_ID of the sealing key) | ivLength | iv | ciphertext ‖ tag
 *
 * The key id lets old records be opened after the sealing key rotates; the IV travels with the
 * ciphertext because some HSMs generate it themselves. The additional authenticated data binds
 * the format version, the key id and the record's id, so a sealed value copied onto another record
 * (or re-labelled with another key id) fails to open.
 */
export const SEALED_ENVELOPE_VERSION = 1;
export const GCM_TAG_LENGTH = 16;
const AAD_CONTEXT = Buffer.from('signet/sealed-secret/v1\u0000', 'utf8');
const MAX_RECORD_ID_BYTES = 1024;

export interface SealedEnvelope {
  keyId: Buffer;
  iv: Buffer;
  /** Ciphertext followed by the 16-byte GCM tag, as PKCS#11 returns it. */
  ciphertext: Buffer;
}

export function encodeSealedEnvelope(envelope: SealedEnvelope): Buffer {
  const { keyId, iv, ciphertext } = envelope;
  if (keyId.length === 0 || keyId.length > 255) throw new Error('sealed envelope: key id must be 1..255 bytes');
  if (iv.length === 0 || iv.length > 255) throw new Error('sealed envelope: iv must be 1..255 bytes');
  return Buffer.concat([
    Buffer.from([SEALED_ENVELOPE_VERSION, keyId.length]),
    keyId,
    Buffer.from([iv.length]),
    iv,
    ciphertext,
  ]);
}

export function decodeSealedEnvelope(sealed: Buffer): SealedEnvelope {
  if (!Buffer.isBuffer(sealed) || sealed.length < 3) throw new Error('sealed envelope: too short');
  if (sealed[0] !== SEALED_ENVELOPE_VERSION) throw new Error(`sealed envelope: unknown version ${sealed[0]}`);
  const keyIdLength = sealed[1];
  const ivLengthOffset = 2 + keyIdLength;
  if (keyIdLength === 0 || sealed.length <= ivLengthOffset) throw new Error('sealed envelope: truncated key id');
  const ivLength = sealed[ivLengthOffset];
  const ciphertextOffset = ivLengthOffset + 1 + ivLength;
  if (ivLength === 0 || sealed.length < ciphertextOffset + GCM_TAG_LENGTH)
    throw new Error('sealed envelope: truncated');
  return {
    keyId: sealed.subarray(2, ivLengthOffset),
    iv: sealed.subarray(ivLengthOffset + 1, ciphertextOffset),
    ciphertext: sealed.subarray(ciphertextOffset),
  };
}

export function sealingAad(keyId: Buffer, recordId: string): Buffer {
  const record = Buffer.from(recordId, 'utf8');
  if (record.length === 0 || record.length > MAX_RECORD_ID_BYTES)
    throw new Error(`record id must be 1..${MAX_RECORD_ID_BYTES} bytes`);
  return Buffer.concat([AAD_CONTEXT, Buffer.from([SEALED_ENVELOPE_VERSION, keyId.length]), keyId, record]);
}
