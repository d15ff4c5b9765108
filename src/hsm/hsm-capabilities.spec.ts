import { KEY_SPECS } from '../pki/key-spec';
import { type HsmCapabilities, describeCapabilities, offeredKeySpec } from './hsm-capabilities';

const everything: HsmCapabilities = { keySpecs: [...KEY_SPECS], missing: {} };
const noEc: HsmCapabilities = {
  keySpecs: ['RSA-2048', 'RSA-3072', 'RSA-4096'],
  missing: { 'EC-256': ['CKM_EC_KEY_PAIR_GEN', 'CKM_ECDSA'], sealing: ['CKM_AES_GCM'] },
};

describe('offeredKeySpec', () => {
  it('keeps the preferred spec when the token of the role offers it', () => {
    expect(offeredKeySpec({ tokens: [{ role: 'signing+ca', capabilities: everything }] }, 'EC-384', 'ca')).toBe(
      'EC-384',
    );
  });

  it('falls back to RSA-3072 when the token of the role has no EC', () => {
    expect(offeredKeySpec({ tokens: [{ role: 'signing+ca', capabilities: noEc }] }, 'EC-384', 'ca')).toBe('RSA-3072');
  });

  it('asks the CA token for CA keys and the signing token for signing keys', () => {
    const health = {
      tokens: [
        { role: 'signing', capabilities: everything },
        { role: 'ca', capabilities: noEc },
      ],
    };
    expect(offeredKeySpec(health, 'EC-256', 'signing')).toBe('EC-256');
    expect(offeredKeySpec(health, 'EC-256', 'ca')).toBe('RSA-3072');
  });

  it('keeps the preferred spec when nothing was probed', () => {
    expect(offeredKeySpec({ tokens: [{ role: 'signing+ca' }] }, 'EC-256', 'signing')).toBe('EC-256');
  });
});

describe('describeCapabilities', () => {
  it('names the key specs and, for each missing feature, the missing mechanisms', () => {
    expect(describeCapabilities('t', noEc)).toBe(
      "token 't': key specs RSA-2048, RSA-3072, RSA-4096; unavailable: EC-256 (missing CKM_EC_KEY_PAIR_GEN, CKM_ECDSA); sealing (missing CKM_AES_GCM)",
    );
    expect(describeCapabilities('t', everything)).toBe(
      "token 't': key specs EC-256, EC-384, EC-521, RSA-2048, RSA-3072, RSA-4096",
    );
  });
});
