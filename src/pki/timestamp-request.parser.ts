import { HASH_LENGTH, HashAlgorithm } from './key-spec';
import { DerElement, DerParseError, decodeOid, readChildren, readSingle } from './der-reader';
import { IMPRINT_HASH_BY_OID } from './rfc3161-oids';
import { TimestampRejection } from './timestamp-rejection';

/** A TimeStampReq (RFC 3161 §2.4.1) the TSA accepted for processing. */
export interface TimestampRequest {
  hashAlgorithm: HashAlgorithm;
  hashedMessage: Buffer;
  /** The MessageImprint exactly as the client encoded it: copied into TSTInfo unchanged (§2.4.2). */
  messageImprintDer: Buffer;
  /** Requested TSA policy (dotted), if any. */
  reqPolicy?: string;
  /** The nonce INTEGER exactly as sent (whole TLV), echoed into TSTInfo. */
  nonceDer?: Buffer;
  /** The nonce as a number, for the audit trail. */
  nonce?: bigint;
  certReq: boolean;
}

/** Nonces are 64–160-bit random numbers in practice; anything far larger is not a nonce. */
export const MAX_NONCE_BYTES = 64;

const TAG = {
  integer: 0x02,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  boolean: 0x01,
  sequence: 0x30,
  extensions: 0xa0,
} as const;

/**
 * Parses a DER TimeStampReq. Every problem becomes a TimestampRejection with the PKIFailureInfo
 * RFC 3161 names for it, so a malformed query is answered with a `rejection`, never a 500.
 *
 *   TimeStampReq ::= SEQUENCE { version INTEGER { v1(1) }, messageImprint MessageImprint,
 *     reqPolicy TSAPolicyId OPTIONAL, nonce INTEGER OPTIONAL, certReq BOOLEAN DEFAULT FALSE,
 *     extensions [0] IMPLICIT Extensions OPTIONAL }
 */
export function parseTimestampRequest(der: Buffer | undefined, maxBytes: number): TimestampRequest {
  if (!der || der.length === 0) throw new TimestampRejection('badDataFormat', 'empty time-stamp query');
  if (der.length > maxBytes)
    throw new TimestampRejection('badDataFormat', `time-stamp query larger than ${maxBytes} bytes`);
  let fields: DerElement[];
  try {
    fields = readChildren(readSingle(der, TAG.sequence));
  } catch (error) {
    throw malformed('TimeStampReq', error);
  }

  const [version, imprint, ...optional] = fields;
  if (!version || version.tag !== TAG.integer || version.content.length !== 1 || version.content[0] !== 1) {
    throw new TimestampRejection('badDataFormat', 'TimeStampReq version must be 1');
  }
  if (!imprint || imprint.tag !== TAG.sequence)
    throw new TimestampRejection('badDataFormat', 'TimeStampReq has no messageImprint');
  const { hashAlgorithm, hashedMessage } = parseMessageImprint(imprint);

  const request: TimestampRequest = {
    hashAlgorithm,
    hashedMessage,
    messageImprintDer: Buffer.from(imprint.raw),
    certReq: false,
  };
  // The optional fields have distinct tags and a fixed order; anything else is malformed.
  const order = [TAG.oid, TAG.integer, TAG.boolean, TAG.extensions];
  let position = 0;
  for (const field of optional) {
    const index = order.indexOf(field.tag as (typeof order)[number], position);
    if (index < 0)
      throw new TimestampRejection(
        'badDataFormat',
        `unexpected field (tag 0x${field.tag.toString(16)}) in TimeStampReq`,
      );
    position = index + 1;
    switch (field.tag) {
      case TAG.oid:
        request.reqPolicy = oidText(field, 'reqPolicy');
        break;
      case TAG.integer:
        if (field.content.length === 0 || field.content.length > MAX_NONCE_BYTES) {
          throw new TimestampRejection('badDataFormat', `nonce must be 1..${MAX_NONCE_BYTES} bytes`);
        }
        request.nonceDer = Buffer.from(field.raw);
        request.nonce = signedInteger(field.content);
        break;
      case TAG.boolean:
        if (field.content.length !== 1) throw new TimestampRejection('badDataFormat', 'certReq is not a BOOLEAN');
        request.certReq = field.content[0] !== 0;
        break;
      case TAG.extensions:
        // §2.4.2: an extension the TSA does not recognise, critical or not, means no token.
        throw new TimestampRejection('unacceptedExtension', 'this TSA supports no request extensions');
    }
  }
  return request;
}

/** MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING } */
function parseMessageImprint(imprint: DerElement): { hashAlgorithm: HashAlgorithm; hashedMessage: Buffer } {
  let algorithm: DerElement | undefined;
  let hashed: DerElement | undefined;
  let algorithmFields: DerElement[];
  try {
    const parts = readChildren(imprint);
    if (parts.length !== 2) throw new DerParseError('MessageImprint must have two fields');
    [algorithm, hashed] = parts;
    if (algorithm.tag !== TAG.sequence || hashed.tag !== TAG.octetString)
      throw new DerParseError('MessageImprint fields have the wrong types');
    algorithmFields = readChildren(algorithm);
  } catch (error) {
    throw malformed('messageImprint', error);
  }
  const [oid, parameters, ...rest] = algorithmFields;
  if (!oid || oid.tag !== TAG.oid || rest.length)
    throw new TimestampRejection('badDataFormat', 'messageImprint hashAlgorithm is not an AlgorithmIdentifier');
  const dotted = oidText(oid, 'hashAlgorithm');
  const hashAlgorithm = IMPRINT_HASH_BY_OID.get(dotted);
  if (!hashAlgorithm)
    throw new TimestampRejection(
      'badAlg',
      `unsupported message-imprint hash algorithm ${dotted} (SHA-256, SHA-384 or SHA-512)`,
    );
  // SHA-2 identifiers come with absent or NULL parameters (RFC 5754 §2); accept both.
  if (parameters && !(parameters.tag === TAG.null && parameters.content.length === 0)) {
    throw new TimestampRejection('badAlg', `unexpected parameters for ${hashAlgorithm}`);
  }
  const hashedMessage = Buffer.from(hashed!.content);
  if (hashedMessage.length !== HASH_LENGTH[hashAlgorithm]) {
    throw new TimestampRejection(
      'badDataFormat',
      `hashedMessage is ${hashedMessage.length} bytes; ${hashAlgorithm} needs ${HASH_LENGTH[hashAlgorithm]}`,
    );
  }
  return { hashAlgorithm, hashedMessage };
}

function oidText(element: DerElement, field: string): string {
  if (element.content.length === 0 || element.content[element.content.length - 1] & 0x80) {
    throw new TimestampRejection('badDataFormat', `${field} is not a valid OBJECT IDENTIFIER`);
  }
  try {
    return decodeOid(element.content);
  } catch (error) {
    throw malformed(field, error);
  }
}

function signedInteger(content: Buffer): bigint {
  const magnitude = BigInt('0x' + content.toString('hex'));
  return content[0] & 0x80 ? magnitude - (1n << BigInt(content.length * 8)) : magnitude;
}

function malformed(what: string, error: unknown): TimestampRejection {
  if (error instanceof TimestampRejection) return error;
  const reason = error instanceof DerParseError ? error.message : 'not DER';
  return new TimestampRejection('badDataFormat', `malformed ${what}: ${reason}`);
}
