import { canonicalString } from './audit-canonical';

/** The `data` of a `sign` audit event (one per signature the HSM made for the API). */
export interface SignEventData {
  version: number;
  keySpec: string;
  algorithm: string;
  /** `<hash>:<hex>`, e.g. `sha256:…`. */
  digest: string;
  mode: string;
  signatureFormat: string;
  /** Base64 of the signature as returned. */
  signature: string;
  artifact: { digest: string; mediaType?: string; size?: number } | null;
  /**
   * With an artifact: `payload` when Signet read it from the signed bytes (JWS / COSE), `claimed`
   * when it is the client's `artifact` field, which Signet cannot check. Absent on rows written
   * before it existed.
   */
  artifactSource?: string;
  idempotencyKey?: string;
}

/**
 * canonicalJson(normaliseJson(data)) for a sign event, written directly in RFC 8785 member order
 * (algorithm, artifact, artifactSource, digest, idempotencyKey, keySpec, mode, signature, signatureFormat, version;
 * artifact: digest, mediaType, size). The generic walk sorts keys and allocates per member on every
 * signature; this is the signing hot path. `sign-event.spec.ts` holds it to the generic result.
 */
export function signEventDataJson(data: SignEventData): string {
  let json = `{"algorithm":${canonicalString(data.algorithm)},"artifact":${artifactJson(data.artifact)}`;
  if (data.artifactSource !== undefined) json += `,"artifactSource":${canonicalString(data.artifactSource)}`;
  json += `,"digest":${canonicalString(data.digest)}`;
  if (data.idempotencyKey !== undefined) json += `,"idempotencyKey":${canonicalString(data.idempotencyKey)}`;
  return (
    json +
    `,"keySpec":${canonicalString(data.keySpec)},"mode":${canonicalString(data.mode)},"signature":${canonicalString(data.signature)}` +
    `,"signatureFormat":${canonicalString(data.signatureFormat)},"version":${canonicalNumber(data.version)}}`
  );
}

function artifactJson(artifact: SignEventData['artifact']): string {
  if (artifact === null) return 'null';
  let json = `{"digest":${canonicalString(artifact.digest)}`;
  if (artifact.mediaType !== undefined) json += `,"mediaType":${canonicalString(artifact.mediaType)}`;
  if (artifact.size !== undefined) json += `,"size":${canonicalNumber(artifact.size)}`;
  return `${json}}`;
}

/** normaliseJson turns non-finite numbers into null; JSON.stringify writes the rest as RFC 8785 does. */
function canonicalNumber(value: number): string {
  return Number.isFinite(value) ? JSON.stringify(value) : 'null';
}
