import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { PkiError } from './pki-error';
import { DigestSigner, HASH_LENGTH, nodeHashName } from './key-spec';
import { EKU_OIDS, EXTENSION_OIDS } from './certificate-profiles';
import { readCertificateParts } from './der-reader';
import {
  bitString,
  explicit,
  octetString,
  oid,
  sequence,
  set,
  smallInteger,
  tlv,
  tlvOf,
  unsignedIntegerContent,
  utf8String,
} from './der-writer';
import { publicKeyObject, samePublicKey } from './key-identifiers';
import { SignatureScheme, ecdsaRawToDer, hashData, signatureSchemeFor } from './signature-algorithms';
import { HASH_OIDS, TSA_OIDS } from './rfc3161-oids';
import { PKI_FAILURE_BITS, PkiFailureInfo, TimestampRejection } from './timestamp-rejection';
import { TimestampRequest } from './timestamp-request.parser';

export interface TimestampTokenBuilderOptions {
  /** The TSA signing certificate (DER): EKU timeStamping only and critical, key of `signer`. */
  certificate: Buffer;
  signer: DigestSigner;
  /** TSAPolicyId written into every TSTInfo (dotted OID). */
  policyOid: string;
  /** TSTInfo accuracy in milliseconds (≥ 1). */
  accuracyMs: number;
  /** Write the TSA's subject into TSTInfo.tsa (a hint for verifiers; default true). */
  includeTsaName?: boolean;
  /**
   * Verify each signature before it leaves (default true): a faulty signer must never get a token
   * out. Costs one ECDSA verify in Node per token.
   */
  verifySignatures?: boolean;
}

export interface TimestampTokenInput {
  request: TimestampRequest;
  serial: bigint;
  genTime: Date;
}

/** PKIStatusInfo { status granted(0) } — the constant head of every granted TimeStampResp. */
const GRANTED_STATUS = sequence(smallInteger(0));
const PKI_STATUS_REJECTION = 2;

/**
 * Builds RFC 3161 timestamp tokens (CMS SignedData over a TSTInfo) for one TSA signing certificate
 * and key. Everything that does not change per request — the certificate, its ESSCertIDv2, the
 * signer identifier, algorithm identifiers, the contentType attribute, the policy, accuracy and
 * TSA name — is encoded once here; per token only TSTInfo, the messageDigest attribute and one
 * signature are produced.
 */
export class TimestampTokenBuilder {
  readonly certificate: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Lower-case hex serial of the TSA certificate. */
  readonly certificateSerialHex: string;
  readonly scheme: SignatureScheme;
  readonly policyOid: string;
  readonly accuracyMs: number;

  private readonly signer: DigestSigner;
  private readonly verifyKey?: crypto.KeyObject;
  private readonly policy: Buffer;
  private readonly accuracy: Buffer;
  private readonly tsaName: Buffer;
  private readonly contentTypeAttribute: Buffer;
  private readonly signingCertificateAttribute: Buffer;
  private readonly digestAlgorithm: Buffer;
  private readonly digestAlgorithms: Buffer;
  private readonly encapsulatedContentType: Buffer;
  private readonly certificatesField: Buffer;
  private readonly signerInfoHead: Buffer;
  private readonly signerInfoVersion = smallInteger(1);
  private readonly signedDataVersion = smallInteger(3);
  private readonly signedDataOid = oid(TSA_OIDS.signedData);
  private readonly tstInfoVersion = smallInteger(1);

  private constructor(options: TimestampTokenBuilderOptions) {
    const operation = 'TimestampTokenBuilder';
    const { certificate, signer } = options;
    const parts = readCertificateParts(certificate);
    assertTimestampingCertificate(certificate, operation);
    if (!samePublicKey(parts.subjectPublicKeyInfo, signer.publicKeySpki)) {
      throw new PkiError('VALIDATION_ERROR', `${operation}: 'signer' key does not match the TSA certificate`, {
        field: 'signer',
      });
    }
    if (!Number.isInteger(options.accuracyMs) || options.accuracyMs < 1) {
      throw new PkiError('VALIDATION_ERROR', `${operation}: 'accuracyMs' must be a positive whole number`, {
        field: 'accuracyMs',
      });
    }
    const parsed = new x509.X509Certificate(certificate);
    this.certificate = certificate;
    this.notBefore = parsed.notBefore;
    this.notAfter = parsed.notAfter;
    this.certificateSerialHex = parts.serialContent.toString('hex').replace(/^(00)+(?=.)/, '');
    this.signer = signer;
    // RSA signs PKCS#1 v1.5 here: OpenSSL's `ts` (PKCS7 code) and many TSA clients cannot verify PSS in CMS.
    this.scheme = signatureSchemeFor(signer.spec, 'pkcs1');
    this.policyOid = options.policyOid;
    this.accuracyMs = options.accuracyMs;
    if (options.verifySignatures !== false) this.verifyKey = publicKeyObject(signer.publicKeySpki);

    this.policy = oid(options.policyOid);
    this.accuracy = encodeAccuracy(options.accuracyMs);
    // tsa [0] GeneralName: directoryName [4] is EXPLICIT because Name is a CHOICE.
    this.tsaName = options.includeTsaName === false ? Buffer.alloc(0) : explicit(0, explicit(4, parts.subject));

    // SHA-2 AlgorithmIdentifiers with absent parameters (RFC 5754 §2).
    this.digestAlgorithm = sequence(oid(HASH_OIDS[this.scheme.hash]));
    this.digestAlgorithms = set(this.digestAlgorithm);
    this.encapsulatedContentType = oid(TSA_OIDS.tstInfo);
    this.contentTypeAttribute = attribute(TSA_OIDS.contentType, oid(TSA_OIDS.tstInfo));
    // ESSCertIDv2 { certHash = SHA-256(cert), issuerSerial { GeneralNames { [4] issuer }, serial } };
    // hashAlgorithm is left out because id-sha256 is its DEFAULT (DER omits defaults).
    const certHash = crypto.createHash('sha256').update(certificate).digest();
    const issuerSerial = sequence(sequence(explicit(4, parts.issuer)), tlv(0x02, parts.serialContent));
    const essCertIdV2 = sequence(octetString(certHash), issuerSerial);
    this.signingCertificateAttribute = attribute(TSA_OIDS.signingCertificateV2, sequence(sequence(essCertIdV2)));
    // certificates [0] IMPLICIT CertificateSet: only the TSA certificate (the root is in the verifier's trust store).
    this.certificatesField = tlv(0xa0, certificate);
    // SignerInfo up to the signed attributes: version 1, sid = IssuerAndSerialNumber, digestAlgorithm.
    const sid = sequence(parts.issuer, tlv(0x02, parts.serialContent));
    this.signerInfoHead = Buffer.concat([this.signerInfoVersion, sid, this.digestAlgorithm]);
  }

  static create(options: TimestampTokenBuilderOptions): TimestampTokenBuilder {
    return new TimestampTokenBuilder(options);
  }

  /** TSTInfo DER (RFC 3161 §2.4.2). */
  encodeTstInfo({ request, serial, genTime }: TimestampTokenInput): Buffer {
    if (serial < 1n) throw new RangeError('encodeTstInfo: serial must be positive');
    const fields = [
      this.tstInfoVersion,
      this.policy,
      request.messageImprintDer,
      smallInteger(serial),
      generalizedTimeMs(genTime),
      this.accuracy,
    ];
    // ordering is left at its DEFAULT FALSE (omitted): tokens are ordered by genTime ± accuracy only.
    if (request.nonceDer) fields.push(request.nonceDer);
    if (this.tsaName.length) fields.push(this.tsaName);
    return tlvOf(0x30, fields);
  }

  /** TimeStampToken: ContentInfo { id-signedData, [0] SignedData }. */
  async buildToken(input: TimestampTokenInput): Promise<Buffer> {
    const tstInfo = this.encodeTstInfo(input);
    const messageDigest = attribute(TSA_OIDS.messageDigest, octetString(hashData(this.scheme.hash, tstInfo)));
    // DER SET OF: elements sorted by their encodings.
    const attributes = [this.contentTypeAttribute, this.signingCertificateAttribute, messageDigest].sort(
      Buffer.compare,
    );
    const signedAttributesSet = tlvOf(0x31, attributes);
    const signature = await this.sign(signedAttributesSet);

    const signerInfo = tlvOf(0x30, [
      this.signerInfoHead,
      // signedAttrs [0] IMPLICIT: the SET's content under tag A0; the signature covers it tagged as SET.
      tlvOf(0xa0, attributes),
      this.scheme.algorithmIdentifier,
      octetString(signature),
    ]);
    const encapsulated = sequence(this.encapsulatedContentType, explicit(0, octetString(tstInfo)));
    const signedData = tlvOf(0x30, [
      this.signedDataVersion,
      this.digestAlgorithms,
      encapsulated,
      ...(input.request.certReq ? [this.certificatesField] : []),
      set(signerInfo),
    ]);
    return sequence(this.signedDataOid, explicit(0, signedData));
  }

  /** TimeStampResp { status granted, timeStampToken }. */
  async buildGrantedResponse(input: TimestampTokenInput): Promise<Buffer> {
    return sequence(GRANTED_STATUS, await this.buildToken(input));
  }

  private async sign(signedAttributesSet: Buffer): Promise<Buffer> {
    const digest = hashData(this.scheme.hash, signedAttributesSet);
    // Padding is an RSA notion; EC signers (the HSM's) refuse it.
    const raw = await this.signer.signDigest(
      digest,
      this.scheme.hash,
      this.scheme.kind === 'ecdsa' ? undefined : 'pkcs1',
    );
    const signature = this.scheme.kind === 'ecdsa' ? ecdsaRawToDer(raw, this.scheme.ecFieldBytes!) : raw;
    if (this.verifyKey && !this.verifies(signedAttributesSet, signature)) {
      throw new PkiError('SIGNER_FAILED', 'timestamp signature does not verify with the TSA certificate key');
    }
    return signature;
  }

  private verifies(data: Buffer, signature: Buffer): boolean {
    const hash = nodeHashName(this.scheme.hash);
    switch (this.scheme.kind) {
      case 'ecdsa':
        return crypto.verify(hash, data, { key: this.verifyKey!, dsaEncoding: 'der' }, signature);
      case 'rsa-pss':
        return crypto.verify(
          hash,
          data,
          {
            key: this.verifyKey!,
            padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
            saltLength: HASH_LENGTH[this.scheme.hash],
          },
          signature,
        );
      case 'rsa-pkcs1':
        return crypto.verify(
          hash,
          data,
          { key: this.verifyKey!, padding: crypto.constants.RSA_PKCS1_PADDING },
          signature,
        );
    }
  }
}

/** TimeStampResp { status rejection, statusString, failInfo } with no token. */
export function encodeRejectionResponse(rejection: Pick<TimestampRejection, 'failInfo' | 'message'>): Buffer {
  const statusString = sequence(utf8String(rejection.message.slice(0, 500)));
  return sequence(sequence(smallInteger(PKI_STATUS_REJECTION), statusString, failureInfoBits(rejection.failInfo)));
}

/** PKIFailureInfo BIT STRING with one named bit set; DER drops trailing zero bits. */
export function failureInfoBits(failInfo: PkiFailureInfo): Buffer {
  const bit = PKI_FAILURE_BITS[failInfo];
  const bytes = Buffer.alloc(Math.floor(bit / 8) + 1);
  bytes[bytes.length - 1] = 0x80 >> (bit % 8);
  return bitString(bytes, 7 - (bit % 8));
}

/** Attribute ::= SEQUENCE { attrType, attrValues SET OF AttributeValue } with one value. */
function attribute(type: string, value: Buffer): Buffer {
  return sequence(oid(type), set(value));
}

/** Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER (1..999) OPTIONAL, … } */
function encodeAccuracy(accuracyMs: number): Buffer {
  const seconds = Math.floor(accuracyMs / 1000);
  const millis = accuracyMs % 1000;
  const fields: Buffer[] = [];
  if (seconds > 0) fields.push(smallInteger(seconds));
  if (millis > 0)
    fields.push(tlv(0x80, unsignedIntegerContent(Buffer.from(millis.toString(16).padStart(4, '0'), 'hex'))));
  return tlvOf(0x30, fields);
}

const pad2 = (n: number): string => (n < 10 ? '0' : '') + n;

/**
 * GeneralizedTime with millisecond precision, as RFC 3161 §2.4.2 asks: "Z", and a fraction only
 * when non-zero, without trailing zeros (Go's encoding/asn1 rejects any other form).
 */
export function generalizedTimeMs(date: Date): Buffer {
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new RangeError('generalizedTimeMs: year out of range');
  const ms = date.getUTCMilliseconds();
  const fraction = ms === 0 ? '' : '.' + String(ms).padStart(3, '0').replace(/0+$/, '');
  const text =
    String(year).padStart(4, '0') +
    pad2(date.getUTCMonth() + 1) +
    pad2(date.getUTCDate()) +
    pad2(date.getUTCHours()) +
    pad2(date.getUTCMinutes()) +
    pad2(date.getUTCSeconds()) +
    fraction +
    'Z';
  return tlv(0x18, Buffer.from(text, 'ascii'));
}

/**
 * The TSA certificate profile RFC 3161 §2.3 and Notation require: extendedKeyUsage present,
 * critical, timeStamping only; keyUsage digitalSignature; not a CA.
 */
export function assertTimestampingCertificate(der: Buffer, operation = 'assertTimestampingCertificate'): void {
  const fail = (problem: string): never => {
    throw new PkiError('INVALID_CERTIFICATE', `${operation}: the TSA certificate ${problem}`, { field: 'certificate' });
  };
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(der);
  } catch {
    return fail('is not a DER X.509 certificate');
  }
  const eku = certificate.extensions.find((e) => e.type === EXTENSION_OIDS.extKeyUsage);
  if (!eku) return fail('has no extendedKeyUsage');
  if (!eku.critical) fail('extendedKeyUsage is not critical');
  const usages = new x509.ExtendedKeyUsageExtension(eku.rawData).usages.map(String);
  if (usages.length !== 1 || usages[0] !== EKU_OIDS.timeStamping) fail('extendedKeyUsage is not timeStamping only');
  const keyUsage = certificate.getExtension(x509.KeyUsagesExtension);
  if (!keyUsage || !(keyUsage.usages & x509.KeyUsageFlags.digitalSignature)) fail('keyUsage lacks digitalSignature');
  if (certificate.getExtension(x509.BasicConstraintsExtension)?.ca) fail('is a CA certificate');
}
