import { DomainError, ErrorCode } from '../common/errors';
import { LAYER_KINDS, LayerKind, LAYERS } from '../truststore/bundle-formats';
import { hostRefusal } from './address-classifier';
import { TRUST_TARGET_KINDS, TrustTargetKind, TrustTargetOptions } from './drivers/trust-target';
import { allowlistEntryHost, OutboundPolicy } from './outbound-policy';

/**
 * A target as the API declares it, the non-secret settings stored for it, and the driver options
 * built from both at push time. Credentials never pass through here into storage: the service
 * seals them apart (target-credentials.ts).
 */
export interface TargetSettings {
  /** oci-registry: repository path; harbor: repository inside `project`. */
  repository?: string;
  project?: string;
  namespace?: string;
  configMapName?: string;
  /** `verifier`: also the TSA-roots provider and the Notation Verifier from the `ratify` layer. */
  ratify?: { keyManagementProviderName: string; verifier?: boolean };
  forceConflicts?: boolean;
  contentTrust?: { notation?: boolean; cosign?: boolean; projects?: string[] };
  tls?: { caPem?: string; insecure?: boolean };
  /** Extra hosts redirects and token realms of this target may lead to. */
  allowedHosts?: string[];
  /** Bundle layers pushed; default every one. */
  formats?: LayerKind[];
}

export interface TargetInput {
  name?: unknown;
  kind?: unknown;
  endpoint?: unknown;
  truststore?: unknown;
  required?: unknown;
  credentials?: unknown;
  repository?: unknown;
  project?: unknown;
  namespace?: unknown;
  configMapName?: unknown;
  ratify?: unknown;
  forceConflicts?: unknown;
  contentTrust?: unknown;
  tls?: unknown;
  allowedHosts?: unknown;
  formats?: unknown;
}

export const TARGET_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const REGION_NAME = TARGET_NAME;

export interface DriverContext {
  /** SIGNET_DISTRIBUTION_ALLOWED_HOSTS: when not empty, every host any target may reach (endpoints included). */
  globalAllowedHosts: string[];
  allowLoopback: boolean;
  requestTimeoutMs: number;
}

function fail(operation: string, field: string, problem: string): never {
  throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: '${field}' ${problem}`, { field });
}

/** The kind-specific settings from an API body (create, or the merged result of a PATCH). */
export function settingsFromInput(kind: TrustTargetKind, input: TargetInput, operation: string): TargetSettings {
  const settings: TargetSettings = {};
  const optionalString = (field: keyof TargetInput): string | undefined => {
    const value = input[field];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' || value.length === 0) fail(operation, field, 'must be a non-empty string');
    return value as string;
  };
  switch (kind) {
    case 'oci-registry': {
      const repository = optionalString('repository');
      if (!repository) fail(operation, 'repository', 'is required for an oci-registry target');
      settings.repository = repository;
      break;
    }
    case 'harbor': {
      let project = optionalString('project');
      let repository = optionalString('repository');
      // `repository: "project/repo"` is accepted as well as separate fields.
      if (!project && repository?.includes('/')) {
        project = repository.slice(0, repository.indexOf('/'));
        repository = repository.slice(repository.indexOf('/') + 1);
      }
      if (!project) fail(operation, 'project', 'is required for a harbor target (or repository "project/name")');
      if (!repository) fail(operation, 'repository', 'is required for a harbor target');
      settings.project = project;
      settings.repository = repository;
      if (input.contentTrust !== undefined && input.contentTrust !== null)
        settings.contentTrust = input.contentTrust as TargetSettings['contentTrust'];
      break;
    }
    case 'kubernetes': {
      const namespace = optionalString('namespace');
      if (!namespace) fail(operation, 'namespace', 'is required for a kubernetes target');
      settings.namespace = namespace;
      const configMapName = optionalString('configMapName');
      if (configMapName) settings.configMapName = configMapName;
      if (input.ratify !== undefined && input.ratify !== null) {
        const ratify = input.ratify as Record<string, unknown>;
        if (
          typeof ratify !== 'object' ||
          typeof ratify.keyManagementProviderName !== 'string' ||
          Object.keys(ratify).some((k) => k !== 'keyManagementProviderName' && k !== 'verifier') ||
          (ratify.verifier !== undefined && typeof ratify.verifier !== 'boolean')
        ) {
          fail(operation, 'ratify', 'must be {keyManagementProviderName, verifier?: boolean}');
        }
        settings.ratify = {
          keyManagementProviderName: ratify.keyManagementProviderName as string,
          ...(ratify.verifier === true ? { verifier: true } : {}),
        };
      }
      if (input.forceConflicts !== undefined && input.forceConflicts !== null) {
        if (typeof input.forceConflicts !== 'boolean') fail(operation, 'forceConflicts', 'must be a boolean');
        settings.forceConflicts = input.forceConflicts as boolean;
      }
      break;
    }
  }
  for (const field of [
    'repository',
    'project',
    'namespace',
    'configMapName',
    'ratify',
    'forceConflicts',
    'contentTrust',
  ] as const) {
    if (input[field] !== undefined && input[field] !== null && settings[field] === undefined)
      fail(operation, field, `does not apply to a ${kind} target`);
  }
  if (input.tls !== undefined && input.tls !== null) {
    const tls = input.tls as Record<string, unknown>;
    if (
      typeof tls !== 'object' ||
      Array.isArray(tls) ||
      Object.keys(tls).some((k) => k !== 'caPem' && k !== 'insecure')
    )
      fail(operation, 'tls', 'must be {caPem?, insecure?}');
    settings.tls = {
      ...(tls.caPem !== undefined ? { caPem: tls.caPem as string } : {}),
      ...(tls.insecure !== undefined ? { insecure: tls.insecure as boolean } : {}),
    };
  }
  if (input.allowedHosts !== undefined && input.allowedHosts !== null) {
    if (
      !Array.isArray(input.allowedHosts) ||
      input.allowedHosts.length > 32 ||
      input.allowedHosts.some((h) => typeof h !== 'string')
    ) {
      fail(operation, 'allowedHosts', 'must be a list of host names (at most 32)');
    }
    settings.allowedHosts = input.allowedHosts as string[];
  }
  if (input.formats !== undefined && input.formats !== null) {
    const formats = input.formats;
    if (
      !Array.isArray(formats) ||
      formats.length === 0 ||
      formats.some((f) => !(LAYER_KINDS as readonly unknown[]).includes(f))
    ) {
      fail(operation, 'formats', `must be a non-empty list of ${LAYER_KINDS.join(', ')}`);
    }
    settings.formats = [...new Set(formats as LayerKind[])];
  }
  if (settings.ratify && settings.formats && !settings.formats.includes('roots'))
    fail(
      operation,
      'formats',
      "must include 'roots' when ratify is set (the provider takes the roots' CERTIFICATE blocks)",
    );
  if (settings.ratify?.verifier && settings.formats && !settings.formats.includes('ratify'))
    fail(
      operation,
      'formats',
      "must include 'ratify' when ratify.verifier is set (the Verifier and the TSA provider come from it)",
    );
  return settings;
}

export function validateKind(kind: unknown, operation: string): TrustTargetKind {
  if (!(TRUST_TARGET_KINDS as readonly unknown[]).includes(kind))
    fail(operation, 'kind', `must be one of ${TRUST_TARGET_KINDS.join(', ')}`);
  return kind as TrustTargetKind;
}

/**
 * The endpoint of a target being declared or changed: an http(s) URL whose host the address
 * classifier does not refuse (link-local, metadata, unspecified in any spelling; loopback unless
 * SIGNET_DISTRIBUTION_ALLOW_LOOPBACK) and, when SIGNET_DISTRIBUTION_ALLOWED_HOSTS is set, that an
 * allowlist entry covers (loopback too: an allowlist names every endpoint). Without an allowlist any
 * other host may be declared. Both refusals are 400 ENDPOINT_NOT_ALLOWED; the driver factory checks the rest
 * of the URL's shape. The same classifier refuses what a name resolves to at connect time.
 */
export function validateEndpoint(
  endpoint: unknown,
  context: Pick<DriverContext, 'globalAllowedHosts' | 'allowLoopback'>,
  operation: string,
): string {
  if (typeof endpoint !== 'string' || endpoint.length > 2048) fail(operation, 'endpoint', 'must be an http(s) URL');
  let url: URL;
  try {
    url = new URL(endpoint as string);
  } catch {
    return fail(operation, 'endpoint', 'must be an http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(operation, 'endpoint', 'must be an http(s) URL');
  const refusal = hostRefusal(url.hostname, context.allowLoopback);
  if (refusal) {
    throw new DomainError(ErrorCode.ENDPOINT_NOT_ALLOWED, `${operation}: 'endpoint' host ${url.hostname} ${refusal}`, {
      field: 'endpoint',
      host: url.host,
    });
  }
  if (context.globalAllowedHosts.length > 0) {
    if (!new OutboundPolicy(context.globalAllowedHosts).allowsHost(url)) {
      throw new DomainError(
        ErrorCode.ENDPOINT_NOT_ALLOWED,
        `${operation}: 'endpoint' host ${url.host} is not in SIGNET_DISTRIBUTION_ALLOWED_HOSTS`,
        { field: 'endpoint', host: url.host },
      );
    }
  }
  return endpoint as string;
}

/**
 * Scheme, host and port of an endpoint, port always written: what stored credentials are bound
 * to. Hosts come out of the WHATWG URL parser canonical (lower case, punycode, IPv4 in dotted
 * decimal, IPv6 compressed), so two spellings of one origin compare equal.
 */
export function endpointOrigin(endpoint: string): string {
  const url = new URL(endpoint);
  const port = url.port || (url.protocol === 'https:' ? '443' : url.protocol === 'http:' ? '80' : '');
  return `${url.protocol}//${url.hostname}:${port}`;
}

export const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]'];

/**
 * A target's own `allowedHosts` (where its redirects and token realms may lead): no host the
 * address classifier refuses, and with SIGNET_DISTRIBUTION_ALLOWED_HOSTS set, only what that list
 * covers (it bounds every outbound host; the target's list adds nothing then). 400
 * ENDPOINT_NOT_ALLOWED naming the entry.
 */
export function validateTargetHosts(
  allowedHosts: readonly string[] | undefined,
  context: Pick<DriverContext, 'globalAllowedHosts' | 'allowLoopback'>,
  operation: string,
): void {
  const global = context.globalAllowedHosts.length > 0 ? new OutboundPolicy(context.globalAllowedHosts) : undefined;
  (allowedHosts ?? []).forEach((entry, index) => {
    const field = `allowedHosts[${index}]`;
    const { host, wildcard } = allowlistEntryHost(entry, field);
    const refusal = wildcard ? undefined : hostRefusal(host, context.allowLoopback);
    if (refusal)
      throw new DomainError(ErrorCode.ENDPOINT_NOT_ALLOWED, `${operation}: '${field}' host ${host} ${refusal}`, {
        field,
      });
    if (global && !global.coversEntry(entry, field)) {
      throw new DomainError(
        ErrorCode.ENDPOINT_NOT_ALLOWED,
        `${operation}: '${field}' (${entry}) is not covered by SIGNET_DISTRIBUTION_ALLOWED_HOSTS`,
        { field },
      );
    }
  });
}

/**
 * The driver options for a stored target; credentials come unsealed from the caller. With a
 * configured allowlist, that list is all the driver may reach — the endpoint included, so an
 * endpoint changed behind the API is refused at connect time, and loopback only where listed;
 * without one, the endpoint, the target's own `allowedHosts` and, in development, loopback.
 */
export function driverOptions(
  target: { kind: TrustTargetKind; endpoint: string; settings: TargetSettings },
  credentials: unknown,
  context: DriverContext,
): TrustTargetOptions {
  const s = target.settings;
  const listed = context.globalAllowedHosts.length > 0;
  const allowedHosts = listed
    ? [...context.globalAllowedHosts]
    : [...(context.allowLoopback ? LOOPBACK_HOSTS : []), ...(s.allowedHosts ?? [])];
  const common = {
    endpoint: target.endpoint,
    allowedHosts,
    allowLoopback: context.allowLoopback,
    ...(listed ? { endpointListed: true } : {}),
    requestTimeoutMs: context.requestTimeoutMs,
    ...(s.tls ? { tls: s.tls } : {}),
  };
  const creds = credentials === undefined || credentials === null ? {} : { credentials };
  switch (target.kind) {
    case 'oci-registry':
      return { kind: 'oci-registry', ...common, repository: s.repository!, ...creds } as TrustTargetOptions;
    case 'harbor':
      return {
        kind: 'harbor',
        ...common,
        project: s.project!,
        repository: s.repository!,
        ...(s.contentTrust ? { contentTrust: s.contentTrust } : {}),
        ...creds,
      } as TrustTargetOptions;
    case 'kubernetes':
      return {
        kind: 'kubernetes',
        ...common,
        namespace: s.namespace!,
        ...(s.configMapName ? { configMapName: s.configMapName } : {}),
        ...(s.ratify
          ? {
              ratify: {
                keyManagementProviderName: s.ratify.keyManagementProviderName,
                pemLayerTitle: LAYERS.roots.title,
                ...(s.ratify.verifier ? { verifierLayerTitle: LAYERS.ratify.title } : {}),
              },
            }
          : {}),
        ...(s.forceConflicts !== undefined ? { forceConflicts: s.forceConflicts } : {}),
        ...creds,
      } as TrustTargetOptions;
  }
}

/** Layers pushed to a target. */
export function targetLayers(settings: TargetSettings): LayerKind[] {
  return settings.formats ?? [...LAYER_KINDS];
}
