import { DomainError, ErrorCode } from '../common/errors';
import type { KeySpecInfo } from '../common/key-spec';
import { ArtifactRef, parseArtifact } from './sign-request';

/**
 * Recognises a Notary Project JWS signing input — `b64url(protected header) "." b64url(payload)`,
 * what notation-signet sends in payload mode — and reads the artifact it signs for.
 *
 * - Not a JWS (anything else: two base64url segments whose header is not a JSON object with an
 *   `alg`) → `undefined`; the bytes are signed as they are, without an artifact.
 * - A JWS whose `alg` is not the key's (ES256 for EC-256, PS384 for RSA-3072, …) → 400: the
 *   envelope would claim an algorithm the signature was not made with.
 * - A JWS whose payload holds `targetArtifact` → that descriptor (its digest checked like an
 *   `artifact.digest`); a malformed one → 400.
 */
export interface JwsSigningInput {
  alg: string;
  artifact?: ArtifactRef;
}

const SIGNING_INPUT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export function readJwsSigningInput(bytes: Buffer, info: KeySpecInfo): JwsSigningInput | undefined {
  // Cheap rejection first: a JWS signing input is printable ASCII with exactly one dot.
  const text = bytes.toString('latin1');
  if (!SIGNING_INPUT.test(text)) return undefined;
  const dot = text.indexOf('.');
  const header = parseJsonObject(text.slice(0, dot));
  if (!header || typeof header.alg !== 'string') return undefined;
  if (header.alg !== info.jwsAlg) {
    throw new DomainError(
      ErrorCode.UNSUPPORTED_ALGORITHM,
      `sign: the JWS protected header says alg ${JSON.stringify(header.alg.slice(0, 16))}, but a ${info.spec} key signs ${info.jwsAlg}`,
      { field: 'payload', expected: info.jwsAlg },
    );
  }
  const payload = parseJsonObject(text.slice(dot + 1));
  if (!payload || payload.targetArtifact === undefined) return { alg: header.alg };
  const artifact = parseArtifact(payload.targetArtifact, 'payload.targetArtifact', { allowExtraFields: true });
  // The Notary payload's targetArtifact is a full OCI descriptor.
  if (artifact.mediaType === undefined || artifact.size === undefined) {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, "sign: the JWS payload's targetArtifact needs mediaType, digest and size", { field: 'payload.targetArtifact' });
  }
  return { alg: header.alg, artifact };
}

function parseJsonObject(segment: string): Record<string, unknown> | undefined {
  const json = Buffer.from(segment, 'base64url').toString('utf8');
  if (!json.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(json);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
