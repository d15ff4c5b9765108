import { createHash } from 'node:crypto';
import { DomainError, ErrorCode } from '../../common/errors';
import { TruststoreBundle } from './trust-target';

/**
 * The truststore bundle as an OCI artifact (NOTARY.md): an image manifest with our artifactType,
 * the empty config descriptor, one layer per format titled with its file name, and annotations
 * carrying the truststore version and content digest so a read-back can tell what a tag holds.
 * Pure code: same bundle and creation time in, same manifest bytes out.
 */
export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const TRUSTSTORE_ARTIFACT_TYPE = 'application/vnd.signet.truststore.v1';
export const EMPTY_CONFIG = {
  mediaType: 'application/vnd.oci.empty.v1+json',
  digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
  size: 2,
  content: Buffer.from('{}'),
} as const;

export const ANNOTATION_TITLE = 'org.opencontainers.image.title';
export const ANNOTATION_VERSION = 'org.opencontainers.image.version';
export const ANNOTATION_CREATED = 'org.opencontainers.image.created';
export const ANNOTATION_DIGEST = 'io.signet.truststore.digest';
const RESERVED_ANNOTATIONS = new Set([ANNOTATION_VERSION, ANNOTATION_CREATED, ANNOTATION_DIGEST]);

export const CURRENT_TAG = 'current';

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  content: Buffer;
}

export interface BuiltManifest {
  bytes: Buffer;
  digest: string;
  /** The config blob and every layer, deduplicated by digest. */
  blobs: Blob[];
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
const TITLE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/; // also a valid ConfigMap key
// OCI distribution spec, repository name grammar
const REPOSITORY = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;

export function sha256Digest(content: Buffer): string {
  return `sha256:${createHash('sha256').update(content).digest('hex')}`;
}

export function versionTag(version: number): string {
  return `v${version}`;
}

export function isValidRepository(name: string): boolean {
  return name.length <= 255 && REPOSITORY.test(name);
}

/** Rejects a malformed bundle before any network traffic. Messages name the field. */
export function validateBundle(bundle: TruststoreBundle): void {
  const fail = (field: string, problem: string): never => {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `push: '${field}' ${problem}`, { field });
  };
  if (!Number.isSafeInteger(bundle.version) || bundle.version < 1) fail('version', 'must be a positive integer');
  if (!DIGEST.test(bundle.digest)) fail('digest', 'must be sha256:<64 lower-case hex>');
  if (!Array.isArray(bundle.layers) || bundle.layers.length === 0) fail('layers', 'must hold at least one layer');
  const titles = new Set<string>();
  bundle.layers.forEach((layer, i) => {
    if (!MEDIA_TYPE.test(layer.mediaType)) fail(`layers[${i}].mediaType`, 'must be a media type (type/subtype)');
    if (!TITLE.test(layer.title))
      fail(`layers[${i}].title`, 'must be a file name of letters, digits, ".", "_" and "-"');
    if (titles.has(layer.title)) fail(`layers[${i}].title`, 'must be unique within the bundle');
    titles.add(layer.title);
    if (!Buffer.isBuffer(layer.content)) fail(`layers[${i}].content`, 'must be a Buffer');
  });
  if (bundle.createdAt !== undefined && Number.isNaN(Date.parse(bundle.createdAt)))
    fail('createdAt', 'must be an RFC 3339 time');
  for (const [key, value] of Object.entries(bundle.annotations ?? {})) {
    if (RESERVED_ANNOTATIONS.has(key)) fail(`annotations.${key}`, 'is set by Signet');
    if (typeof value !== 'string') fail(`annotations.${key}`, 'must be a string');
  }
}

export function buildManifest(bundle: TruststoreBundle, createdAt: string): BuiltManifest {
  const layers = bundle.layers.map((layer) => ({
    mediaType: layer.mediaType,
    digest: sha256Digest(layer.content),
    size: layer.content.length,
    annotations: { [ANNOTATION_TITLE]: layer.title },
    content: layer.content,
  }));
  const annotations = sortedRecord({
    ...(bundle.annotations ?? {}),
    [ANNOTATION_CREATED]: createdAt,
    [ANNOTATION_DIGEST]: bundle.digest,
    [ANNOTATION_VERSION]: String(bundle.version),
  });
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    artifactType: TRUSTSTORE_ARTIFACT_TYPE,
    config: { mediaType: EMPTY_CONFIG.mediaType, digest: EMPTY_CONFIG.digest, size: EMPTY_CONFIG.size },
    layers: layers.map(({ mediaType, digest, size, annotations: layerAnnotations }) => ({
      mediaType,
      digest,
      size,
      annotations: layerAnnotations,
    })),
    annotations,
  };
  const bytes = Buffer.from(JSON.stringify(manifest), 'utf8');
  const blobs = new Map<string, Blob>();
  blobs.set(EMPTY_CONFIG.digest, {
    mediaType: EMPTY_CONFIG.mediaType,
    digest: EMPTY_CONFIG.digest,
    size: EMPTY_CONFIG.size,
    content: EMPTY_CONFIG.content,
  });
  for (const layer of layers)
    blobs.set(layer.digest, {
      mediaType: layer.mediaType,
      digest: layer.digest,
      size: layer.size,
      content: layer.content,
    });
  return { bytes, digest: sha256Digest(bytes), blobs: [...blobs.values()] };
}

export interface ParsedManifest {
  artifactType?: string;
  annotations: Record<string, string>;
  /** Digests of config and layers. */
  references: string[];
}

/** Reads a manifest defensively: anything unexpected yields `undefined`, never a throw. */
export function parseManifest(bytes: Buffer): ParsedManifest | undefined {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const record = json as Record<string, unknown>;
  if (record.schemaVersion !== 2) return undefined;
  const annotations: Record<string, string> = {};
  if (typeof record.annotations === 'object' && record.annotations !== null) {
    for (const [key, value] of Object.entries(record.annotations as Record<string, unknown>))
      if (typeof value === 'string') annotations[key] = value;
  }
  const references: string[] = [];
  const collect = (descriptor: unknown) => {
    const digest = (descriptor as { digest?: unknown } | null)?.digest;
    if (typeof digest === 'string' && DIGEST.test(digest)) references.push(digest);
  };
  collect(record.config);
  if (Array.isArray(record.layers)) record.layers.forEach(collect);
  return {
    ...(typeof record.artifactType === 'string' ? { artifactType: record.artifactType } : {}),
    annotations,
    references,
  };
}

/** The truststore version and digest a manifest's annotations claim, if they are well-formed. */
export function truststoreIdentity(manifest: ParsedManifest): { digest?: string; version?: number } {
  const digest = manifest.annotations[ANNOTATION_DIGEST];
  const version = Number(manifest.annotations[ANNOTATION_VERSION]);
  return {
    ...(digest && DIGEST.test(digest) ? { digest } : {}),
    ...(Number.isSafeInteger(version) && version > 0 ? { version } : {}),
  };
}

function sortedRecord(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
