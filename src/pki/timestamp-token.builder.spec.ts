import * as crypto from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { PkiError } from './pki-error';
import { KeySpec } from './key-spec';
import { issueCodeSigningCertificate, loadCaIssuer } from './certificate-issuer';
import { caGenerationUrls } from './ca-urls';
import { createNodeSigner } from '../../test/support/node-signer';
import { OpenSslWorkspace, TEST_POLICY, TestTsa, buildQuery, createTestTsa } from '../../test/tsa/tsa-fixtures';
import { TimestampRejection } from './timestamp-rejection';
import { parseTimestampRequest } from './timestamp-request.parser';
import {
  TimestampTokenBuilder,
  assertTimestampingCertificate,
  encodeRejectionResponse,
  failureInfoBits,
  generalizedTimeMs,
} from './timestamp-token.builder';

const OIDS = {
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingCertificateV2: '1.2.840.113549.1.9.16.2.47',
  tstInfo: '1.2.840.113549.1.9.16.1.4',
};

function parseResponse(der: Buffer): {
  response: pkijs.TimeStampResp;
  signedData?: pkijs.SignedData;
  tstInfo?: pkijs.TSTInfo;
} {
  const response = pkijs.TimeStampResp.fromBER(der);
  if (!response.timeStampToken) return { response };
  const signedData = new pkijs.SignedData({ schema: response.timeStampToken.content });
  const eContent = signedData.encapContentInfo.eContent!;
  const tstInfo = pkijs.TSTInfo.fromBER(eContent.valueBlock.valueHexView);
  return { response, signedData, tstInfo };
}

describe(TimestampTokenBuilder.name, () => {
  let tsa: TestTsa;
  let builder: TimestampTokenBuilder;
  const genTime = new Date('2031-05-06T07:08:09.120Z');

  beforeAll(async () => {
    tsa = await createTestTsa('EC-256');
    builder = TimestampTokenBuilder.create({
      certificate: tsa.tsa.der,
      signer: tsa.tsaSigner,
      policyOid: TEST_POLICY,
      accuracyMs: 1500,
    });
  });

  function request(options: Parameters<typeof buildQuery>[0] = {}) {
    return parseTimestampRequest(buildQuery(options), 4096);
  }

  it('writes TSTInfo with the policy, the imprint as sent, the serial, a millisecond genTime, the accuracy, the nonce and the TSA name', async () => {
    const hashed = crypto.randomBytes(48);
    const der = await builder.buildGrantedResponse({
      request: request({ hashOid: 'sha384', hashedMessage: hashed, nonce: 0x1234567890abcdefn, nullParameters: true }),
      serial: 4711n,
      genTime,
    });
    const { response, tstInfo } = parseResponse(der);
    expect(response.status.status).toBe(0);
    expect(tstInfo!.version).toBe(1);
    expect(tstInfo!.policy).toBe(TEST_POLICY);
    expect(tstInfo!.messageImprint.hashAlgorithm.algorithmId).toBe('2.16.840.1.101.3.4.2.2');
    expect(Buffer.from(tstInfo!.messageImprint.hashedMessage.valueBlock.valueHexView)).toEqual(hashed);
    expect(BigInt('0x' + Buffer.from(tstInfo!.serialNumber.valueBlock.valueHexView).toString('hex'))).toBe(4711n);
    expect(tstInfo!.genTime.toISOString()).toBe(genTime.toISOString());
    expect(tstInfo!.accuracy).toMatchObject({ seconds: 1, millis: 500 });
    expect(BigInt('0x' + Buffer.from(tstInfo!.nonce!.valueBlock.valueHexView).toString('hex'))).toBe(
      0x1234567890abcdefn,
    );
    expect(tstInfo!.tsa?.type).toBe(4);
    // The imprint is copied as sent, NULL parameters included.
    expect(tstInfo!.messageImprint.hashAlgorithm.algorithmParams).toBeInstanceOf(asn1js.Null);
  });

  it('encodes genTime as GeneralizedTime without trailing zeros in the fraction, and none for whole seconds', () => {
    expect(generalizedTimeMs(new Date('2031-05-06T07:08:09.120Z')).subarray(2).toString()).toBe('20310506070809.12Z');
    expect(generalizedTimeMs(new Date('2031-05-06T07:08:09.005Z')).subarray(2).toString()).toBe('20310506070809.005Z');
    expect(generalizedTimeMs(new Date('2031-05-06T07:08:09.000Z')).subarray(2).toString()).toBe('20310506070809Z');
  });

  it('signs contentType, messageDigest and signing-certificate-v2 (ESSCertIDv2 over the TSA certificate), sorted as a DER SET', async () => {
    const der = await builder.buildToken({ request: request(), serial: 1n, genTime });
    const signedData = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(der).content });
    expect(signedData.version).toBe(3);
    expect(signedData.encapContentInfo.eContentType).toBe(OIDS.tstInfo);
    const [signer] = signedData.signerInfos;
    expect(signer.version).toBe(1);
    expect(signer.digestAlgorithm.algorithmId).toBe('2.16.840.1.101.3.4.2.1');
    expect(signer.digestAlgorithm.algorithmParams).toBeUndefined();
    expect(signer.signatureAlgorithm.algorithmId).toBe('1.2.840.10045.4.3.2');
    const attributes = signer.signedAttrs!.attributes;
    expect(attributes.map((a) => a.type).sort()).toEqual(
      [OIDS.contentType, OIDS.messageDigest, OIDS.signingCertificateV2].sort(),
    );
    // DER order: the encodings ascend.
    const encodings = attributes.map((a) => Buffer.from(a.toSchema().toBER()));
    expect([...encodings].sort(Buffer.compare)).toEqual(encodings);

    const tstInfoDer = Buffer.from(signedData.encapContentInfo.eContent!.valueBlock.valueHexView);
    const digest = attributes.find((a) => a.type === OIDS.messageDigest)!.values[0] as asn1js.OctetString;
    expect(Buffer.from(digest.valueBlock.valueHexView)).toEqual(
      crypto.createHash('sha256').update(tstInfoDer).digest(),
    );

    // SigningCertificateV2 { certs SEQUENCE OF ESSCertIDv2 { certHash, issuerSerial { GeneralNames, serial } } }
    const value = attributes.find((a) => a.type === OIDS.signingCertificateV2)!.values[0] as asn1js.Sequence;
    const certs = value.valueBlock.value[0] as asn1js.Sequence;
    expect(certs.valueBlock.value).toHaveLength(1);
    const essCertId = certs.valueBlock.value[0] as asn1js.Sequence;
    // hashAlgorithm is DEFAULT sha256, so DER leaves it out: the first field is certHash.
    const [certHash, issuerSerial] = essCertId.valueBlock.value as [asn1js.OctetString, asn1js.Sequence];
    expect(certHash).toBeInstanceOf(asn1js.OctetString);
    expect(Buffer.from(certHash.valueBlock.valueHexView)).toEqual(
      crypto.createHash('sha256').update(tsa.tsa.der).digest(),
    );
    const certificate = pkijs.Certificate.fromBER(tsa.tsa.der);
    const [generalNames, serial] = issuerSerial.valueBlock.value as [asn1js.Sequence, asn1js.Integer];
    expect(serial.isEqual(certificate.serialNumber)).toBe(true);
    const directoryName = generalNames.valueBlock.value[0] as asn1js.Constructed;
    expect(directoryName.idBlock).toMatchObject({ tagClass: 3, tagNumber: 4 });
    expect(Buffer.from(directoryName.valueBlock.value[0].toBER())).toEqual(
      Buffer.from(certificate.issuer.toSchema().toBER()),
    );

    // The signature is over the DER SET of the attributes (tag 31), by the TSA key.
    const signedAttributes = Buffer.from(signer.signedAttrs!.encodedValue);
    signedAttributes[0] = 0x31;
    const ok = crypto.verify(
      'sha256',
      signedAttributes,
      { key: tsa.tsaSigner.publicKey, dsaEncoding: 'der' },
      Buffer.from(signer.signature.valueBlock.valueHexView),
    );
    expect(ok).toBe(true);
  });

  it('includes the TSA certificate only when certReq is set', async () => {
    const withCert = parseResponse(
      await builder.buildGrantedResponse({ request: request({ certReq: true }), serial: 2n, genTime }),
    );
    expect(withCert.signedData!.certificates).toHaveLength(1);
    expect(Buffer.from((withCert.signedData!.certificates![0] as pkijs.Certificate).toSchema().toBER())).toEqual(
      tsa.tsa.der,
    );
    const without = parseResponse(
      await builder.buildGrantedResponse({ request: request({ certReq: false }), serial: 3n, genTime }),
    );
    expect(without.signedData!.certificates).toBeUndefined();
  });

  it.each<[KeySpec]>([['EC-384'], ['RSA-3072']])(
    'signs with the hash its %s key pairs with, and the token verifies with OpenSSL',
    async (spec) => {
      const other = await createTestTsa(spec);
      const otherBuilder = TimestampTokenBuilder.create({
        certificate: other.tsa.der,
        signer: other.tsaSigner,
        policyOid: TEST_POLICY,
        accuracyMs: 1000,
      });
      const workspace = new OpenSslWorkspace();
      try {
        const data = workspace.write('data.bin', `payload for ${spec}`);
        const hashed = crypto.createHash('sha256').update(`payload for ${spec}`).digest();
        const reply = await otherBuilder.buildGrantedResponse({
          request: request({ hashedMessage: hashed, certReq: true }),
          serial: 9n,
          genTime: new Date(),
        });
        workspace.write('reply.tsr', reply);
        workspace.writeCertificate('root.pem', other.root.der);
        const verified = await workspace.tryOpenssl([
          'ts',
          '-verify',
          '-data',
          data,
          '-in',
          'reply.tsr',
          '-CAfile',
          'root.pem',
        ]);
        expect(verified).toMatchObject({ ok: true });
        expect(verified.output).toContain('Verification: OK');
        const { signedData } = parseResponse(reply);
        // Both pair with SHA-384; RSA signs PKCS#1 v1.5 (OpenSSL's ts cannot verify PSS in CMS).
        expect(signedData!.signerInfos[0].digestAlgorithm.algorithmId).toBe('2.16.840.1.101.3.4.2.2');
        expect(signedData!.signerInfos[0].signatureAlgorithm.algorithmId).toBe(
          spec === 'EC-384' ? '1.2.840.10045.4.3.3' : '1.2.840.113549.1.1.12',
        );
      } finally {
        workspace.remove();
      }
    },
  );

  it('refuses to hand out a token whose signature does not verify (faulty signer)', async () => {
    const faulty = { ...tsa.tsaSigner, signDigest: async () => Buffer.alloc(64, 1) };
    const broken = TimestampTokenBuilder.create({
      certificate: tsa.tsa.der,
      signer: faulty,
      policyOid: TEST_POLICY,
      accuracyMs: 1000,
    });
    await expect(broken.buildToken({ request: request(), serial: 1n, genTime })).rejects.toThrow(/does not verify/);
  });

  it('refuses a signer whose key is not the certificate key, and certificates outside the TSA profile', async () => {
    expect(() =>
      TimestampTokenBuilder.create({
        certificate: tsa.tsa.der,
        signer: createNodeSigner('EC-256'),
        policyOid: TEST_POLICY,
        accuracyMs: 1000,
      }),
    ).toThrow(PkiError);
    // A CA certificate (the TSA root) and a code-signing leaf are not TSA certificates.
    expect(() => assertTimestampingCertificate(tsa.root.der)).toThrow(/extendedKeyUsage/);
    const issuer = loadCaIssuer({
      certificate: tsa.root.der,
      signer: tsa.rootSigner,
      urls: caGenerationUrls('http://signet.test', 'r-g1'),
    });
    const leafSigner = createNodeSigner('EC-256');
    const codeSigning = await issueCodeSigningCertificate({
      issuer,
      subject: { C: 'DE', ST: 'Berlin', O: 'Signet Test', CN: 'leaf' },
      publicKeySpki: leafSigner.publicKeySpki,
      validityDays: 30,
    });
    expect(() => assertTimestampingCertificate(codeSigning.der)).toThrow(/extendedKeyUsage/);
    expect(() => assertTimestampingCertificate(tsa.tsa.der)).not.toThrow();
  });
});

describe('rejection responses', () => {
  it.each([
    ['badAlg', '030207 80'],
    ['badRequest', '030205 20'],
    ['badDataFormat', '030202 04'],
    ['timeNotAvailable', '030301 0002'],
    ['unacceptedPolicy', '030300 0001'],
    ['unacceptedExtension', '030407 000080'],
    ['systemFailure', '030506 00000040'],
  ] as const)('encodes failInfo %s as a minimal DER named-bit BIT STRING', (failInfo, hex) => {
    expect(failureInfoBits(failInfo).toString('hex')).toBe(hex.replace(/ /g, ''));
  });

  it('carries status rejection, the reason as statusString and the failure info, and no token', () => {
    const der = encodeRejectionResponse(new TimestampRejection('badAlg', 'unsupported hash'));
    const response = pkijs.TimeStampResp.fromBER(der);
    expect(response.status.status).toBe(2);
    expect(response.status.statusStrings?.[0].valueBlock.value).toBe('unsupported hash');
    expect(response.status.failInfo?.valueBlock.valueHexView[0]).toBe(0x80);
    expect(response.timeStampToken).toBeUndefined();
  });
});
