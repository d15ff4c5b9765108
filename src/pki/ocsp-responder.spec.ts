import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import * as x509 from '@peculiar/x509';
import { TestHierarchy, createHierarchy, issueLeaf } from '../../test/ca/ca-fixtures';
import {
  OcspCertStatus,
  OcspMalformedRequestError,
  createOcspResponder,
  decodeOcspGetRequest,
  ocspErrorResponse,
  ocspResponseForError,
  parseOcspRequest,
  respondToOcspRequest,
} from './ocsp-responder';

const NONCE_OID = '1.3.6.1.5.5.7.48.1.2';

/** OCSP requests built with pkijs, independently of the responder's code. */
async function buildRequest(
  pairs: Array<{ cert: Buffer; issuer: Buffer }>,
  options: { hash?: string; nonce?: Buffer } = {},
): Promise<Buffer> {
  const request = new pkijs.OCSPRequest();
  for (const { cert, issuer } of pairs) {
    const certId = new pkijs.CertID();
    await certId.createForCertificate(pkijs.Certificate.fromBER(cert), {
      hashAlgorithm: options.hash ?? 'SHA-1',
      issuerCertificate: pkijs.Certificate.fromBER(issuer),
    });
    request.tbsRequest.requestList.push(new pkijs.Request({ reqCert: certId }));
  }
  if (options.nonce) {
    request.tbsRequest.requestExtensions = [
      new pkijs.Extension({
        extnID: NONCE_OID,
        extnValue: new asn1js.OctetString({ valueHex: options.nonce }).toBER(),
      }),
    ];
  }
  return Buffer.from(request.toSchema(true).toBER());
}

interface DecodedResponse {
  status: number;
  basic?: pkijs.BasicOCSPResponse;
  tbs?: Buffer;
  signature?: Buffer;
  signatureOid?: string;
}

function decodeResponse(der: Buffer): DecodedResponse {
  const response = pkijs.OCSPResponse.fromBER(der);
  const status = response.responseStatus.valueBlock.valueDec;
  if (!response.responseBytes) return { status };
  expect(response.responseBytes.responseType).toBe('1.3.6.1.5.5.7.48.1.1');
  const basic = pkijs.BasicOCSPResponse.fromBER(response.responseBytes.response.valueBlock.valueHexView);
  // The raw tbsResponseData: first element of the BasicOCSPResponse SEQUENCE.
  const outer = asn1js.fromBER(response.responseBytes.response.valueBlock.valueHexView).result as asn1js.Sequence;
  const tbs = Buffer.from(outer.valueBlock.value[0].toBER());
  return {
    status,
    basic,
    tbs,
    signature: Buffer.from(basic.signature.valueBlock.valueHexView),
    signatureOid: basic.signatureAlgorithm.algorithmId,
  };
}

function keyHash(publicKey: crypto.KeyObject, hash = 'sha1'): Buffer {
  const spki = new x509.PublicKey(publicKey.export({ type: 'spki', format: 'der' }));
  const bits = Buffer.from((spki as unknown as { asn: { subjectPublicKey: ArrayBuffer } }).asn.subjectPublicKey);
  return crypto.createHash(hash).update(bits).digest();
}

function certStatusOf(single: pkijs.SingleResponse): { tag: number; block: asn1js.AsnType } {
  const block = single.certStatus as asn1js.AsnType & { idBlock: { tagNumber: number } };
  return { tag: block.idBlock.tagNumber, block };
}

describe(respondToOcspRequest.name, () => {
  let h: TestHierarchy;
  let leaf: Buffer;
  let leafSerial: string;
  const now = new Date();
  beforeAll(async () => {
    h = await createHierarchy('EC-384');
    const issued = await issueLeaf(h.issuingIssuer);
    leaf = issued.leaf.der;
    leafSerial = issued.leaf.serialHex;
  });

  it('answers good with a response signed by the CA key: responderID byKey, nextUpdate 1 h after thisUpdate, CertID echoed, no certs', async () => {
    const request = await buildRequest([{ cert: leaf, issuer: h.issuing.der }]);
    const asked: string[] = [];
    const der = await respondToOcspRequest(
      createOcspResponder(h.issuingIssuer),
      request,
      (serial) => {
        asked.push(serial);
        return { status: 'good' };
      },
      { now },
    );
    expect(asked).toEqual([leafSerial]);

    const { status, basic, tbs, signature, signatureOid } = decodeResponse(der);
    expect(status).toBe(0);
    expect(signatureOid).toBe('1.2.840.10045.4.3.3'); // ecdsa-with-SHA384
    expect(crypto.verify('sha384', tbs!, { key: h.issuingSigner.publicKey, dsaEncoding: 'der' }, signature!)).toBe(
      true,
    );
    expect(basic!.certs ?? []).toHaveLength(0);

    const data = basic!.tbsResponseData;
    const responderId = data.responderID as asn1js.OctetString;
    expect(Buffer.from(responderId.valueBlock.valueHexView)).toEqual(keyHash(h.issuingSigner.publicKey));
    expect(data.responses).toHaveLength(1);
    const single = data.responses[0];
    expect(certStatusOf(single).tag).toBe(0);
    expect(single.nextUpdate!.getTime() - single.thisUpdate.getTime()).toBe(3600_000);
    expect(single.thisUpdate.getTime()).toBeLessThanOrEqual(now.getTime());
    expect(Math.abs(data.producedAt.getTime() - now.getTime())).toBeLessThan(1000);
    const requestCertId = pkijs.OCSPRequest.fromBER(request).tbsRequest.requestList[0].reqCert.toSchema().toBER();
    expect(Buffer.from(single.certID.toSchema().toBER())).toEqual(Buffer.from(requestCertId));
    expect(data.responseExtensions ?? []).toHaveLength(0);
  });

  it.each<[string, OcspCertStatus, number | undefined]>([
    [
      'revoked with reason',
      { status: 'revoked', revokedAt: new Date('2030-01-02T03:04:05.678Z'), reason: 'keyCompromise' },
      1,
    ],
    [
      'revoked, unspecified (reason omitted)',
      { status: 'revoked', revokedAt: new Date('2030-01-02T03:04:05Z'), reason: 'unspecified' },
      undefined,
    ],
  ])('answers %s', async (_label, answer, reasonCode) => {
    const request = await buildRequest([{ cert: leaf, issuer: h.issuing.der }]);
    const der = await respondToOcspRequest(createOcspResponder(h.issuingIssuer), request, () => answer);
    const single = decodeResponse(der).basic!.tbsResponseData.responses[0];
    const { tag, block } = certStatusOf(single);
    expect(tag).toBe(1);
    // revoked [1] IMPLICIT RevokedInfo: GeneralizedTime, then optional [0] EXPLICIT CRLReason.
    const encoded = Buffer.from(block.toBER());
    const inner = asn1js.fromBER(encoded).result as asn1js.Constructed;
    const [time, reason] = inner.valueBlock.value;
    expect(Buffer.from((time as asn1js.GeneralizedTime).valueBlock.valueHexView).toString()).toBe('20300102030405Z');
    if (reasonCode === undefined) expect(reason).toBeUndefined();
    else
      expect(((reason as asn1js.Constructed).valueBlock.value[0] as asn1js.Enumerated).valueBlock.valueDec).toBe(
        reasonCode,
      );
  });

  it("puts a revocation's invalidityDate into the SingleResponse as a non-critical singleExtension (pkijs and the OpenSSL CLI read it)", async () => {
    const request = await buildRequest([{ cert: leaf, issuer: h.issuing.der }]);
    const answer: OcspCertStatus = {
      status: 'revoked',
      revokedAt: new Date('2030-01-02T03:04:05Z'),
      reason: 'keyCompromise',
      invalidityDate: new Date('2029-12-24T18:00:00Z'),
    };
    const der = await respondToOcspRequest(createOcspResponder(h.issuingIssuer), request, () => answer);
    const single = decodeResponse(der).basic!.tbsResponseData.responses[0];
    expect(single.singleExtensions).toHaveLength(1);
    const [ext] = single.singleExtensions!;
    expect(ext.extnID).toBe('2.5.29.24');
    expect(ext.critical).toBe(false);
    const time = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView).result as asn1js.GeneralizedTime;
    expect(time).toBeInstanceOf(asn1js.GeneralizedTime); // always GeneralizedTime (RFC 5280 §5.3.2)
    expect(Buffer.from(time.valueBlock.valueHexView).toString()).toBe('20291224180000Z');

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocsp-invalidity-'));
    try {
      fs.writeFileSync(path.join(dir, 'response.der'), der);
      const text = execFileSync(
        'openssl',
        ['ocsp', '-respin', path.join(dir, 'response.der'), '-resp_text', '-noverify'],
        { encoding: 'utf8' },
      );
      expect(text).toMatch(/Cert Status: revoked/);
      expect(text).toMatch(/Response Single Extensions:\s+Invalidity Date:\s+Dec 24 18:00:00 2029 GMT/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }

    // Without an invalidityDate there are no singleExtensions at all.
    const plain = await respondToOcspRequest(createOcspResponder(h.issuingIssuer), request, () => ({
      status: 'revoked',
      revokedAt: new Date(),
      reason: 'keyCompromise',
    }));
    expect(decodeResponse(plain).basic!.tbsResponseData.responses[0].singleExtensions ?? []).toHaveLength(0);
  });

  it('answers unknown when the lookup says so', async () => {
    const request = await buildRequest([{ cert: leaf, issuer: h.issuing.der }]);
    const der = await respondToOcspRequest(createOcspResponder(h.issuingIssuer), request, () => ({
      status: 'unknown',
    }));
    expect(certStatusOf(decodeResponse(der).basic!.tbsResponseData.responses[0]).tag).toBe(2);
  });

  it.each(['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512'])('matches CertIDs hashed with %s', async (hash) => {
    const request = await buildRequest([{ cert: leaf, issuer: h.issuing.der }], { hash });
    expect(parseOcspRequest(request).certIds[0].hashAlgorithm).toBe(hash);
    const der = await respondToOcspRequest(createOcspResponder(h.issuingIssuer), request, () => ({ status: 'good' }));
    expect(decodeResponse(der).status).toBe(0);
  });

  it('echoes the nonce extension exactly', async () => {
    const nonce = crypto.randomBytes(32);
    const request = await buildRequest([{ cert: leaf, issuer: h.issuing.der }], { nonce });
    const der = await respondToOcspRequest(createOcspResponder(h.issuingIssuer), request, () => ({ status: 'good' }));
    const extensions = decodeResponse(der).basic!.tbsResponseData.responseExtensions!;
    expect(extensions).toHaveLength(1);
    expect(extensions[0].extnID).toBe(NONCE_OID);
    expect(extensions[0].critical).toBe(false);
    const echoed = asn1js.fromBER(extensions[0].extnValue.valueBlock.valueHexView).result as asn1js.OctetString;
    expect(Buffer.from(echoed.valueBlock.valueHexView)).toEqual(nonce);
  });

  it('answers unauthorized for a certificate of another issuer, without consulting the lookup', async () => {
    // The issuing CA certificate's own CertID names the root, not the issuing CA.
    const request = await buildRequest([{ cert: h.issuing.der, issuer: h.root.der }]);
    const lookup = jest.fn();
    const der = await respondToOcspRequest(createOcspResponder(h.issuingIssuer), request, lookup);
    expect(der).toEqual(Buffer.from('30030a0106', 'hex'));
    expect(decodeResponse(der).status).toBe(6);
    expect(lookup).not.toHaveBeenCalled();
    // The root generation answers it.
    expect(
      decodeResponse(await respondToOcspRequest(createOcspResponder(h.rootIssuer), request, () => ({ status: 'good' })))
        .status,
    ).toBe(0);
  });

  it('signs RSA responses with PKCS#1 v1.5 (what Go x/crypto/ocsp understands) unless told otherwise', async () => {
    const rsa = await createHierarchy('RSA-2048');
    const { leaf: rsaLeaf } = await issueLeaf(rsa.issuingIssuer, 'EC-256');
    const request = await buildRequest([{ cert: rsaLeaf.der, issuer: rsa.issuing.der }]);
    const pkcs1 = decodeResponse(
      await respondToOcspRequest(createOcspResponder(rsa.issuingIssuer), request, () => ({ status: 'good' })),
    );
    expect(pkcs1.signatureOid).toBe('1.2.840.113549.1.1.11');
    expect(crypto.verify('sha256', pkcs1.tbs!, rsa.issuingSigner.publicKey, pkcs1.signature!)).toBe(true);
    const pss = decodeResponse(
      await respondToOcspRequest(createOcspResponder(rsa.issuingIssuer, 'pss'), request, () => ({ status: 'good' })),
    );
    expect(pss.signatureOid).toBe('1.2.840.113549.1.1.10');
  });

  it('answers up to 10 CertIDs in one response well under 20 KiB, even for an RSA-4096 CA', async () => {
    const big = await createHierarchy('RSA-4096');
    const pairs = [];
    for (let i = 0; i < 10; i++)
      pairs.push({ cert: (await issueLeaf(big.issuingIssuer, 'EC-256')).leaf.der, issuer: big.issuing.der });
    const request = await buildRequest(pairs, { hash: 'SHA-512', nonce: crypto.randomBytes(32) });
    const der = await respondToOcspRequest(createOcspResponder(big.issuingIssuer), request, () => ({
      status: 'revoked',
      revokedAt: new Date(),
      reason: 'superseded',
    }));
    expect(decodeResponse(der).basic!.tbsResponseData.responses).toHaveLength(10);
    expect(der.length).toBeLessThan(20 * 1024);

    const eleven = await buildRequest([...pairs, pairs[0]]);
    await expect(
      respondToOcspRequest(createOcspResponder(big.issuingIssuer), eleven, () => ({ status: 'good' })),
    ).rejects.toBeInstanceOf(OcspMalformedRequestError);
  });

  it('refuses to publish an RSA response whose signature does not verify (fault protection)', async () => {
    const rsa = await createHierarchy('RSA-2048');
    const { leaf: rsaLeaf } = await issueLeaf(rsa.issuingIssuer, 'EC-256');
    const request = await buildRequest([{ cert: rsaLeaf.der, issuer: rsa.issuing.der }]);
    const faulty = {
      ...rsa.issuingIssuer,
      signer: {
        ...rsa.issuingSigner,
        spec: rsa.issuingSigner.spec,
        publicKeySpki: rsa.issuingSigner.publicKeySpki,
        signDigest: async () => Buffer.alloc(256, 7),
      },
    };
    const error = await respondToOcspRequest(createOcspResponder(faulty), request, () => ({ status: 'good' })).catch(
      (caught: unknown) => caught,
    );
    expect(error).toMatchObject({ code: 'INTERNAL', details: { field: 'signature' } });
    expect(ocspResponseForError(error).toString('hex')).toBe('30030a0102');
  });

  it('honours a custom validity', async () => {
    const request = await buildRequest([{ cert: leaf, issuer: h.issuing.der }]);
    const der = await respondToOcspRequest(createOcspResponder(h.issuingIssuer), request, () => ({ status: 'good' }), {
      validitySeconds: 600,
    });
    const single = decodeResponse(der).basic!.tbsResponseData.responses[0];
    expect(single.nextUpdate!.getTime() - single.thisUpdate.getTime()).toBe(600_000);
  });
});

describe(parseOcspRequest.name, () => {
  it.each([
    ['random bytes', crypto.randomBytes(64)],
    ['an empty buffer', Buffer.alloc(0)],
    ['a SEQUENCE of the wrong shape', Buffer.from('3003020101', 'hex')],
    ['an empty request list', Buffer.from('30043002' + '3000', 'hex')],
  ])('throws OcspMalformedRequestError for %s', (_label, der) => {
    expect(() => parseOcspRequest(der)).toThrow(OcspMalformedRequestError);
  });

  it('accepts BER (indefinite length) through the pkijs fallback and echoes the CertID as DER', async () => {
    const h = await createHierarchy('EC-256');
    const { leaf } = await issueLeaf(h.issuingIssuer);
    const der = await buildRequest([{ cert: leaf.der, issuer: h.issuing.der }], { nonce: crypto.randomBytes(16) });
    const outer = asn1js.fromBER(der).result as asn1js.Sequence;
    const content = Buffer.concat(outer.valueBlock.value.map((element) => Buffer.from(element.toBER())));
    const ber = Buffer.concat([Buffer.from([0x30, 0x80]), content, Buffer.from([0, 0])]);
    const fromDer = parseOcspRequest(der);
    const fromBer = parseOcspRequest(ber);
    expect(fromBer).toEqual(fromDer);
    const response = await respondToOcspRequest(createOcspResponder(h.issuingIssuer), ber, () => ({ status: 'good' }));
    expect(decodeResponse(response).status).toBe(0);
  });

  it('rejects trailing bytes after a valid request', async () => {
    const h = await createHierarchy('EC-256');
    const { leaf } = await issueLeaf(h.issuingIssuer);
    const request = await buildRequest([{ cert: leaf.der, issuer: h.issuing.der }]);
    expect(parseOcspRequest(request).certIds[0].serialHex).toBe(leaf.serialHex);
    expect(() => parseOcspRequest(Buffer.concat([request, Buffer.from([0])]))).toThrow(OcspMalformedRequestError);
  });
});

describe(ocspErrorResponse.name, () => {
  it('encodes error statuses without responseBytes', () => {
    expect(ocspErrorResponse('malformedRequest').toString('hex')).toBe('30030a0101');
    expect(ocspErrorResponse('internalError').toString('hex')).toBe('30030a0102');
    expect(ocspErrorResponse('tryLater').toString('hex')).toBe('30030a0103');
    expect(ocspErrorResponse('unauthorized').toString('hex')).toBe('30030a0106');
    expect(ocspResponseForError(new OcspMalformedRequestError('x')).toString('hex')).toBe('30030a0101');
    expect(ocspResponseForError(new Error('database down')).toString('hex')).toBe('30030a0102');
  });
});

describe(decodeOcspGetRequest.name, () => {
  it('accepts URL-encoded standard base64 and the URL-safe alphabet, padded or not', () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xfe, 0x30, 0x03, 0x0a, 0x01]);
    const standard = bytes.toString('base64'); // contains + and /
    expect(standard).toMatch(/[+/]/);
    expect(decodeOcspGetRequest(encodeURIComponent(standard))).toEqual(bytes);
    expect(decodeOcspGetRequest(standard)).toEqual(bytes);
    expect(decodeOcspGetRequest(bytes.toString('base64url'))).toEqual(bytes);
    expect(() => decodeOcspGetRequest('%zz')).toThrow(OcspMalformedRequestError);
    expect(() => decodeOcspGetRequest('not base64!')).toThrow(OcspMalformedRequestError);
  });
});
