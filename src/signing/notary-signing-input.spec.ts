import { encode as encodeCbor } from 'cbor2';
import { notaryCoseSigStructure } from '../../test/signing/support/signing-kit';
import { DomainError, ErrorCode } from '../common/errors';
import { KEY_SPEC_INFO } from '../pki/key-spec';
import { AmbiguousJson, GoJsonObject, JsonSyntaxError, parseGoJson } from './go-json';
import { readNotaryPayload, readNotarySigningInput } from './notary-signing-input';

/** The refusal's code and the start of its reason (to tell which check refused). */
function refusal(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    if (error instanceof DomainError) return `${error.code}: ${error.message.slice(0, 200)}`;
    throw error;
  }
}

function codeOf(run: () => unknown): ErrorCode | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    if (error instanceof DomainError) return error.code;
    throw error;
  }
}

const EC256 = KEY_SPEC_INFO['EC-256'];
const X = `sha256:${'ab'.repeat(32)}`;
const Y = `sha256:${'cd'.repeat(32)}`;
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const b64url = (text: string) => Buffer.from(text, 'utf8').toString('base64url');
const HEADER = JSON.stringify({
  alg: 'ES256',
  crit: ['io.cncf.notary.signingScheme'],
  cty: 'application/vnd.cncf.notary.payload.v1+json',
  'io.cncf.notary.signingScheme': 'notary.x509',
});
const descriptor = (digest: string) => `{"mediaType":"${MANIFEST}","digest":"${digest}","size":528}`;
const jws = (payloadJson: string, headerJson = HEADER) => Buffer.from(`${b64url(headerJson)}.${b64url(payloadJson)}`);
const read = (bytes: Buffer, info = EC256) => readNotarySigningInput(bytes, info);

describe('readNotarySigningInput: JWS signing input', () => {
  it("reads targetArtifact from a Notary signing input whose alg is the key's", () => {
    const payload = JSON.stringify({
      targetArtifact: { mediaType: MANIFEST, digest: X, size: 528, annotations: { a: 'b' } },
    });
    expect(read(jws(payload))).toEqual({
      format: 'jws',
      alg: 'ES256',
      artifact: { digest: X, mediaType: MANIFEST, size: 528 },
    });
    expect(read(jws(payload, HEADER.replace('ES256', 'PS384')), KEY_SPEC_INFO['RSA-3072'])?.artifact?.digest).toBe(X);
  });

  it('refuses a JWS whose alg contradicts the key', () => {
    const payload = `{"targetArtifact":${descriptor(X)}}`;
    expect(codeOf(() => read(jws(payload, HEADER.replace('ES256', 'ES384'))))).toBe(ErrorCode.UNSUPPORTED_ALGORITHM);
    expect(codeOf(() => read(jws(payload, HEADER.replace('ES256', 'none'))))).toBe(ErrorCode.UNSUPPORTED_ALGORITHM);
  });

  it('refuses a malformed targetArtifact, and one without a digest as ARTIFACT_REQUIRED', () => {
    expect(codeOf(() => read(jws(`{"targetArtifact":${descriptor('sha256:xyz')}}`)))).toBe(ErrorCode.VALIDATION_ERROR);
    expect(codeOf(() => read(jws(`{"targetArtifact":{"digest":"${X}"}}`)))).toBe(ErrorCode.VALIDATION_ERROR);
    expect(codeOf(() => read(jws(`{"targetArtifact":{"mediaType":"${MANIFEST}","size":1}}`)))).toBe(
      ErrorCode.ARTIFACT_REQUIRED,
    );
    // Go fails to decode these into the descriptor: Signet must not record an artifact for them.
    for (const bad of [
      '"size":1.0',
      '"size":1e2',
      '"size":-1',
      '"size":"1"',
      '"annotations":{"a":1}',
      '"urls":"x"',
      '"data":"AA=="',
      '"platform":{}',
      '"artifactType":1',
    ]) {
      expect(
        codeOf(() =>
          read(
            jws(
              `{"targetArtifact":{"mediaType":"${MANIFEST}","digest":"${X}",${bad.startsWith('"size"') ? bad : `"size":1,${bad}`}}}`,
            ),
          ),
        ),
      ).toBe(ErrorCode.VALIDATION_ERROR);
    }
  });

  it('treats anything else as opaque bytes, and a JWS without a Notary payload as one without artifact', () => {
    expect(read(Buffer.from('hello world'))).toBeUndefined();
    expect(read(Buffer.from('abc.def'))).toBeUndefined();
    expect(read(jws(`{"targetArtifact":${descriptor(X)}}`, '{"typ":"JWT"}'))).toBeUndefined();
    expect(read(Buffer.from(`${jws(`{"targetArtifact":${descriptor(X)}}`).toString()}.sig`))).toBeUndefined();
    expect(read(jws('{"iss":"x"}'))).toEqual({ format: 'jws', alg: 'ES256' });
    // Not the Notary payload's content type: the payload is not read as one.
    expect(
      read(
        jws(
          `{"targetArtifact":${descriptor(X)}}`,
          HEADER.replace('"cty":"application/vnd.cncf.notary.payload.v1+json",', ''),
        ),
      ),
    ).toEqual({ format: 'jws', alg: 'ES256' });
  });

  it('reads a header with whitespace before its JSON as Go does (it used to be taken as opaque bytes)', () => {
    expect(read(jws(`{"targetArtifact":${descriptor(Y)}}`, ` ${HEADER}`))?.artifact?.digest).toBe(Y);
    expect(read(jws(`\r\n\t {"targetArtifact" : ${descriptor(Y)} }\n`, `${HEADER} `))?.artifact?.digest).toBe(Y);
  });

  it('reads names the way Go matches them: any ASCII case', () => {
    expect(read(jws(`{"TARGETARTIFACT":{"MediaType":"${MANIFEST}","DIGEST":"${Y}","Size":528}}`))?.artifact).toEqual({
      digest: Y,
      mediaType: MANIFEST,
      size: 528,
    });
    expect(
      read(jws(`{"targetArtifact":${descriptor(Y)}}`, HEADER.replace('"alg"', '"ALG"').replace('"cty"', '"Cty"')))
        ?.artifact?.digest,
    ).toBe(Y);
    expect(read(jws(`{"target\\u0041rtifact":${descriptor(Y)}}`))?.artifact?.digest).toBe(Y);
  });

  it('refuses names that fold to one field (Go takes the last one), anywhere in header or payload', () => {
    const cases = [
      `{"targetArtifact":${descriptor(X)},"TargetArtifact":${descriptor(Y)}}`,
      `{"targetArtifact":${descriptor(X)},"targetArtifact":${descriptor(Y)}}`,
      `{"targetArtifact":{"mediaType":"${MANIFEST}","digest":"${X}","Digest":"${Y}","size":528}}`,
      `{"targetArtifact":{"mediaType":"${MANIFEST}","digest":"${X}","size":528,"annotations":{"a":"1","A":"2"}}}`,
      `{"targetArtifact":${descriptor(X)},"other":{"k":1,"K":2}}`,
      `{"targetArtifact":${descriptor(X)},"target\\u0041rtifact":${descriptor(Y)}}`,
    ];
    for (const payload of cases) expect(codeOf(() => read(jws(payload)))).toBe(ErrorCode.AMBIGUOUS_PAYLOAD);
    expect(codeOf(() => read(jws(`{"targetArtifact":${descriptor(X)}}`, HEADER.replace('{', '{"ALG":"ES384",'))))).toBe(
      ErrorCode.AMBIGUOUS_PAYLOAD,
    );
  });

  it('refuses names with characters Go folds to ASCII (ſ → s, K → k), raw or escaped', () => {
    expect(
      codeOf(() => read(jws(`{"targetArtifact":{"mediaType":"${MANIFEST}","digest":"${X}","\u017fize":528}}`))),
    ).toBe(ErrorCode.AMBIGUOUS_PAYLOAD);
    expect(codeOf(() => read(jws(`{"targetArtifact":${descriptor(X)},"targetArtifact\u212a":1}`)))).toBe(
      ErrorCode.AMBIGUOUS_PAYLOAD,
    );
    expect(
      codeOf(() => read(jws(`{"targetArtifact":{"mediaType":"${MANIFEST}","digest":"${X}","\\u017fize":528}}`))),
    ).toBe(ErrorCode.AMBIGUOUS_PAYLOAD);
  });

  it('refuses what Go decodes with substitutions: invalid UTF-8, lone surrogates; and a byte-order mark', () => {
    const bad = Buffer.concat([
      Buffer.from(`{"targetArtifact":${descriptor(X)},"x":"`),
      Buffer.from([0xff]),
      Buffer.from('"}'),
    ]);
    expect(codeOf(() => read(Buffer.from(`${b64url(HEADER)}.${bad.toString('base64url')}`)))).toBe(
      ErrorCode.AMBIGUOUS_PAYLOAD,
    );
    expect(codeOf(() => read(jws(`{"targetArtifact":${descriptor(X)},"x":"\\ud800"}`)))).toBe(
      ErrorCode.AMBIGUOUS_PAYLOAD,
    );
    expect(codeOf(() => read(jws(`{"targetArtifact":${descriptor(X)},"x":"\\udc00\\ud800"}`)))).toBe(
      ErrorCode.AMBIGUOUS_PAYLOAD,
    );
    expect(codeOf(() => read(jws(`{"targetArtifact":${descriptor(X)}}`, `\ufeff${HEADER}`)))).toBe(
      ErrorCode.AMBIGUOUS_PAYLOAD,
    );
    expect(codeOf(() => read(jws(`\ufeff{"targetArtifact":${descriptor(X)}}`)))).toBe(ErrorCode.AMBIGUOUS_PAYLOAD);
  });

  it('refuses non-canonical base64url segments', () => {
    // A payload whose base64url ends with a partial group (it has unused bits).
    const good = ['', ' ', '  ']
      .map((pad) => jws(`{"targetArtifact":${descriptor(X)}}${pad}`).toString())
      .find((text) => text.split('.')[1].length % 4 !== 0)!;
    const [h, p] = good.split('.');
    // Flip the unused low bits of the last character (same bytes to a lenient decoder).
    const last = p[p.length - 1];
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = alphabet[alphabet.indexOf(last) ^ 1];
    expect(p.length % 4).not.toBe(0);
    expect(Buffer.from(`${p.slice(0, -1)}${twin}`, 'base64url')).toEqual(Buffer.from(p, 'base64url'));
    expect(codeOf(() => read(Buffer.from(`${h}.${p.slice(0, -1)}${twin}`)))).toBe(ErrorCode.AMBIGUOUS_PAYLOAD);
  });
});

describe('readNotarySigningInput: COSE Sig_structure', () => {
  const time = new Date('2026-12-01T00:00:00Z');

  it("reads targetArtifact from the Notary payload of a Sig_structure whose alg is the key's", () => {
    const cose = notaryCoseSigStructure('EC-256', 'img', time);
    expect(read(cose.sigStructure)).toEqual({
      format: 'cose',
      alg: -7,
      artifact: { digest: cose.digest, mediaType: MANIFEST, size: cose.size },
    });
    const rsa = notaryCoseSigStructure('RSA-4096', 'img', time);
    expect(read(rsa.sigStructure, KEY_SPEC_INFO['RSA-4096'])?.artifact?.digest).toBe(rsa.digest);
  });

  it("refuses an alg other than the key's, and reads no artifact without the Notary content type", () => {
    expect(codeOf(() => read(notaryCoseSigStructure('EC-256', 'img', time, { alg: -35 }).sigStructure))).toBe(
      ErrorCode.UNSUPPORTED_ALGORITHM,
    );
    expect(
      read(notaryCoseSigStructure('EC-256', 'img', time, { header: [[3, 'application/json']] }).sigStructure),
    ).toEqual({ format: 'cose', alg: -7 });
  });

  it('reads the payload JSON exactly as for JWS: folded duplicates refused', () => {
    const payloadJson = `{"targetArtifact":${descriptor(X)},"TargetArtifact":${descriptor(Y)}}`;
    expect(refusal(() => read(notaryCoseSigStructure('EC-256', 'img', time, { payloadJson }).sigStructure))).toMatch(
      /^AMBIGUOUS_PAYLOAD: sign: the member names "targetArtifact" and "TargetArtifact"/,
    );
    expect(
      read(
        notaryCoseSigStructure('EC-256', 'img', time, { payloadJson: ` {"TARGETARTIFACT":${descriptor(Y)}}` })
          .sigStructure,
      )?.artifact?.digest,
    ).toBe(Y);
  });

  it('refuses CBOR that could be read two ways: trailing bytes, indefinite lengths, long forms, duplicate header keys', () => {
    const good = notaryCoseSigStructure('EC-256', 'img', time).sigStructure;
    expect(read(good)?.artifact).toBeDefined();
    expect(refusal(() => read(Buffer.concat([good, Buffer.from([0x00])])))).toMatch(
      /^AMBIGUOUS_PAYLOAD: .*data after its payload/,
    );
    // The same structure with an indefinite-length payload byte string.
    const [, protectedBytes, , payload] = [0, ...decodeParts(good)];
    const indefinite = Buffer.concat([
      Buffer.from([0x84, 0x6a]),
      Buffer.from('Signature1'),
      Buffer.from(encodeCbor(protectedBytes)),
      Buffer.from([0x40, 0x5f]),
      Buffer.from(encodeCbor(payload)),
      Buffer.from([0xff]),
    ]);
    expect(refusal(() => read(indefinite))).toMatch(/^AMBIGUOUS_PAYLOAD: .*definite-length byte strings/);
    // An empty external_aad written in a two-byte length form.
    const long = Buffer.concat([
      Buffer.from([0x84, 0x6a]),
      Buffer.from('Signature1'),
      Buffer.from(encodeCbor(protectedBytes)),
      Buffer.from([0x58, 0x00]),
      Buffer.from(encodeCbor(payload)),
    ]);
    expect(refusal(() => read(long))).toMatch(/^AMBIGUOUS_PAYLOAD: .*shortest form/);
    // A protected header with content type twice (fxamacker/cbor's default keeps one of them).
    const header = Buffer.concat([
      Buffer.from([0xa3, 0x01, 0x26, 0x03]),
      Buffer.from(encodeCbor('text/plain')),
      Buffer.from([0x03]),
      Buffer.from(encodeCbor('application/vnd.cncf.notary.payload.v1+json')),
    ]);
    const dup = Buffer.from(encodeCbor(['Signature1', Uint8Array.from(header), new Uint8Array(0), payload]));
    expect(refusal(() => read(dup))).toMatch(/^AMBIGUOUS_PAYLOAD: .*protected header.*Duplicate/);
    // Inside the protected header (cbor2, strict): a label in a long form, an indefinite-length map, trailing bytes.
    const cty = Buffer.from(encodeCbor('application/vnd.cncf.notary.payload.v1+json'));
    const headers: Array<[Buffer, RegExp]> = [
      [Buffer.concat([Buffer.from([0xa2, 0x18, 0x01, 0x26, 0x03]), cty]), /protected header.*long integer/],
      [Buffer.concat([Buffer.from([0xbf, 0x01, 0x26, 0x03]), cty, Buffer.from([0xff])]), /protected header.*Streaming/],
      [
        Buffer.concat([Buffer.from([0xa2, 0x01, 0x26, 0x03]), cty, Buffer.from([0x00])]),
        /protected header.*Extra data/,
      ],
    ];
    for (const [bad, reason] of headers) {
      expect(
        refusal(() => read(Buffer.from(encodeCbor(['Signature1', Uint8Array.from(bad), new Uint8Array(0), payload])))),
      ).toMatch(reason);
    }
    // The same header well-formed is read.
    const fine = Buffer.concat([Buffer.from([0xa2, 0x01, 0x26, 0x03]), cty]);
    expect(
      read(Buffer.from(encodeCbor(['Signature1', Uint8Array.from(fine), new Uint8Array(0), payload])))?.artifact,
    ).toBeDefined();
  });

  function decodeParts(sig: Buffer): [Uint8Array, Uint8Array, Uint8Array] {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { decode } = require('cbor2') as typeof import('cbor2');
    const [, p, a, q] = decode(sig) as [string, Uint8Array, Uint8Array, Uint8Array];
    return [Uint8Array.from(p), Uint8Array.from(a), Uint8Array.from(q)]; // copies in this realm (see signing-kit)
  }
});

describe('readNotaryPayload / parseGoJson', () => {
  it('keeps number literals and decodes escapes like Go', () => {
    const value = parseGoJson(Buffer.from(' {"a":"\\u00e9\\ud83d\\ude00\\/","b":-0.5e+3,"c":[true,false,null]} '));
    expect(value).toBeInstanceOf(GoJsonObject);
    const object = value as GoJsonObject;
    expect(object.field('A')).toBe('é😀/');
    expect(object.field('b')).toEqual({ literal: '-0.5e+3' });
    expect(object.field('c')).toEqual([true, false, null]);
  });

  it('tells JSON Go refuses (syntax) from JSON Go could read otherwise (ambiguous)', () => {
    for (const text of [
      '{"a":1,}',
      '{"a":01}',
      "{'a':1}",
      '{"a":1} x',
      '{"a":"\t"}',
      '{"a":"\\x"}',
      '[1,]',
      '',
      '{"a":1e}',
      '{"a":.5}',
    ]) {
      expect(() => parseGoJson(Buffer.from(text))).toThrow(JsonSyntaxError);
    }
    for (const text of ['{"a":1,"A":2}', '{"\u017f":1}', '{"x":"\\ud800x"}', `${'['.repeat(70)}${']'.repeat(70)}`]) {
      expect(() => parseGoJson(Buffer.from(text))).toThrow(AmbiguousJson);
    }
  });

  it('returns no artifact for a payload without targetArtifact or not an object', () => {
    expect(readNotaryPayload(Buffer.from('[1]'))).toBeUndefined();
    expect(readNotaryPayload(Buffer.from('{"targetArtifact":null}'))).toBeUndefined();
    expect(readNotaryPayload(Buffer.from('not json'))).toBeUndefined();
  });
});
