import { decodeSealedEnvelope, encodeSealedEnvelope, sealingAad } from './sealed-envelope';

describe('sealed-envelope', () => {
  const envelope = {
    keyId: Buffer.from('00112233445566778899aabbccddeeff', 'hex'),
    iv: Buffer.alloc(12, 7),
    ciphertext: Buffer.alloc(40, 9),
  };

  it('round-trips key id, IV and ciphertext‖tag behind a version byte', () => {
    const encoded = encodeSealedEnvelope(envelope);
    expect(encoded[0]).toBe(1);
    expect(encoded).toHaveLength(1 + 1 + 16 + 1 + 12 + 40);
    expect(decodeSealedEnvelope(encoded)).toEqual(envelope);
  });

  it.each([
    ['too short', Buffer.from([1, 1])],
    ['unknown version', Buffer.concat([Buffer.from([2]), encodeSealedEnvelope(envelope).subarray(1)])],
    ['truncated key id', Buffer.from([1, 200, 1, 2, 3])],
    ['missing tag', encodeSealedEnvelope({ ...envelope, ciphertext: Buffer.alloc(15) })],
  ])('refuses a %s envelope', (_why, sealed) => {
    expect(() => decodeSealedEnvelope(sealed)).toThrow(/sealed envelope/);
  });

  it('binds version, key id and record id in the additional authenticated data', () => {
    const aad = sealingAad(envelope.keyId, 'target:eu/harbor');
    expect(aad.equals(sealingAad(envelope.keyId, 'target:eu/harbor'))).toBe(true);
    expect(aad.equals(sealingAad(envelope.keyId, 'target:us/harbor'))).toBe(false);
    expect(aad.equals(sealingAad(Buffer.alloc(16), 'target:eu/harbor'))).toBe(false);
    // Length-prefixed key id: moving bytes between key id and record id changes the AAD.
    expect(sealingAad(Buffer.from('ab', 'hex'), 'xy').equals(sealingAad(Buffer.from('ab78', 'hex'), 'y'))).toBe(false);
    expect(() => sealingAad(envelope.keyId, '')).toThrow(/record id/);
  });
});
