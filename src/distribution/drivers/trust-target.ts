/**
 * The one contract every distribution target driver implements (ARCHITECTURE.md). The reconciler
 * claims a target, calls `readBack` to skip targets that already hold the desired digest, calls
 * `push`, and records what `push` reports as delivered. Drivers are stateless between calls apart
 * from caches (auth tokens, keep-alive sockets) released by `close`.
 *
 * Pushes are at-least-once: the same bundle pushed twice, or by two replicas at once, must leave
 * the target in the same state.
 */
export interface TrustTarget {
  readonly kind: TrustTargetKind;
  /** `kind endpoint/where`, for logs and errors; never contains credentials. */
  readonly description: string;

  push(bundle: TruststoreBundle, signal: AbortSignal): Promise<PushResult>;

  /** What the target holds now: the bundle digest and version, or `{}` when it holds none of ours. */
  readBack(signal: AbortSignal): Promise<TargetState>;

  /** Releases sockets and caches. The driver is unusable afterwards. */
  close(): Promise<void>;
}

export const TRUST_TARGET_KINDS = ['oci-registry', 'harbor', 'kubernetes'] as const;
export type TrustTargetKind = (typeof TRUST_TARGET_KINDS)[number];

export interface TruststoreBundle {
  /** The truststore version this content belongs to (1, 2, …); becomes tag `v<version>`. */
  version: number;
  /** `sha256:<hex>` over the truststore's canonical content; what `readBack` reports. */
  digest: string;
  /** One layer per bundle format; `title` is the file name consumers see (`truststore.pem`). */
  layers: BundleLayer[];
  /** When this truststore version was built (RFC 3339). Fixed per version so replicas pushing the same version produce identical manifests. Defaults to the time of the first push. */
  createdAt?: string;
  /** Extra annotations (OCI manifest, Kubernetes object metadata). Cannot override Signet's own. */
  annotations?: Record<string, string>;
}

export interface BundleLayer {
  mediaType: string;
  title: string;
  content: Buffer;
}

export interface PushResult {
  /** The bundle digest the target reported back after the push (read-back verified). */
  deliveredDigest: string;
  details?: PushDetails;
}

export interface PushDetails {
  /** OCI targets: digest of the image manifest tagged `v<version>` and `current`. */
  manifestDigest?: string;
  /** Human-readable locations written, e.g. `127.0.0.1:5000/signet/truststore:v3`, `configmap default/signet-truststore`. */
  locations?: string[];
  /** OCI targets: blobs uploaded versus found already present. */
  blobsUploaded?: number;
  blobsPresent?: number;
  [key: string]: unknown;
}

export interface TargetState {
  digest?: string;
  version?: number;
  details?: Record<string, unknown>;
}

export interface TlsOptions {
  /** Extra trust anchors (PEM) for the target's TLS certificate, e.g. a private CA. */
  caPem?: string;
  /** Skip certificate verification. For labs only; the reconciler should surface it as a warning. */
  insecure?: boolean;
}

/** Basic credentials: registry user, Harbor user or robot account (`robot$project+name`). */
export interface BasicCredentials {
  username: string;
  password: string;
}

/** A bearer token used as is (Kubernetes service-account token). */
export interface TokenCredentials {
  token: string;
}

/** A kubeconfig (JSON or YAML); its current context gives server, CA and user credentials. */
export interface KubeconfigCredentials {
  kubeconfig: string;
}

interface CommonTargetOptions {
  /** Base URL: `https://registry.example.com`, `https://harbor.example.com`, `https://api.cluster:6443`. */
  endpoint: string;
  tls?: TlsOptions;
  /** Hosts redirects and token realms may lead to, besides the endpoint itself (see OutboundPolicy). */
  allowedHosts: string[];
  /** Whether loopback hosts may be reached at all (SIGNET_DISTRIBUTION_ALLOW_LOOPBACK). Default false. */
  allowLoopback?: boolean;
  /** The endpoint's own host must be in `allowedHosts` too (a configured allowlist). Default false: it is allowed implicitly. */
  endpointListed?: boolean;
  /** Timeout of each HTTP exchange, connect to last byte. Default 30 s. */
  requestTimeoutMs?: number;
}

export interface OciRegistryTargetOptions extends CommonTargetOptions {
  kind: 'oci-registry';
  /** Repository path inside the registry, e.g. `signet/truststore`. */
  repository: string;
  credentials?: BasicCredentials;
}

export interface HarborTargetOptions extends CommonTargetOptions {
  kind: 'harbor';
  project: string;
  /** Repository inside the project, e.g. `truststore` → `<harbor>/<project>/truststore`. */
  repository: string;
  credentials?: BasicCredentials;
  /**
   * Project metadata to enforce after each push (`enable_content_trust`, `enable_content_trust_cosign`)
   * on `projects` (default: `project`). Left alone when unset. Harbor only checks that *a* signature
   * exists (NOTARY.md). Switching either on in the truststore's own `project` is refused: Harbor would
   * then answer 412 to every pull of the unsigned truststore artifact, Signet's read-back included.
   */
  contentTrust?: { notation?: boolean; cosign?: boolean; projects?: string[] };
}

export interface KubernetesTargetOptions extends CommonTargetOptions {
  kind: 'kubernetes';
  namespace: string;
  credentials?: TokenCredentials | KubeconfigCredentials;
  /** ConfigMap receiving every layer under its title. Default `signet-truststore`. */
  configMapName?: string;
  /**
   * Also apply a Ratify `KeyManagementProvider` (cluster-scoped) holding the PEM layer; with
   * `verifierLayerTitle` (the `ratify` layer) also its TSA-roots provider and Notation `Verifier`.
   */
  ratify?: { keyManagementProviderName: string; pemLayerTitle?: string; verifierLayerTitle?: string };
  /** Take over fields another field manager owns instead of failing with a conflict. Default false. */
  forceConflicts?: boolean;
}

export type TrustTargetOptions = OciRegistryTargetOptions | HarborTargetOptions | KubernetesTargetOptions;
