import {
  BasicCredentials,
  PushResult,
  TargetState,
  TrustTarget,
  TrustTargetKind,
  TruststoreBundle,
} from './trust-target';
import {
  ANNOTATION_CREATED,
  buildManifest,
  BuiltManifest,
  CURRENT_TAG,
  parseManifest,
  truststoreIdentity,
  TRUSTSTORE_ARTIFACT_TYPE,
  validateBundle,
  versionTag,
} from './oci-artifact';
import { OciRegistryClient } from './oci-registry-client';
import { OutboundHttp } from './outbound-http';

export interface OciRegistryDriverConfig {
  endpoint: URL;
  repository: string;
  credentials?: BasicCredentials;
  http: OutboundHttp;
  /** Reported as `kind`; Harbor reuses this driver for its OCI part. */
  kind?: TrustTargetKind;
  now?: () => Date;
}

/**
 * Pushes a truststore bundle to any OCI registry as an artifact tagged `v<version>` and `current`
 * (NOTARY.md, "Truststore bundle as an OCI artifact"), and reads back what `current` holds.
 *
 * Idempotent: blobs already present are not uploaded again; a version tag that already holds this
 * bundle's digest is re-tagged with its existing manifest bytes, so the manifest digest does not
 * change between pushes. A version tag holding a *different* digest is a conflict, never overwritten,
 * and so is a `current` that already holds a newer version: versions only move forward.
 */
export class OciRegistryDriver implements TrustTarget {
  readonly kind: TrustTargetKind;
  readonly description: string;
  private readonly client: OciRegistryClient;
  private readonly now: () => Date;

  constructor(private readonly config: OciRegistryDriverConfig) {
    this.kind = config.kind ?? 'oci-registry';
    this.description = config.http.target;
    this.client = new OciRegistryClient(config.http, config.endpoint, config.repository, config.credentials);
    this.now = config.now ?? (() => new Date());
  }

  /** The authenticator's token-fetch count; tests use it to prove tokens are cached per scope. */
  get tokenFetches(): number {
    return this.client.auth.tokenFetches;
  }

  async push(bundle: TruststoreBundle, signal: AbortSignal): Promise<PushResult> {
    validateBundle(bundle);
    const scopes = this.client.pushScopes;
    const tag = versionTag(bundle.version);
    const built = buildManifest(bundle, bundle.createdAt ?? this.now().toISOString());

    let manifest: { bytes: Buffer; digest: string } = built;
    const existing = await this.client.getManifest(tag, scopes, signal);
    if (existing) {
      const parsed = parseManifest(existing.bytes);
      const identity = parsed && parsed.artifactType === TRUSTSTORE_ARTIFACT_TYPE ? truststoreIdentity(parsed) : {};
      if (identity.digest !== bundle.digest) {
        throw this.config.http.error(
          'conflict',
          `tag ${tag} already holds other content${identity.digest ? ` (truststore ${identity.digest})` : ''}; refusing to overwrite it`,
          'push',
          {
            tag,
            heldDigest: identity.digest,
            manifestDigest: existing.digest,
          },
        );
      }
      // Same truststore already pushed (an earlier attempt, another replica): keep its manifest so
      // the tag's digest stays put, unless some blob it references has gone missing.
      const ours = new Set(built.blobs.map((b) => b.digest));
      const references = parsed!.references;
      if (references.every((d) => ours.has(d))) {
        manifest = existing;
      } else {
        const createdAt = parsed!.annotations[ANNOTATION_CREATED];
        manifest = buildManifest(
          bundle,
          bundle.createdAt ??
            (createdAt && !Number.isNaN(Date.parse(createdAt)) ? createdAt : this.now().toISOString()),
        );
      }
    }

    // A late push of an older version (a replica whose lease ran out) must not move `current` back.
    const held = await this.readCurrent(scopes, signal);
    if (held.version !== undefined && held.version > bundle.version) {
      throw this.config.http.error(
        'conflict',
        `${CURRENT_TAG} holds newer truststore version ${held.version}; not moving it back to ${bundle.version}`,
        'push',
        {
          heldVersion: held.version,
          heldDigest: held.digest,
        },
      );
    }

    const { uploaded, present } = await this.ensureBlobs(built, scopes, signal);
    await this.client.putManifest(tag, manifest.bytes, scopes, signal);
    // `current` moves only after the version tag and every blob are in place.
    await this.client.putManifest(CURRENT_TAG, manifest.bytes, scopes, signal);

    const state = await this.readCurrent(scopes, signal);
    if (state.digest !== bundle.digest || state.details?.manifestDigest !== manifest.digest) {
      throw this.config.http.error(
        'conflict',
        `after the push, ${CURRENT_TAG} holds ${state.digest ?? 'something else'}; another writer moved it`,
        'push',
        {
          heldDigest: state.digest,
        },
      );
    }
    const where = `${this.config.endpoint.host}/${this.config.repository}`;
    return {
      deliveredDigest: state.digest,
      details: {
        manifestDigest: manifest.digest,
        locations: [`${where}:${tag}`, `${where}:${CURRENT_TAG}`],
        blobsUploaded: uploaded,
        blobsPresent: present,
      },
    };
  }

  async readBack(signal: AbortSignal): Promise<TargetState> {
    return this.readCurrent(this.client.pullScopes, signal);
  }

  async close(): Promise<void> {
    await this.config.http.close();
  }

  private async readCurrent(scopes: string[], signal: AbortSignal): Promise<TargetState> {
    const current = await this.client.getManifest(CURRENT_TAG, scopes, signal);
    if (!current) return {};
    const parsed = parseManifest(current.bytes);
    if (!parsed || parsed.artifactType !== TRUSTSTORE_ARTIFACT_TYPE) {
      return { details: { manifestDigest: current.digest, foreign: true, mediaType: current.mediaType } };
    }
    return { ...truststoreIdentity(parsed), details: { manifestDigest: current.digest } };
  }

  private async ensureBlobs(
    manifest: BuiltManifest,
    scopes: string[],
    signal: AbortSignal,
  ): Promise<{ uploaded: number; present: number }> {
    let uploaded = 0;
    let present = 0;
    for (const blob of manifest.blobs) {
      if (await this.client.blobExists(blob.digest, scopes, signal)) {
        present++;
      } else {
        await this.client.uploadBlob(blob, scopes, signal);
        uploaded++;
      }
    }
    return { uploaded, present };
  }
}
