import { DomainError, ErrorCode } from '../common/errors';
import { formatPkcs11Uri, keyIdentity, parsePkcs11Uri } from './pkcs11-uri';

describe('pkcs11-uri', () => {
  it('formats token, id and object label, percent-encoding the binary id', () => {
    expect(formatPkcs11Uri({ token: 'signet', id: Buffer.from([0x01, 0xab]), object: 'release v3' })).toBe(
      'pkcs11:token=signet;id=%01%ab;object=release%20v3',
    );
  });

  it('round-trips labels with reserved and non-ASCII characters', () => {
    const ref = { token: 'CA;token=x?y', id: Buffer.from('00ff10', 'hex'), object: 'clé/ü&=' };
    expect(parsePkcs11Uri(formatPkcs11Uri(ref))).toEqual(ref);
  });

  it('parses RFC 7512 examples, including upper-case escapes and an object type', () => {
    expect(
      parsePkcs11Uri('pkcs11:token=Software%20PKCS%2311%20softtoken;id=%69%95%3E%5C;object=my-key;type=private'),
    ).toEqual({
      token: 'Software PKCS#11 softtoken',
      id: Buffer.from([0x69, 0x95, 0x3e, 0x5c]),
      object: 'my-key',
      type: 'private',
    });
  });

  it.each([
    ['not-a-uri', "must start with 'pkcs11:'"],
    ['pkcs11:object=a', "'token' is required"],
    ['pkcs11:token=t', "'id' is required"],
    ['pkcs11:token=t;id=%zz', 'bad percent-encoding'],
    ['pkcs11:token=t;id=%01;token=u', "duplicate attribute 'token'"],
    ['pkcs11:token=t;id=%01;flavour=x', "unknown attribute 'flavour'"],
    ['pkcs11:token=t;id=%01;type=banana', "unknown type 'banana'"],
    ['pkcs11:token=t;id=%01?pin-value=1234', "'pin-value' is not accepted"],
    ['pkcs11:token=t;id=%01?pin-source=file:/etc/pin', "'pin-source' is not accepted"],
    ['pkcs11:token=t;id=%01?module-path=/tmp/evil.so', "'module-path' is not accepted"],
  ])('refuses %s (%s) with VALIDATION_ERROR', (uri, why) => {
    let error: unknown;
    try {
      parsePkcs11Uri(uri);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ code: ErrorCode.VALIDATION_ERROR, message: expect.stringContaining(why) });
  });

  it('never echoes the query (it may hold a PIN) and bounds what it echoes', () => {
    expect(() => parsePkcs11Uri('pkcs11:token=t;id=%01?pin-value=4711')).toThrow(
      "pkcs11 uri 'pkcs11:token=t;id=%01': 'pin-value' is not accepted",
    );
    expect(() => parsePkcs11Uri('pkcs11:token=t;id=%01?pin-value=4711')).not.toThrow(/4711/);
    expect(() => parsePkcs11Uri(`pkcs11:token=t;object=${'x'.repeat(300)}`)).toThrow(/x…'/);
  });

  it('identifies a key by token and id only, whatever the spelling', () => {
    const a = parsePkcs11Uri('pkcs11:token=t;id=%0A%0b;object=one');
    const b = parsePkcs11Uri('pkcs11:id=%0a%0B;token=t');
    expect(keyIdentity(a)).toBe(keyIdentity(b));
    expect(keyIdentity(a)).not.toBe(keyIdentity({ token: 'u', id: a.id }));
  });
});
