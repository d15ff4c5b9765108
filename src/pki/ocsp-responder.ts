import * as crypto from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { PkiError } from './pki-error';
import { CaIssuer } from './certificate-issuer';
import {
  bitString,
  enumerated,
  explicit,
  extension,
  generalizedTime,
  implicitConstructed,
  implicitPrimitive,
  octetString,
  oid,
  sequence,
  tlvOf,
} from './der-writer';
import { DerParseError, decodeOid, readChildren, readSingle } from './der-reader';
import { subjectPublicKeyBits } from './key-identifiers';
import { REASON_CODES, RevocationReason } from './revocation-reasons';
import { serialHexFromIntegerContent } from './serial-number';
import {
  AcceptedSignatureAlgorithm,
  RsaPadding,
  SignatureScheme,
  describeSignatureAlgorithm,
  signTbs,
  signatureSchemeFor,
  verifySignature,
} from './signature-algorithms';

/**
 * RFC 6960 responder core for one CA key generation. The CA key signs its own responses
 * (responderID byKey, no delegated responder certificate); status comes from a caller-supplied
 * lookup, so this stays free of I/O.
 */

export type OcspCertStatus =
  | { status: 'good' }
  | { status: 'revoked'; revokedAt: Date; reason?: RevocationReason; invalidityDate?: Date }
  | { status: 'unknown' };

/** Receives the canonical serial (lower-case hex, no leading zeros). */
export type OcspStatusLookup = (serialHex: string) => OcspCertStatus | Promise<OcspCertStatus>;

export type OcspErrorStatus = 'malformedRequest' | 'internalError' | 'tryLater' | 'sigRequired' | 'unauthorized';

const RESPONSE_STATUS: Record<OcspErrorStatus | 'successful', number> = {
  successful: 0,
  malformedRequest: 1,
  internalError: 2,
  tryLater: 3,
  sigRequired: 5,
  unauthorized: 6,
};

const OCSP_OIDS = {
  basic: '1.3.6.1.5.5.7.48.1.1',
  nonce: '1.3.6.1.5.5.7.48.1.2',
  /** id-ce-invalidityDate (RFC 5280 §5.3.2), as a singleExtension of a revoked status. */
  invalidityDate: '2.5.29.24',
} as const;

export type CertIdHash = 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512';
const CERT_ID_HASHES: Record<string, { name: CertIdHash; node: string }> = {
  '1.3.14.3.2.26': { name: 'SHA-1', node: 'sha1' },
  '2.16.840.1.101.3.4.2.1': { name: 'SHA-256', node: 'sha256' },
  '2.16.840.1.101.3.4.2.2': { name: 'SHA-384', node: 'sha384' },
  '2.16.840.1.101.3.4.2.3': { name: 'SHA-512', node: 'sha512' },
};

/** Bounds: single requests are the norm; these keep a response far below 20 KiB. */
export const MAX_OCSP_REQUEST_BYTES = 16 * 1024;
export const MAX_CERT_IDS_PER_REQUEST = 10;
/** RFC 8954 allows nonces of up to 32 octets; we echo up to 64 and refuse longer ones. */
const MAX_NONCE_OCTETS = 64;
export const DEFAULT_OCSP_VALIDITY_SECONDS = 3600;
/** thisUpdate is set slightly in the past so verifiers with a slow clock accept the response. */
const DEFAULT_THIS_UPDATE_BACKDATE_SECONDS = 60;

/** A request we cannot parse; the HTTP layer answers `ocspErrorResponse('malformedRequest')`. */
export class OcspMalformedRequestError extends PkiError {
  constructor(message: string) {
    super('MALFORMED_REQUEST', `parseOcspRequest: ${message}`, { field: 'ocspRequest' });
    this.name = 'OcspMalformedRequestError';
  }
}

export interface OcspCertId {
  /** Null when the request uses a hash we do not support (it can then never match). */
  hashAlgorithm: CertIdHash | null;
  hashAlgorithmOid: string;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  serialHex: string;
  /** DER of the CertID, echoed unchanged in the response. */
  der: Buffer;
}

export interface ParsedOcspRequest {
  certIds: OcspCertId[];
  /** The nonce extension's extnValue octets, echoed unchanged. */
  nonce?: Buffer;
}

/**
 * Parses a request. DER requests (what OpenSSL, Go, Java and NSS send) are walked directly, which
 * also yields each CertID's exact bytes for the echo; anything that is not strict DER is handed to
 * pkijs/asn1js, which accept BER. Either way the result is checked the same way.
 */
export function parseOcspRequest(der: Buffer): ParsedOcspRequest {
  if (!Buffer.isBuffer(der) || der.length === 0) throw new OcspMalformedRequestError('empty request');
  if (der.length > MAX_OCSP_REQUEST_BYTES)
    throw new OcspMalformedRequestError(`request larger than ${MAX_OCSP_REQUEST_BYTES} bytes`);
  let raw: RawRequest;
  try {
    raw = readDerRequest(der);
  } catch (error) {
    if (!(error instanceof DerParseError)) throw error;
    raw = readBerRequest(der);
  }
  if (raw.certIds.length === 0) throw new OcspMalformedRequestError('requestList is empty');
  if (raw.certIds.length > MAX_CERT_IDS_PER_REQUEST) {
    throw new OcspMalformedRequestError(`more than ${MAX_CERT_IDS_PER_REQUEST} certificates in one request`);
  }
  const certIds = raw.certIds.map((certId) => ({
    ...certId,
    hashAlgorithm: CERT_ID_HASHES[certId.hashAlgorithmOid]?.name ?? null,
    serialHex: serialHexFromIntegerContent(certId.serialContent),
  }));
  const nonce = raw.nonce;
  if (nonce && (nonce.length === 0 || nonce.length > MAX_NONCE_OCTETS + 2))
    throw new OcspMalformedRequestError('nonce length out of range');
  return { certIds: certIds.map(({ serialContent: _serial, ...rest }) => rest), nonce };
}

interface RawCertId {
  hashAlgorithmOid: string;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  serialContent: Buffer;
  der: Buffer;
}

interface RawRequest {
  certIds: RawCertId[];
  nonce?: Buffer;
}

/** Strict DER walk of OCSPRequest → TBSRequest → requestList / requestExtensions (RFC 6960 §4.1.1). */
function readDerRequest(der: Buffer): RawRequest {
  const check = (condition: boolean, what: string): void => {
    if (!condition) throw new OcspMalformedRequestError(what);
  };
  const [tbsRequest, signature, ...rest] = readChildren(readSingle(der, 0x30));
  check(
    !!tbsRequest && tbsRequest.tag === 0x30 && (!signature || signature.tag === 0xa0) && rest.length === 0,
    'not an OCSPRequest',
  );
  let fields = readChildren(tbsRequest);
  if (fields[0]?.tag === 0xa0) {
    const version = readSingle(fields[0].content, 0x02);
    check(version.content.length === 1 && version.content[0] === 0, 'unsupported request version');
    fields = fields.slice(1);
  }
  if (fields[0]?.tag === 0xa1) fields = fields.slice(1); // requestorName: not used
  const [requestList, extensions, ...extra] = fields;
  check(
    !!requestList && requestList.tag === 0x30 && (!extensions || extensions.tag === 0xa2) && extra.length === 0,
    'malformed TBSRequest',
  );
  const certIds = readChildren(requestList).map((request) => {
    check(request.tag === 0x30, 'malformed Request');
    const [certId, singleExtensions, ...more] = readChildren(request);
    check(
      !!certId && certId.tag === 0x30 && (!singleExtensions || singleExtensions.tag === 0xa0) && more.length === 0,
      'malformed Request',
    );
    const [algorithm, nameHash, keyHash, serial, ...tail] = readChildren(certId);
    check(
      !!serial &&
        tail.length === 0 &&
        algorithm.tag === 0x30 &&
        nameHash.tag === 0x04 &&
        keyHash.tag === 0x04 &&
        serial.tag === 0x02,
      'malformed CertID',
    );
    const [algorithmOid] = readChildren(algorithm);
    check(!!algorithmOid && algorithmOid.tag === 0x06, 'malformed CertID hashAlgorithm');
    return {
      hashAlgorithmOid: decodeOid(algorithmOid.content),
      issuerNameHash: Buffer.from(nameHash.content),
      issuerKeyHash: Buffer.from(keyHash.content),
      serialContent: Buffer.from(serial.content),
      der: Buffer.from(certId.raw),
    };
  });
  let nonce: Buffer | undefined;
  if (extensions) {
    for (const ext of readChildren(readSingle(extensions.content, 0x30))) {
      const parts = readChildren(ext);
      const [id, value] = [parts[0], parts[parts.length - 1]];
      check(
        ext.tag === 0x30 && parts.length >= 2 && parts.length <= 3 && id.tag === 0x06 && value.tag === 0x04,
        'malformed request extension',
      );
      if (decodeOid(id.content) === OCSP_OIDS.nonce) nonce = Buffer.from(value.content);
    }
  }
  return { certIds, nonce };
}

/** BER fallback through pkijs/asn1js for requests that are not strict DER. */
function readBerRequest(der: Buffer): RawRequest {
  let request: pkijs.OCSPRequest;
  try {
    const decoded = asn1js.fromBER(new Uint8Array(der));
    if (decoded.offset === -1 || decoded.offset !== der.length) throw new Error('not a single BER element');
    request = new pkijs.OCSPRequest({ schema: decoded.result });
  } catch (error) {
    throw new OcspMalformedRequestError(`not an OCSPRequest (${(error as Error).message})`);
  }
  const certIds = (request.tbsRequest.requestList ?? []).map(({ reqCert }) => ({
    hashAlgorithmOid: reqCert.hashAlgorithm.algorithmId,
    issuerNameHash: Buffer.from(reqCert.issuerNameHash.valueBlock.valueHexView),
    issuerKeyHash: Buffer.from(reqCert.issuerKeyHash.valueBlock.valueHexView),
    serialContent: Buffer.from(reqCert.serialNumber.valueBlock.valueHexView),
    der: Buffer.from(reqCert.toSchema().toBER(false)), // re-encoded as DER
  }));
  const nonceExtension = (request.tbsRequest.requestExtensions ?? []).find((ext) => ext.extnID === OCSP_OIDS.nonce);
  return { certIds, nonce: nonceExtension ? Buffer.from(nonceExtension.extnValue.valueBlock.valueHexView) : undefined };
}

/** One CA generation as an OCSP responder: identifiers precomputed once, reused for every response. */
export interface OcspResponder {
  readonly issuer: CaIssuer;
  /** Signature algorithm of responses. */
  readonly scheme: SignatureScheme;
  readonly verification: AcceptedSignatureAlgorithm;
  /** SHA-1 of the CA public key bits (RFC 6960 ResponderID byKey). */
  readonly responderKeyHash: Buffer;
  readonly issuerHashes: ReadonlyMap<CertIdHash, { nameHash: Buffer; keyHash: Buffer }>;
}

/**
 * @param rsaPadding RSA CAs only. Defaults to PKCS#1 v1.5: golang.org/x/crypto/ocsp, which
 *   Notation uses to check responses, does not recognise RSASSA-PSS signature algorithms.
 */
export function createOcspResponder(issuer: CaIssuer, rsaPadding: RsaPadding = 'pkcs1'): OcspResponder {
  const keyBits = subjectPublicKeyBits(issuer.publicKeySpki);
  const issuerHashes = new Map<CertIdHash, { nameHash: Buffer; keyHash: Buffer }>();
  for (const { name, node } of Object.values(CERT_ID_HASHES)) {
    issuerHashes.set(name, {
      nameHash: crypto.createHash(node).update(issuer.subjectName).digest(),
      keyHash: crypto.createHash(node).update(keyBits).digest(),
    });
  }
  const scheme = signatureSchemeFor(issuer.signer.spec, rsaPadding);
  return {
    issuer,
    scheme,
    verification: describeSignatureAlgorithm(scheme.algorithmIdentifier)!,
    responderKeyHash: issuerHashes.get('SHA-1')!.keyHash,
    issuerHashes,
  };
}

export interface OcspResponseOptions {
  /** Defaults to now. */
  now?: Date;
  /** nextUpdate − thisUpdate; default 3600 (1 h). */
  validitySeconds?: number;
}

/**
 * Answers a request: a signed BasicOCSPResponse, or `unauthorized` when a CertID names another
 * issuer (or a hash we do not support). Throws OcspMalformedRequestError for unparsable input;
 * errors from `lookup` propagate (map them with `ocspResponseForError`).
 */
export async function respondToOcspRequest(
  responder: OcspResponder,
  request: Buffer | ParsedOcspRequest,
  lookup: OcspStatusLookup,
  options: OcspResponseOptions = {},
): Promise<Buffer> {
  const parsed = Buffer.isBuffer(request) ? parseOcspRequest(request) : request;
  for (const certId of parsed.certIds) {
    const expected = certId.hashAlgorithm ? responder.issuerHashes.get(certId.hashAlgorithm) : undefined;
    if (
      !expected ||
      !expected.nameHash.equals(certId.issuerNameHash) ||
      !expected.keyHash.equals(certId.issuerKeyHash)
    ) {
      return ocspErrorResponse('unauthorized');
    }
  }
  const validitySeconds = options.validitySeconds ?? DEFAULT_OCSP_VALIDITY_SECONDS;
  if (!Number.isInteger(validitySeconds) || validitySeconds <= 0) {
    throw new PkiError('VALIDATION_ERROR', `respondToOcspRequest: 'validitySeconds' must be a positive integer`, {
      field: 'validitySeconds',
    });
  }
  const producedAt = new Date(Math.floor((options.now ?? new Date()).getTime() / 1000) * 1000);
  const thisUpdate = new Date(producedAt.getTime() - DEFAULT_THIS_UPDATE_BACKDATE_SECONDS * 1000);
  const nextUpdate = new Date(thisUpdate.getTime() + validitySeconds * 1000);

  const singleResponses: Buffer[] = [];
  for (const certId of parsed.certIds) {
    const status = await lookup(certId.serialHex);
    const single = [
      certId.der,
      encodeCertStatus(status),
      generalizedTime(thisUpdate),
      explicit(0, generalizedTime(nextUpdate)),
    ];
    // The same invalidityDate the CRL entry carries (non-critical singleExtension): verifiers that
    // know when a signature was made (an authentic signing time) compare it with this date.
    const invalidityDate = status.status === 'revoked' ? status.invalidityDate : undefined;
    if (invalidityDate !== undefined) {
      if (!(invalidityDate instanceof Date) || Number.isNaN(invalidityDate.getTime())) {
        throw new PkiError('INTERNAL', 'respondToOcspRequest: lookup returned an invalid invalidityDate', {
          field: 'invalidityDate',
        });
      }
      single.push(explicit(1, sequence(extension(OCSP_OIDS.invalidityDate, false, generalizedTime(invalidityDate)))));
    }
    singleResponses.push(sequence(...single));
  }
  const tbsParts = [
    explicit(2, octetString(responder.responderKeyHash)), // ResponderID byKey
    generalizedTime(producedAt),
    tlvOf(0x30, singleResponses),
  ];
  if (parsed.nonce) tbsParts.push(explicit(1, sequence(extension(OCSP_OIDS.nonce, false, parsed.nonce))));
  const tbs = tlvOf(0x30, tbsParts);

  const signature = await signTbs(responder.issuer.signer, responder.scheme, tbs);
  // RSA only: one faulty RSA-CRT signature published on a public endpoint can give the key away
  // (Bellcore attack). A faulty ECDSA signature leaks nothing, and loadCaIssuer already matched the
  // signer's key to the certificate, so the check (as costly as signing) is skipped there.
  if (
    responder.scheme.kind !== 'ecdsa' &&
    !verifySignature(responder.issuer.publicKeySpki, responder.verification, tbs, signature)
  ) {
    throw new PkiError('INTERNAL', 'respondToOcspRequest: response signature does not verify with the CA key', {
      field: 'signature',
    });
  }
  // No `certs`: the CA signs for itself, and Go's x/crypto/ocsp treats an embedded certificate
  // as a delegated responder that the issuer must have signed — the CA's own certificate fails that.
  const basic = sequence(tbs, responder.scheme.algorithmIdentifier, bitString(signature));
  return sequence(
    enumerated(RESPONSE_STATUS.successful),
    explicit(0, sequence(oid(OCSP_OIDS.basic), octetString(basic))),
  );
}

function encodeCertStatus(status: OcspCertStatus): Buffer {
  switch (status?.status) {
    case 'good':
      return implicitPrimitive(0, Buffer.alloc(0));
    case 'unknown':
      return implicitPrimitive(2, Buffer.alloc(0));
    case 'revoked': {
      if (!(status.revokedAt instanceof Date) || Number.isNaN(status.revokedAt.getTime())) {
        throw new PkiError('INTERNAL', 'respondToOcspRequest: lookup returned revoked without a valid revokedAt', {
          field: 'revokedAt',
        });
      }
      const parts = [generalizedTime(status.revokedAt)];
      // Like the CRL, the reason is left out for 'unspecified'.
      if (status.reason && status.reason !== 'unspecified') {
        const code = REASON_CODES[status.reason];
        if (code === undefined) {
          throw new PkiError('INTERNAL', `respondToOcspRequest: unknown revocation reason '${status.reason}'`, {
            field: 'reason',
          });
        }
        parts.push(explicit(0, enumerated(code)));
      }
      return implicitConstructed(1, ...parts);
    }
    default:
      throw new PkiError('INTERNAL', 'respondToOcspRequest: lookup returned no status', { field: 'status' });
  }
}

const errorResponses = new Map<OcspErrorStatus, Buffer>();

/** Unsigned OCSPResponse carrying only an error status (RFC 6960 §2.3). */
export function ocspErrorResponse(status: OcspErrorStatus): Buffer {
  let response = errorResponses.get(status);
  if (!response) {
    response = sequence(enumerated(RESPONSE_STATUS[status]));
    errorResponses.set(status, response);
  }
  return Buffer.from(response);
}

/** malformedRequest for OcspMalformedRequestError, internalError for anything else. */
export function ocspResponseForError(error: unknown): Buffer {
  return ocspErrorResponse(error instanceof OcspMalformedRequestError ? 'malformedRequest' : 'internalError');
}

/**
 * The request from a GET path segment (`/ocsp/{ca}/{url-encoded base64}`): URL-decodes, then
 * accepts standard or URL-safe base64, with or without padding.
 */
export function decodeOcspGetRequest(pathSegment: string): Buffer {
  let text: string;
  try {
    text = decodeURIComponent(pathSegment);
  } catch {
    throw new OcspMalformedRequestError('GET path is not valid percent-encoding');
  }
  if (text.length === 0 || text.length > Math.ceil((MAX_OCSP_REQUEST_BYTES * 4) / 3) + 4) {
    throw new OcspMalformedRequestError('GET request length out of range');
  }
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) throw new OcspMalformedRequestError('GET request is not base64');
  return Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}
