import { decode as decodeCbor, type DecodeOptions } from 'cbor2';
import { DomainError, ErrorCode } from '../common/errors';
import type { KeySpecInfo } from '../pki/key-spec';
import { AmbiguousJson, GoJsonNumber, GoJsonObject, GoJsonValue, JsonSyntaxError, parseGoJson } from './go-json';
import { ArtifactRef, parseArtifact } from './sign-request';

/**
 * Recognises what Notation hands a signing plugin — a JWS signing input
 * (`b64url(protected header) "." b64url(payload)`) or a COSE `Sig_structure`
 * (`["Signature1", protected, external_aad, payload]`, with `--signature-format cose`) — and reads
 * the artifact it signs for from those bytes, as Notation's verifier (Go) will read them:
 * JSON through go-json.ts, CBOR strictly (definite lengths, preferred encodings, no duplicate map
 * keys, no trailing bytes), base64url canonical. What could be read two ways is refused
 * (400 AMBIGUOUS_PAYLOAD), never guessed.
 *
 * - Neither (other bytes) → `undefined`: the bytes are signed as they are, without an artifact.
 * - An `alg` that is not the key's → 400 UNSUPPORTED_ALGORITHM: the envelope would claim an
 *   algorithm the signature was not made with.
 * - A header whose content type is the Notary payload's, and a payload with `targetArtifact` →
 *   that descriptor (a malformed one → 400; one without a digest → 400 ARTIFACT_REQUIRED).
 */
export interface NotarySigningInput {
  format: 'jws' | 'cose';
  alg: string | number;
  artifact?: ArtifactRef;
}

export const NOTARY_PAYLOAD_TYPE = 'application/vnd.cncf.notary.payload.v1+json';

/** COSE algorithm identifiers (RFC 9053) of the JWS algorithms the key specs sign. */
const COSE_ALG: Record<string, number> = { ES256: -7, ES384: -35, ES512: -36, PS256: -37, PS384: -38, PS512: -39 };

const SIGNING_INPUT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** 0x84 (array of 4), 0x6a (text of 10) "Signature1": how every COSE_Sign1 Sig_structure starts. */
const SIG_STRUCTURE_PREFIX = Buffer.from([0x84, 0x6a, ...Buffer.from('Signature1')]);
/** The one encoding fxamacker/cbor (go-cose) writes and reads the same way as we do. */
const CBOR_STRICT: DecodeOptions = {
  rejectDuplicateKeys: true,
  rejectStreaming: true,
  requirePreferred: true,
  rejectFloats: true,
  rejectSimple: true,
  rejectUndefined: true,
  preferMap: true,
  maxDepth: 32,
};

export function readNotarySigningInput(bytes: Buffer, info: KeySpecInfo): NotarySigningInput | undefined {
  if (
    bytes.length > SIG_STRUCTURE_PREFIX.length &&
    bytes.subarray(0, SIG_STRUCTURE_PREFIX.length).equals(SIG_STRUCTURE_PREFIX)
  )
    return readCose(bytes, info);
  return readJws(bytes, info);
}

function readJws(bytes: Buffer, info: KeySpecInfo): NotarySigningInput | undefined {
  // Cheap rejection first: a JWS signing input is printable ASCII with exactly one dot.
  const text = bytes.toString('latin1');
  if (!SIGNING_INPUT.test(text)) return undefined;
  const dot = text.indexOf('.');
  const segments = [text.slice(0, dot), text.slice(dot + 1)];
  const headerBytes = Buffer.from(segments[0], 'base64url');
  if (!looksLikeJsonObject(headerBytes)) return undefined;
  const header = readJson(headerBytes);
  if (!(header instanceof GoJsonObject)) return undefined;
  const alg = header.field('alg');
  if (typeof alg !== 'string') return undefined;
  const payloadBytes = Buffer.from(segments[1], 'base64url');
  // The regex kept padding and the standard alphabet out (Node's decoder accepts both); what is
  // left to differ from Go's base64.RawURLEncoding is a dangling character or set unused bits.
  if (!canonicalBase64url(segments[0], headerBytes) || !canonicalBase64url(segments[1], payloadBytes)) {
    throw ambiguous('a segment of the JWS signing input is not canonical unpadded base64url');
  }
  if (alg !== info.jwsAlg) {
    throw new DomainError(
      ErrorCode.UNSUPPORTED_ALGORITHM,
      `sign: the JWS protected header says alg ${JSON.stringify(alg.slice(0, 16))}, but a ${info.spec} key signs ${info.jwsAlg}`,
      { field: 'payload', expected: info.jwsAlg },
    );
  }
  if (header.field('cty') !== NOTARY_PAYLOAD_TYPE) return { format: 'jws', alg };
  const artifact = readNotaryPayload(payloadBytes);
  return artifact ? { format: 'jws', alg, artifact } : { format: 'jws', alg };
}

function canonicalBase64url(text: string, bytes: Buffer): boolean {
  return (
    text.length % 4 !== 1 && text.length === Math.ceil((bytes.length * 4) / 3) && bytes.toString('base64url') === text
  );
}

function readCose(bytes: Buffer, info: KeySpecInfo): NotarySigningInput | undefined {
  // The Sig_structure's own layout is fixed (RFC 9052 §4.4), so it is checked byte for byte in its
  // one preferred encoding — what go-cose re-encodes when it verifies; only the protected header,
  // whose content varies, goes through cbor2 (also ~0.3 ms a call, so once per request).
  let offset = SIG_STRUCTURE_PREFIX.length;
  const parts: Buffer[] = [];
  for (let i = 0; i < 3; i++) {
    const part = readByteString(bytes, offset);
    if (!part)
      throw ambiguous(
        'a COSE Sig_structure is ["Signature1", protected, external_aad, payload]: three definite-length byte strings, lengths in their shortest form',
      );
    parts.push(part.value);
    offset = part.end;
  }
  if (offset !== bytes.length) throw ambiguous('the COSE Sig_structure has data after its payload');
  const [protectedBytes, , payload] = parts;
  if (protectedBytes.length === 0) return undefined; // no protected header: no algorithm, no content type
  let header: unknown;
  try {
    header = decodeCbor(protectedBytes, CBOR_STRICT);
  } catch (error) {
    throw ambiguous(`the COSE protected header is not strict CBOR (${(error as Error).message.slice(0, 120)})`);
  }
  if (Object.prototype.toString.call(header) !== '[object Map]')
    throw ambiguous('the COSE protected header is not a map');
  const labels = header as Map<unknown, unknown>;
  const alg = labels.get(1);
  const expected = COSE_ALG[info.jwsAlg];
  if (alg !== expected) {
    throw new DomainError(
      ErrorCode.UNSUPPORTED_ALGORITHM,
      `sign: the COSE protected header says alg ${JSON.stringify(String(alg).slice(0, 16))}, but a ${info.spec} key signs ${info.jwsAlg} (${expected})`,
      {
        field: 'payload',
        expected: info.jwsAlg,
      },
    );
  }
  if (labels.get(3) !== NOTARY_PAYLOAD_TYPE) return { format: 'cose', alg: alg as number };
  const artifact = readNotaryPayload(payload);
  return artifact ? { format: 'cose', alg: alg as number, artifact } : { format: 'cose', alg: alg as number };
}

/** A CBOR byte string (major type 2) at `offset`, its length in the shortest form; else undefined. */
function readByteString(bytes: Buffer, offset: number): { value: Buffer; end: number } | undefined {
  const initial = bytes[offset];
  if (initial === undefined || initial >> 5 !== 2) return undefined;
  const info = initial & 0x1f;
  let length: number;
  let start = offset + 1;
  if (info < 24) length = info;
  else if (info === 24 && start + 1 <= bytes.length) [length, start] = [bytes[start], start + 1];
  else if (info === 25 && start + 2 <= bytes.length) [length, start] = [bytes.readUInt16BE(start), start + 2];
  else if (info === 26 && start + 4 <= bytes.length) [length, start] = [bytes.readUInt32BE(start), start + 4];
  else return undefined; // 27 (64-bit) cannot fit a 64 KiB payload; 28–31 reserved or indefinite
  const shortest =
    info < 24 || (info === 24 && length >= 24) || (info === 25 && length > 0xff) || (info === 26 && length > 0xffff);
  if (!shortest || start + length > bytes.length) return undefined;
  return { value: bytes.subarray(start, start + length), end: start + length };
}

/** JSON whitespace, then `{`: only such headers are taken for a JWS (other bytes stay opaque). */
function looksLikeJsonObject(bytes: Buffer): boolean {
  let i = 0;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) i = 3; // BOM: refused by parseGoJson
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0a || bytes[i] === 0x0d)) i++;
  return bytes[i] === 0x7b;
}

/** JSON that is not JSON (Go refuses it too) → undefined; JSON Go could read otherwise → 400. */
function readJson(bytes: Uint8Array): GoJsonValue | undefined {
  try {
    return parseGoJson(bytes);
  } catch (error) {
    if (error instanceof JsonSyntaxError) return undefined;
    if (error instanceof AmbiguousJson) throw ambiguous(error.message);
    throw error;
  }
}

/** Descriptor members Go types strictly that Signet does not read: present and not null → 400. */
const UNREAD_DESCRIPTOR_FIELDS = ['data', 'platform'];

/**
 * The Notary payload `{"targetArtifact": <OCI descriptor>}` as notation-go decodes it into
 * `envelope.Payload` (members matched by folded name; unknown members ignored; a value of the
 * wrong type fails Go's decoding, so it is refused here). `undefined` when there is no
 * targetArtifact to read.
 */
export function readNotaryPayload(bytes: Uint8Array): ArtifactRef | undefined {
  const payload = readJson(bytes);
  if (!(payload instanceof GoJsonObject)) return undefined;
  const target = payload.field('targetArtifact');
  if (target === undefined || target === null) return undefined;
  if (!(target instanceof GoJsonObject))
    throw invalidTarget("'payload.targetArtifact' must be an object (an OCI descriptor)");
  const digest = target.field('digest');
  if (digest === undefined || digest === null) {
    throw new DomainError(ErrorCode.ARTIFACT_REQUIRED, "sign: the payload's targetArtifact has no digest", {
      field: 'payload.targetArtifact.digest',
    });
  }
  const mediaType = target.field('mediaType');
  const size = target.field('size');
  if (!(
    size === undefined ||
    size === null ||
    (size instanceof GoJsonNumber && /^(0|[1-9][0-9]{0,15})$/.test(size.literal))
  )) {
    throw invalidTarget(
      "'payload.targetArtifact.size' must be a non-negative whole number without fraction or exponent",
    );
  }
  checkOptional(
    target.field('annotations'),
    'annotations',
    (v) =>
      v instanceof GoJsonObject &&
      [...v.members.values()].every(([, value]) => value === null || typeof value === 'string'),
  );
  checkOptional(
    target.field('urls'),
    'urls',
    (v) => Array.isArray(v) && v.every((item) => item === null || typeof item === 'string'),
  );
  checkOptional(target.field('artifactType'), 'artifactType', (v) => typeof v === 'string');
  for (const name of UNREAD_DESCRIPTOR_FIELDS) checkOptional(target.field(name), name, () => false);
  const artifact = parseArtifact(
    {
      digest,
      ...(mediaType === undefined || mediaType === null ? {} : { mediaType }),
      ...(size instanceof GoJsonNumber ? { size: Number(size.literal) } : {}),
    },
    'payload.targetArtifact',
  );
  // The Notary payload's targetArtifact is a full OCI descriptor.
  if (artifact.mediaType === undefined || artifact.size === undefined) {
    throw invalidTarget("sign: the payload's targetArtifact needs mediaType, digest and size");
  }
  return artifact;
}

function checkOptional(value: GoJsonValue | undefined, name: string, valid: (value: GoJsonValue) => boolean): void {
  if (value === undefined || value === null || valid(value)) return;
  throw invalidTarget(
    UNREAD_DESCRIPTOR_FIELDS.includes(name)
      ? `'payload.targetArtifact.${name}' is not read by Signet; send the descriptor without it`
      : `'payload.targetArtifact.${name}' has the wrong type for an OCI descriptor`,
  );
}

function invalidTarget(message: string): DomainError {
  return new DomainError(ErrorCode.VALIDATION_ERROR, message.startsWith('sign: ') ? message : `sign: ${message}`, {
    field: 'payload.targetArtifact',
  });
}

function ambiguous(message: string): DomainError {
  return new DomainError(
    ErrorCode.AMBIGUOUS_PAYLOAD,
    `sign: ${message}; Signet refuses what a verifier could read differently`,
    { field: 'payload' },
  );
}
