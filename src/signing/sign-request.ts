import { DomainError, ErrorCode } from '../common/errors';
import { HASH_LENGTH, HashAlgorithm, isHashAlgorithm, KeySpecInfo } from '../pki/key-spec';

/**
 * The body of `POST /v1/keys/{name}/sign` (API.md), checked by hand: the route is the hot path and
 * every check here runs before the HSM is touched. Two stages: `parseSignRequest` checks what does
 * not depend on the key (shape, types, base64, sizes); `checkAgainstKey` what does (the hash the
 * key spec pairs with, the digest length, the signature format).
 */
export const MAX_PAYLOAD_BYTES = 64 * 1024;

export type SignatureFormat = 'raw' | 'der';

/** An OCI descriptor's identity: `sha256:<64 hex>` (or sha384 / sha512), lower-case hex as OCI requires. */
export interface ArtifactRef {
  digest: string;
  mediaType?: string;
  size?: number;
}

/** Where a signature's artifact came from: read from the signed bytes, or the client's `artifact` field. */
export type ArtifactSource = 'payload' | 'claimed';

export interface SignRequest {
  mode: 'digest' | 'payload';
  /** Digest mode: the client's digest. Payload mode: the decoded bytes to hash. */
  bytes: Buffer;
  /** Base64 text as received (for the idempotency fingerprint). */
  encoded: string;
  hashAlgorithm: string;
  signatureFormat: SignatureFormat;
  artifact?: ArtifactRef;
  idempotencyKey?: string;
}

const FIELDS = new Set(['digest', 'payload', 'hashAlgorithm', 'artifact', 'signatureFormat', 'idempotencyKey']);
const ARTIFACT_FIELDS = new Set(['digest', 'mediaType', 'size']);
const ARTIFACT_DIGEST = /^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$/;
/** RFC 6838 type/subtype with an optional +suffix, as OCI media types are written. */
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
/** Printable ASCII: it is stored and shown in audit exports; it is not a secret. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
/** Base64 length of the largest payload; longer text is refused before it is decoded. */
const MAX_PAYLOAD_BASE64 = Math.ceil(MAX_PAYLOAD_BYTES / 3) * 4;
/** Longer than any digest's base64 (SHA-512: 88): refused as a wrong length without decoding. */
const MAX_DIGEST_BASE64 = 4 * 1024;

function invalid(
  message: string,
  field: string,
  code = ErrorCode.VALIDATION_ERROR,
  details: Record<string, unknown> = {},
): DomainError {
  return new DomainError(code, `sign: ${message}`, { field, ...details });
}

/**
 * Standard base64 with padding, strictly: Node's decoder skips characters it does not know, so the
 * decoded bytes are re-encoded and must give back the exact text (canonical form only).
 */
export function decodeBase64Strict(text: string): Buffer | undefined {
  if (text.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

export function parseSignRequest(body: unknown): SignRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalid('the body must be a JSON object', 'body');
  }
  const input = body as Record<string, unknown>;
  let unknown: string[] | undefined;
  for (const field in input) {
    if (!FIELDS.has(field)) (unknown ??= []).push(field);
  }
  if (unknown)
    throw invalid(
      `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((f) => `'${clip(f)}'`).join(', ')}`,
      unknown.map(clip).join(','),
      ErrorCode.VALIDATION_ERROR,
      { unknownFields: unknown.map(clip) },
    );

  const { digest, payload, hashAlgorithm, signatureFormat, idempotencyKey } = input;
  if ((digest === undefined) === (payload === undefined)) {
    throw invalid(
      "give exactly one of 'digest' (a digest you computed) or 'payload' (the bytes Signet hashes)",
      digest === undefined ? 'digest' : 'payload',
    );
  }
  if (hashAlgorithm === undefined)
    throw invalid(
      "'hashAlgorithm' is required (SHA-256, SHA-384 or SHA-512, the one the key spec pairs with)",
      'hashAlgorithm',
    );
  if (typeof hashAlgorithm !== 'string') throw invalid("'hashAlgorithm' must be a string", 'hashAlgorithm');
  if (signatureFormat !== undefined && signatureFormat !== 'raw' && signatureFormat !== 'der') {
    throw invalid('\'signatureFormat\' must be "raw" or "der"', 'signatureFormat');
  }
  if (idempotencyKey !== undefined && (typeof idempotencyKey !== 'string' || !IDEMPOTENCY_KEY.test(idempotencyKey))) {
    throw invalid("'idempotencyKey' must be 1 to 255 printable ASCII characters without spaces", 'idempotencyKey');
  }

  let mode: SignRequest['mode'];
  let encoded: string;
  let bytes: Buffer | undefined;
  if (digest !== undefined) {
    mode = 'digest';
    if (typeof digest !== 'string') throw invalid("'digest' must be a base64 string", 'digest');
    encoded = digest;
    if (digest.length > MAX_DIGEST_BASE64) {
      throw invalid(
        `'digest' is ${digest.length} base64 characters, far longer than any digest`,
        'digest',
        ErrorCode.INVALID_DIGEST_LENGTH,
      );
    }
    bytes = decodeBase64Strict(digest);
    if (!bytes)
      throw invalid(
        "'digest' is not valid base64 (standard alphabet, with padding)",
        'digest',
        ErrorCode.INVALID_BASE64,
      );
  } else {
    mode = 'payload';
    if (typeof payload !== 'string') throw invalid("'payload' must be a base64 string", 'payload');
    encoded = payload;
    if (payload.length > MAX_PAYLOAD_BASE64) {
      throw invalid(`'payload' is larger than ${MAX_PAYLOAD_BYTES} bytes`, 'payload', ErrorCode.PAYLOAD_TOO_LARGE, {
        maxBytes: MAX_PAYLOAD_BYTES,
      });
    }
    bytes = decodeBase64Strict(payload);
    if (!bytes)
      throw invalid(
        "'payload' is not valid base64 (standard alphabet, with padding)",
        'payload',
        ErrorCode.INVALID_BASE64,
      );
    if (bytes.length === 0) throw invalid("'payload' is empty", 'payload');
    if (bytes.length > MAX_PAYLOAD_BYTES) {
      throw invalid(`'payload' is larger than ${MAX_PAYLOAD_BYTES} bytes`, 'payload', ErrorCode.PAYLOAD_TOO_LARGE, {
        maxBytes: MAX_PAYLOAD_BYTES,
      });
    }
  }

  return {
    mode,
    bytes,
    encoded,
    hashAlgorithm,
    signatureFormat: signatureFormat ?? 'raw',
    artifact: input.artifact === undefined ? undefined : parseArtifact(input.artifact, 'artifact'),
    idempotencyKey: idempotencyKey as string | undefined,
  };
}

/**
 * A balancer retries a sign request carrying an `Idempotency-Key` header on another replica
 * (deploy/nginx/signet.conf): the header must name the body's `idempotencyKey`, so that the retry
 * returns the first answer instead of signing twice.
 */
export function checkIdempotencyHeader(header: string | string[] | undefined, body: unknown): void {
  if (header === undefined) return;
  const key = body !== null && typeof body === 'object' ? (body as Record<string, unknown>).idempotencyKey : undefined;
  if (header !== key) {
    throw invalid(
      "the Idempotency-Key header must equal the body's 'idempotencyKey' (balancers retry requests that carry the header)",
      'idempotencyKey',
    );
  }
}

/** `{digest, mediaType?, size?}` with nothing else; also used for a JWS payload's targetArtifact (extra fields allowed there). */
export function parseArtifact(
  value: unknown,
  field: string,
  options: { allowExtraFields?: boolean } = {},
): ArtifactRef {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalid(`'${field}' must be an object with a 'digest'`, field);
  const input = value as Record<string, unknown>;
  if (!options.allowExtraFields) {
    const unknown = Object.keys(input).filter((k) => !ARTIFACT_FIELDS.has(k));
    if (unknown.length > 0)
      throw invalid(
        `'${field}' has unknown fields ${unknown.map((f) => `'${clip(f)}'`).join(', ')}`,
        field,
        ErrorCode.VALIDATION_ERROR,
        { unknownFields: unknown.map(clip) },
      );
  }
  const { digest, mediaType, size } = input;
  if (typeof digest !== 'string' || !ARTIFACT_DIGEST.test(digest)) {
    throw invalid(
      `'${field}.digest' must be "sha256:" followed by 64 lower-case hex digits (or sha384:/sha512: with 96/128)`,
      `${field}.digest`,
    );
  }
  if (mediaType !== undefined && (typeof mediaType !== 'string' || !MEDIA_TYPE.test(mediaType))) {
    throw invalid(
      `'${field}.mediaType' must be a media type such as application/vnd.oci.image.manifest.v1+json`,
      `${field}.mediaType`,
    );
  }
  if (size !== undefined && (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)) {
    throw invalid(`'${field}.size' must be a non-negative whole number`, `${field}.size`);
  }
  const artifact: ArtifactRef = { digest };
  if (mediaType !== undefined) artifact.mediaType = mediaType as string;
  if (size !== undefined) artifact.size = size as number;
  return artifact;
}

/**
 * The checks that need the key: the one hash its spec pairs with (NOTARY.md), the digest length of
 * that hash, and a signature format the algorithm has. RSA-PSS signatures are an octet string with
 * no DER form, so RSA keys accept `raw` only.
 */
export function checkAgainstKey(request: SignRequest, info: KeySpecInfo): HashAlgorithm {
  if (!isHashAlgorithm(request.hashAlgorithm) || request.hashAlgorithm !== info.hash) {
    throw invalid(
      `a ${info.spec} key signs with ${info.hash} (${info.signingAlgorithm}); got hashAlgorithm ${JSON.stringify(clip(request.hashAlgorithm))}`,
      'hashAlgorithm',
      ErrorCode.UNSUPPORTED_ALGORITHM,
      {
        expected: info.hash,
      },
    );
  }
  if (request.mode === 'digest' && request.bytes.length !== HASH_LENGTH[info.hash]) {
    throw invalid(
      `'digest' is ${request.bytes.length} bytes; a ${info.hash} digest is ${HASH_LENGTH[info.hash]}`,
      'digest',
      ErrorCode.INVALID_DIGEST_LENGTH,
      {
        expectedBytes: HASH_LENGTH[info.hash],
      },
    );
  }
  if (request.signatureFormat === 'der' && info.kind !== 'EC') {
    throw invalid(
      `signatureFormat "der" exists for ECDSA only; ${info.signingAlgorithm} signatures are returned raw`,
      'signatureFormat',
    );
  }
  return info.hash;
}

/** Caller-chosen text echoed in messages is cut short. */
function clip(text: string): string {
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}
