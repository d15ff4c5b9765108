import { isUtf8 } from 'node:buffer';
import { loadAll } from 'js-yaml';
import { DomainError, ErrorCode } from '../../common/errors';
import { PushResult, TargetState, TrustTarget, TruststoreBundle } from './trust-target';
import { validateBundle } from './oci-artifact';
import { describeRef, KubeApi, KubeObject, KubeObjectRef } from './kube-api';
import { TargetError } from './target-error';

/**
 * Delivers a truststore bundle to a cluster by server-side apply (field manager `signet`):
 *   - a ConfigMap in the target namespace holding every layer under its title (text in `data`,
 *     binary such as the Notation tar in `binaryData`), annotated with version and digest;
 *   - optionally a Ratify `KeyManagementProvider` (cluster-scoped, `type: inline`,
 *     `contentType: certificate`) holding the PEM layer's CERTIFICATE blocks (NOTARY.md), and with
 *     `ratify.verifierLayerTitle` also the TSA-roots provider (`<name>-tsa`) and the Notation
 *     `Verifier` (`<name>`) from the bundle's `ratify` layer, renamed to use these providers: a
 *     provider does nothing until a Verifier lists it (docs/consumers.md).
 * Server-side apply is idempotent by construction; a field another manager owns is a conflict
 * (typed, not retried) unless `forceConflicts` is set. Versions only move forward: a ConfigMap
 * holding a newer version is a conflict.
 */
export const FIELD_MANAGER = 'signet';
export const K8S_ANNOTATION_DIGEST = 'signet.io/truststore-digest';
export const K8S_ANNOTATION_VERSION = 'signet.io/truststore-version';
export const RATIFY_API_VERSION = 'config.ratify.deislabs.io/v1beta1';
const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'signet' };
const CONFIGMAP_LIMIT_BYTES = 1024 * 1024; // Kubernetes refuses ConfigMaps whose data exceeds 1 MiB
const PEM_MEDIA_TYPES = new Set(['application/x-pem-file', 'application/pem-certificate-chain']);
// Kubernetes annotation key: optional DNS-subdomain prefix, '/', name of ≤ 63 [A-Za-z0-9._-]
const ANNOTATION_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

export interface KubernetesDriverConfig {
  api: KubeApi;
  namespace: string;
  configMapName: string;
  ratify?: { keyManagementProviderName: string; pemLayerTitle?: string; verifierLayerTitle?: string };
  forceConflicts: boolean;
  description: string;
}

export class KubernetesDriver implements TrustTarget {
  readonly kind = 'kubernetes' as const;
  readonly description: string;

  constructor(private readonly config: KubernetesDriverConfig) {
    this.description = config.description;
  }

  private get configMapRef(): KubeObjectRef {
    return {
      apiVersion: 'v1',
      plural: 'configmaps',
      namespace: this.config.namespace,
      name: this.config.configMapName,
    };
  }

  private get providerRef(): KubeObjectRef | undefined {
    const ratify = this.config.ratify;
    return ratify
      ? { apiVersion: RATIFY_API_VERSION, plural: 'keymanagementproviders', name: ratify.keyManagementProviderName }
      : undefined;
  }

  /** The TSA provider and the Verifier, when the target applies them (the TSA one only while the bundle has TSA roots). */
  private ratifyExtraRefs(withTsa: boolean): KubeObjectRef[] {
    const ratify = this.config.ratify;
    if (!ratify?.verifierLayerTitle) return [];
    const name = ratify.keyManagementProviderName;
    return [
      ...(withTsa ? [{ apiVersion: RATIFY_API_VERSION, plural: 'keymanagementproviders', name: `${name}-tsa` }] : []),
      { apiVersion: RATIFY_API_VERSION, plural: 'verifiers', name },
    ];
  }

  async push(bundle: TruststoreBundle, signal: AbortSignal): Promise<PushResult> {
    validateBundle(bundle);
    const metadata = {
      labels: { ...MANAGED_BY },
      annotations: {
        ...kubernetesAnnotations(bundle.annotations),
        [K8S_ANNOTATION_DIGEST]: bundle.digest,
        [K8S_ANNOTATION_VERSION]: String(bundle.version),
      },
    };
    const options = { fieldManager: FIELD_MANAGER, force: this.config.forceConflicts };

    const configMap = this.buildConfigMap(bundle, metadata);
    const providerRef = this.providerRef;
    // Build (and so validate) everything before the first write.
    const provider = providerRef ? this.buildProvider(bundle, metadata, providerRef) : undefined;
    const extras = providerRef ? this.buildRatifyExtras(bundle, metadata) : [];
    // A late push of an older version (a replica whose lease ran out) must not overwrite a newer one.
    const held = await this.config.api.get(this.configMapRef, signal);
    const heldVersion = held ? identity(held).version : undefined;
    if (heldVersion !== undefined && heldVersion > bundle.version) {
      throw new TargetError(
        'conflict',
        `${this.description}: push: the cluster holds newer truststore version ${heldVersion}; not going back to ${bundle.version}`,
        {
          target: this.description,
          operation: 'push',
          heldVersion,
        },
      );
    }
    const applied = await this.config.api.apply(this.configMapRef, configMap, options, signal);
    const locations = [describeRef(this.configMapRef)];
    if (providerRef && provider) {
      await this.config.api.apply(providerRef, provider, options, signal);
      locations.push(describeRef(providerRef));
    }
    // Providers before the Verifier that lists them.
    for (const extra of extras) {
      await this.config.api.apply(extra.ref, extra.object, options, signal);
      locations.push(describeRef(extra.ref));
    }

    const state = await this.readBack(signal);
    if (state.digest !== bundle.digest) {
      throw new TargetError(
        'conflict',
        `${this.description}: push: after the apply the target holds ${state.digest ?? 'another digest'}`,
        {
          target: this.description,
          operation: 'push',
          heldDigest: state.digest,
        },
      );
    }
    return { deliveredDigest: state.digest, details: { locations, resourceVersion: applied.metadata.resourceVersion } };
  }

  async readBack(signal: AbortSignal): Promise<TargetState> {
    const configMap = await this.config.api.get(this.configMapRef, signal);
    if (!configMap) return {};
    const held = identity(configMap);
    const details: Record<string, unknown> = { resourceVersion: configMap.metadata.resourceVersion };
    const providerRef = this.providerRef;
    if (providerRef) {
      const provider = await this.config.api.get(providerRef, signal);
      const providerHeld = provider ? identity(provider) : {};
      if (providerHeld.digest !== held.digest) {
        // The cluster holds this digest only when every object we manage does.
        return {
          ...(held.version !== undefined ? { version: held.version } : {}),
          details: { ...details, configMapDigest: held.digest, keyManagementProviderDigest: providerHeld.digest },
        };
      }
      // The Verifier always; the TSA provider when the Verifier has a tsa store (it names it).
      const [verifierRef] = this.ratifyExtraRefs(false);
      if (verifierRef) {
        const verifier = await this.config.api.get(verifierRef, signal);
        const tsaStores =
          (verifier?.spec as { parameters?: { verificationCertStores?: { tsa?: unknown } } } | undefined)?.parameters
            ?.verificationCertStores?.tsa !== undefined;
        for (const ref of this.ratifyExtraRefs(tsaStores)) {
          const object = ref.plural === 'verifiers' ? verifier : await this.config.api.get(ref, signal);
          const objectHeld = object ? identity(object) : {};
          if (objectHeld.digest !== held.digest) {
            return {
              ...(held.version !== undefined ? { version: held.version } : {}),
              details: {
                ...details,
                configMapDigest: held.digest,
                [`${ref.plural.replace(/s$/, '')}Digest`]: objectHeld.digest,
              },
            };
          }
        }
      }
    }
    return { ...held, details };
  }

  async close(): Promise<void> {
    await this.config.api.close();
  }

  private buildConfigMap(
    bundle: TruststoreBundle,
    metadata: { labels: Record<string, string>; annotations: Record<string, string> },
  ): KubeObject {
    const data: Record<string, string> = {};
    const binaryData: Record<string, string> = {};
    let size = 0;
    for (const layer of bundle.layers) {
      size += layer.content.length;
      // Text goes to `data` (readable with kubectl); anything else, like a tar, to `binaryData`.
      if (isUtf8(layer.content) && !layer.content.includes(0)) data[layer.title] = layer.content.toString('utf8');
      else binaryData[layer.title] = layer.content.toString('base64');
    }
    if (size > CONFIGMAP_LIMIT_BYTES) {
      throw new TargetError(
        'rejected',
        `${this.description}: push: bundle is ${size} bytes, more than a ConfigMap holds (1 MiB)`,
        { target: this.description, operation: 'push', size },
      );
    }
    return {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: this.config.configMapName, namespace: this.config.namespace, ...metadata },
      ...(Object.keys(data).length ? { data } : {}),
      ...(Object.keys(binaryData).length ? { binaryData } : {}),
    };
  }

  private buildRatifyExtras(
    bundle: TruststoreBundle,
    metadata: Metadata,
  ): Array<{ ref: KubeObjectRef; object: KubeObject }> {
    const title = this.config.ratify?.verifierLayerTitle;
    if (!title) return [];
    const layer = bundle.layers.find((l) => l.title === title);
    if (!layer)
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `push: the Ratify Verifier needs the '${title}' layer in 'layers'`,
        { field: 'layers' },
      );
    return ratifyExtras(layer.content, this.config.ratify!.keyManagementProviderName, metadata);
  }

  private buildProvider(
    bundle: TruststoreBundle,
    metadata: { labels: Record<string, string>; annotations: Record<string, string> },
    ref: KubeObjectRef,
  ): KubeObject {
    const wanted = this.config.ratify?.pemLayerTitle;
    const layer = wanted
      ? bundle.layers.find((l) => l.title === wanted)
      : bundle.layers.find((l) => PEM_MEDIA_TYPES.has(l.mediaType));
    if (!layer) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `push: ratify needs a PEM layer (${wanted ? `title '${wanted}'` : 'media type application/x-pem-file'}) in 'layers'`,
        { field: 'layers' },
      );
    }
    return {
      apiVersion: RATIFY_API_VERSION,
      kind: 'KeyManagementProvider',
      metadata: { name: ref.name, ...metadata },
      spec: {
        type: 'inline',
        parameters: { contentType: 'certificate', value: certificateBlocks(layer.content.toString('utf8')) },
      },
    };
  }
}

type Metadata = { labels: Record<string, string>; annotations: Record<string, string> };

/**
 * The TSA-roots provider and the Notation Verifier from the bundle's `ratify` layer (Signet's own
 * rendering: providers, then the Verifier), renamed after the configured provider name so the
 * Verifier lists exactly the providers this target applies.
 */
function ratifyExtras(
  layer: Buffer,
  name: string,
  metadata: Metadata,
): Array<{ ref: KubeObjectRef; object: KubeObject }> {
  const refuse = (problem: string): never => {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `push: the ratify layer ${problem}`, { field: 'layers' });
  };
  let documents: unknown[];
  try {
    documents = loadAll(layer.toString('utf8'));
  } catch {
    return refuse('is not YAML');
  }
  type Doc = { kind?: string; metadata?: { name?: string }; spec?: Record<string, unknown> };
  const docs = documents.filter((d): d is Doc => typeof d === 'object' && d !== null);
  const verifiers = docs.filter((d) => d.kind === 'Verifier');
  if (verifiers.length !== 1) refuse('must hold exactly one Verifier');
  const verifier = verifiers[0];
  const parameters = (verifier.spec?.parameters ?? {}) as {
    verificationCertStores?: Record<string, Record<string, string[]>>;
    trustPolicyDoc?: unknown;
  };
  const stores = parameters.verificationCertStores ?? {};
  const providers = new Map(
    docs.filter((d) => d.kind === 'KeyManagementProvider').map((d) => [d.metadata?.name ?? '', d]),
  );
  const rename = new Map<string, string>();
  for (const [type, named] of Object.entries(stores)) {
    if (type !== 'ca' && type !== 'tsa') refuse(`has a ${type} store; only ca and tsa are applied`);
    for (const list of Object.values(named ?? {})) {
      if (!Array.isArray(list) || list.length !== 1 || !providers.has(list[0]))
        refuse(`'s Verifier must list one provider of the layer per store`);
      rename.set(list[0], type === 'ca' ? name : `${name}-tsa`);
    }
  }
  if (![...rename.values()].includes(name)) refuse('has no ca store');
  const out: Array<{ ref: KubeObjectRef; object: KubeObject }> = [];
  for (const [original, renamed] of rename) {
    if (renamed === name) continue; // the roots provider is built from the PEM layer
    const provider = providers.get(original)!;
    const ref = { apiVersion: RATIFY_API_VERSION, plural: 'keymanagementproviders', name: renamed };
    out.push({
      ref,
      object: {
        apiVersion: RATIFY_API_VERSION,
        kind: 'KeyManagementProvider',
        metadata: { name: renamed, ...metadata },
        spec: provider.spec ?? {},
      },
    });
  }
  const renamedStores = Object.fromEntries(
    Object.entries(stores).map(([type, named]) => [
      type,
      Object.fromEntries(Object.entries(named).map(([store, list]) => [store, list.map((p) => rename.get(p)!)])),
    ]),
  );
  const ref = { apiVersion: RATIFY_API_VERSION, plural: 'verifiers', name };
  out.push({
    ref,
    object: {
      apiVersion: RATIFY_API_VERSION,
      kind: 'Verifier',
      metadata: { name, ...metadata },
      spec: { ...verifier.spec, parameters: { ...parameters, verificationCertStores: renamedStores } },
    },
  });
  return out;
}

/**
 * Ratify's inline provider wants CERTIFICATE blocks only and nothing after the last one (NOTARY.md).
 * Anything else in the PEM layer means the bundle was built wrong: refuse rather than trim silently.
 */
export function certificateBlocks(pem: string): string {
  const blocks = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)];
  const others = blocks.filter((b) => b[1] !== 'CERTIFICATE').map((b) => b[1]);
  if (others.length)
    throw new DomainError(
      ErrorCode.VALIDATION_ERROR,
      `push: the PEM layer holds ${others[0]} blocks; Ratify takes CERTIFICATE blocks only`,
      { field: 'layers' },
    );
  if (blocks.length === 0)
    throw new DomainError(ErrorCode.VALIDATION_ERROR, 'push: the PEM layer holds no CERTIFICATE block', {
      field: 'layers',
    });
  return blocks.map((b) => b[0]).join('\n');
}

function identity(object: KubeObject): { digest?: string; version?: number } {
  const annotations = object.metadata.annotations ?? {};
  const digest = annotations[K8S_ANNOTATION_DIGEST];
  const version = Number(annotations[K8S_ANNOTATION_VERSION]);
  return {
    ...(typeof digest === 'string' && /^sha256:[a-f0-9]{64}$/.test(digest) ? { digest } : {}),
    ...(Number.isSafeInteger(version) && version > 0 ? { version } : {}),
  };
}

/** The bundle's extra annotations that are valid Kubernetes annotation keys; OCI-only keys are left out. */
function kubernetesAnnotations(annotations: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(annotations ?? {}).filter(([key]) => key.length <= 253 + 64 && ANNOTATION_KEY.test(key)),
  );
}
