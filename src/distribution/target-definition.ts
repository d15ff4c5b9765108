import { isIP } from 'node:net';
import { DomainError, ErrorCode } from '../common/errors';
import { LAYER_KINDS, LayerKind, LAYERS } from '../truststore/bundle-formats';
import { TRUST_TARGET_KINDS, TrustTargetKind, TrustTargetOptions } from './drivers/trust-target';

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
  /** Hosts allowed for every target (configuration), loopback included in development. */
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
      if (input.contentTrust !== undefined && input.contentTrust !== null) settings.contentTrust = input.contentTrust as TargetSettings['contentTrust'];
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
        settings.ratify = { keyManagementProviderName: ratify.keyManagementProviderName as string, ...(ratify.verifier === true ? { verifier: true } : {}) };
      }
      if (input.forceConflicts !== undefined && input.forceConflicts !== null) {
        if (typeof input.forceConflicts !== 'boolean') fail(operation, 'forceConflicts', 'must be a boolean');
        settings.forceConflicts = input.forceConflicts as boolean;
      }
      break;
    }
  }
  for (const field of ['repository', 'project', 'namespace', 'configMapName', 'ratify', 'forceConflicts', 'contentTrust'] as const) {
    if (input[field] !== undefined && input[field] !== null && settings[field] === undefined) fail(operation, field, `does not apply to a ${kind} target`);
  }
  if (input.tls !== undefined && input.tls !== null) {
    const tls = input.tls as Record<string, unknown>;
    if (typeof tls !== 'object' || Array.isArray(tls) || Object.keys(tls).some((k) => k !== 'caPem' && k !== 'insecure')) fail(operation, 'tls', 'must be {caPem?, insecure?}');
    settings.tls = { ...(tls.caPem !== undefined ? { caPem: tls.caPem as string } : {}), ...(tls.insecure !== undefined ? { insecure: tls.insecure as boolean } : {}) };
  }
  if (input.allowedHosts !== undefined && input.allowedHosts !== null) {
    if (!Array.isArray(input.allowedHosts) || input.allowedHosts.length > 32 || input.allowedHosts.some((h) => typeof h !== 'string')) {
      fail(operation, 'allowedHosts', 'must be a list of host names (at most 32)');
    }
    settings.allowedHosts = input.allowedHosts as string[];
  }
  if (input.formats !== undefined && input.formats !== null) {
    const formats = input.formats;
    if (!Array.isArray(formats) || formats.length === 0 || formats.some((f) => !(LAYER_KINDS as readonly unknown[]).includes(f))) {
      fail(operation, 'formats', `must be a non-empty list of ${LAYER_KINDS.join(', ')}`);
    }
    settings.formats = [...new Set(formats as LayerKind[])];
  }
  if (settings.ratify && settings.formats && !settings.formats.includes('roots')) fail(operation, 'formats', "must include 'roots' when ratify is set (the provider takes the roots' CERTIFICATE blocks)");
  if (settings.ratify?.verifier && settings.formats && !settings.formats.includes('ratify')) fail(operation, 'formats', "must include 'ratify' when ratify.verifier is set (the Verifier and the TSA provider come from it)");
  return settings;
}

export function validateKind(kind: unknown, operation: string): TrustTargetKind {
  if (!(TRUST_TARGET_KINDS as readonly unknown[]).includes(kind)) fail(operation, 'kind', `must be one of ${TRUST_TARGET_KINDS.join(', ')}`);
  return kind as TrustTargetKind;
}

/** Refuses loopback endpoints unless configuration allows them (development and tests). */
export function validateEndpoint(endpoint: unknown, allowLoopback: boolean, operation: string): string {
  if (typeof endpoint !== 'string' || endpoint.length > 2048) fail(operation, 'endpoint', 'must be an http(s) URL');
  let url: URL;
  try {
    url = new URL(endpoint as string);
  } catch {
    return fail(operation, 'endpoint', 'must be an http(s) URL');
  }
  if (!allowLoopback && isLoopbackHost(url.hostname)) fail(operation, 'endpoint', 'is a loopback address; set SIGNET_DISTRIBUTION_ALLOW_LOOPBACK=true to allow it');
  return endpoint as string;
}

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost') || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

export const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]'];

/** The driver options for a stored target; credentials come unsealed from the caller. */
export function driverOptions(target: { kind: TrustTargetKind; endpoint: string; settings: TargetSettings }, credentials: unknown, context: DriverContext): TrustTargetOptions {
  const s = target.settings;
  const allowedHosts = [...context.globalAllowedHosts, ...(context.allowLoopback ? LOOPBACK_HOSTS : []), ...(s.allowedHosts ?? [])];
  const common = { endpoint: target.endpoint, allowedHosts, requestTimeoutMs: context.requestTimeoutMs, ...(s.tls ? { tls: s.tls } : {}) };
  const creds = credentials === undefined || credentials === null ? {} : { credentials };
  switch (target.kind) {
    case 'oci-registry':
      return { kind: 'oci-registry', ...common, repository: s.repository!, ...creds } as TrustTargetOptions;
    case 'harbor':
      return { kind: 'harbor', ...common, project: s.project!, repository: s.repository!, ...(s.contentTrust ? { contentTrust: s.contentTrust } : {}), ...creds } as TrustTargetOptions;
    case 'kubernetes':
      return {
        kind: 'kubernetes',
        ...common,
        namespace: s.namespace!,
        ...(s.configMapName ? { configMapName: s.configMapName } : {}),
        ...(s.ratify
          ? { ratify: { keyManagementProviderName: s.ratify.keyManagementProviderName, pemLayerTitle: LAYERS.roots.title, ...(s.ratify.verifier ? { verifierLayerTitle: LAYERS.ratify.title } : {}) } }
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
