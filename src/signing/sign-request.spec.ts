import { DomainError, ErrorCode } from '../common/errors';
import { KEY_SPEC_INFO } from '../pki/key-spec';
import { checkAgainstKey, decodeBase64Strict, parseSignRequest } from './sign-request';

function codeOf(run: () => unknown): ErrorCode | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    if (error instanceof DomainError) return error.code;
    throw error;
  }
}

const b64 = (bytes: number, fill = 1) => Buffer.alloc(bytes, fill).toString('base64');
const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('parseSignRequest', () => {
  it('accepts the digest form with its defaults', () => {
    const request = parseSignRequest({ digest: b64(32), hashAlgorithm: 'SHA-256' });
    expect(request).toMatchObject({
      mode: 'digest',
      hashAlgorithm: 'SHA-256',
      signatureFormat: 'raw',
      artifact: undefined,
      idempotencyKey: undefined,
    });
    expect(request.bytes).toEqual(Buffer.alloc(32, 1));
  });

  it('accepts the payload form with an artifact, a format and an idempotency key', () => {
    const request = parseSignRequest({
      payload: Buffer.from('hello').toString('base64'),
      hashAlgorithm: 'SHA-384',
      signatureFormat: 'der',
      artifact: { digest: DIGEST, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10 },
      idempotencyKey: 'ci/123',
    });
    expect(request).toMatchObject({
      mode: 'payload',
      signatureFormat: 'der',
      artifact: { digest: DIGEST, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10 },
      idempotencyKey: 'ci/123',
    });
    expect(request.bytes.toString()).toBe('hello');
  });

  it.each([
    ['null', null, ErrorCode.VALIDATION_ERROR],
    ['an array', [], ErrorCode.VALIDATION_ERROR],
    ['a string', 'digest', ErrorCode.VALIDATION_ERROR],
    ['an empty object', {}, ErrorCode.VALIDATION_ERROR],
    ['an unknown field', { digest: b64(32), hashAlgorithm: 'SHA-256', keyId: 'x' }, ErrorCode.VALIDATION_ERROR],
    [
      'a prototype-looking field',
      JSON.parse('{"digest":"AA==","hashAlgorithm":"SHA-256","__proto__":{}}'),
      ErrorCode.VALIDATION_ERROR,
    ],
    ['digest and payload', { digest: b64(32), payload: b64(3), hashAlgorithm: 'SHA-256' }, ErrorCode.VALIDATION_ERROR],
    ['no hashAlgorithm', { digest: b64(32) }, ErrorCode.VALIDATION_ERROR],
    ['a numeric hashAlgorithm', { digest: b64(32), hashAlgorithm: 256 }, ErrorCode.VALIDATION_ERROR],
    ['a numeric digest', { digest: 12, hashAlgorithm: 'SHA-256' }, ErrorCode.VALIDATION_ERROR],
    ['bad base64', { digest: '!!!!', hashAlgorithm: 'SHA-256' }, ErrorCode.INVALID_BASE64],
    ['base64 with whitespace', { digest: `${b64(30)} `, hashAlgorithm: 'SHA-256' }, ErrorCode.INVALID_BASE64],
    ['base64 with non-zero padding bits', { digest: 'AB==', hashAlgorithm: 'SHA-256' }, ErrorCode.INVALID_BASE64],
    ['a huge digest', { digest: 'A'.repeat(8192), hashAlgorithm: 'SHA-256' }, ErrorCode.INVALID_DIGEST_LENGTH],
    ['an empty payload', { payload: '', hashAlgorithm: 'SHA-256' }, ErrorCode.VALIDATION_ERROR],
    ['a payload over 64 KiB', { payload: b64(65537), hashAlgorithm: 'SHA-256' }, ErrorCode.PAYLOAD_TOO_LARGE],
    [
      'an unknown signatureFormat',
      { digest: b64(32), hashAlgorithm: 'SHA-256', signatureFormat: 'jws' },
      ErrorCode.VALIDATION_ERROR,
    ],
    [
      'an empty idempotencyKey',
      { digest: b64(32), hashAlgorithm: 'SHA-256', idempotencyKey: '' },
      ErrorCode.VALIDATION_ERROR,
    ],
    [
      'an idempotencyKey with a space',
      { digest: b64(32), hashAlgorithm: 'SHA-256', idempotencyKey: 'a b' },
      ErrorCode.VALIDATION_ERROR,
    ],
    ['an artifact string', { digest: b64(32), hashAlgorithm: 'SHA-256', artifact: DIGEST }, ErrorCode.VALIDATION_ERROR],
    [
      'an upper-case artifact digest',
      { digest: b64(32), hashAlgorithm: 'SHA-256', artifact: { digest: DIGEST.toUpperCase() } },
      ErrorCode.VALIDATION_ERROR,
    ],
    [
      'a short artifact digest',
      { digest: b64(32), hashAlgorithm: 'SHA-256', artifact: { digest: 'sha256:abcd' } },
      ErrorCode.VALIDATION_ERROR,
    ],
    [
      'an md5 artifact digest',
      { digest: b64(32), hashAlgorithm: 'SHA-256', artifact: { digest: `md5:${'ab'.repeat(16)}` } },
      ErrorCode.VALIDATION_ERROR,
    ],
    [
      'a negative artifact size',
      { digest: b64(32), hashAlgorithm: 'SHA-256', artifact: { digest: DIGEST, size: -1 } },
      ErrorCode.VALIDATION_ERROR,
    ],
    [
      'a bad artifact media type',
      { digest: b64(32), hashAlgorithm: 'SHA-256', artifact: { digest: DIGEST, mediaType: 'not a type' } },
      ErrorCode.VALIDATION_ERROR,
    ],
    [
      'an unknown artifact field',
      { digest: b64(32), hashAlgorithm: 'SHA-256', artifact: { digest: DIGEST, tag: 'v1' } },
      ErrorCode.VALIDATION_ERROR,
    ],
  ])('refuses %s', (_, body, code) => {
    expect(codeOf(() => parseSignRequest(body))).toBe(code);
  });

  it('names unknown fields, cut short, in the details', () => {
    try {
      parseSignRequest({ digest: b64(32), hashAlgorithm: 'SHA-256', ['x'.repeat(200)]: 1 });
      throw new Error('not refused');
    } catch (error) {
      expect((error as DomainError).details?.unknownFields).toEqual([`${'x'.repeat(64)}…`]);
      expect((error as DomainError).message.length).toBeLessThan(200);
    }
  });
});

describe('decodeBase64Strict', () => {
  it('accepts canonical padded base64 only', () => {
    expect(decodeBase64Strict('')).toEqual(Buffer.alloc(0));
    expect(decodeBase64Strict('+/8=')).toEqual(Buffer.from([0xfb, 0xff]));
    expect(decodeBase64Strict('-_8=')).toBeUndefined();
    expect(decodeBase64Strict('+/8')).toBeUndefined();
    expect(decodeBase64Strict('+/9=')).toBeUndefined();
    expect(decodeBase64Strict('+/8=\n')).toBeUndefined();
  });
});

describe('checkAgainstKey', () => {
  const digest = (bytes: number, hashAlgorithm: string, extra: object = {}) =>
    parseSignRequest({ digest: b64(bytes), hashAlgorithm, ...extra });

  it.each(Object.values(KEY_SPEC_INFO).map((info) => [info.spec, info]))('pairs %s with its one hash', (_, info) => {
    const length = { 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 }[info.hash];
    expect(checkAgainstKey(digest(length, info.hash), info)).toBe(info.hash);
    for (const other of ['SHA-256', 'SHA-384', 'SHA-512', 'SHA-1', 'sha256'].filter((h) => h !== info.hash)) {
      expect(codeOf(() => checkAgainstKey(digest(length, other), info))).toBe(ErrorCode.UNSUPPORTED_ALGORITHM);
    }
  });

  it('refuses a digest whose length is not the hash length', () => {
    expect(codeOf(() => checkAgainstKey(digest(31, 'SHA-256'), KEY_SPEC_INFO['EC-256']))).toBe(
      ErrorCode.INVALID_DIGEST_LENGTH,
    );
    expect(codeOf(() => checkAgainstKey(digest(0, 'SHA-256'), KEY_SPEC_INFO['EC-256']))).toBe(
      ErrorCode.INVALID_DIGEST_LENGTH,
    );
    expect(codeOf(() => checkAgainstKey(digest(32, 'SHA-512'), KEY_SPEC_INFO['EC-521']))).toBe(
      ErrorCode.INVALID_DIGEST_LENGTH,
    );
  });

  it('has no length rule for a payload (Signet hashes it)', () => {
    expect(
      checkAgainstKey(parseSignRequest({ payload: b64(5), hashAlgorithm: 'SHA-256' }), KEY_SPEC_INFO['EC-256']),
    ).toBe('SHA-256');
  });

  it('offers der for ECDSA keys only', () => {
    expect(checkAgainstKey(digest(32, 'SHA-256', { signatureFormat: 'der' }), KEY_SPEC_INFO['EC-256'])).toBe('SHA-256');
    expect(
      codeOf(() => checkAgainstKey(digest(32, 'SHA-256', { signatureFormat: 'der' }), KEY_SPEC_INFO['RSA-2048'])),
    ).toBe(ErrorCode.VALIDATION_ERROR);
  });
});
