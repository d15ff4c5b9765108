import { DomainError, ErrorCode } from '../../common/errors';
import { OutboundPolicy } from '../outbound-policy';
import {
  BasicCredentials,
  HarborTargetOptions,
  KubernetesTargetOptions,
  OciRegistryTargetOptions,
  TlsOptions,
  TRUST_TARGET_KINDS,
  TrustTarget,
  TrustTargetOptions,
} from './trust-target';
import { HarborDriver } from './harbor.driver';
import { HttpKubeApi, KubeApi } from './kube-api';
import { parseKubeconfig } from './kubeconfig';
import { KubernetesDriver } from './kubernetes.driver';
import { isValidRepository } from './oci-artifact';
import { OciRegistryDriver } from './oci-registry.driver';
import { OutboundHttp, OutboundHttpOptions } from './outbound-http';

/**
 * Builds the driver for a target's kind, validating its definition first (messages name the field,
 * never echo credentials). Each driver owns one OutboundHttp (keep-alive sockets, token cache);
 * call `close()` when done with it.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_CONFIGMAP_NAME = 'signet-truststore';

export interface TrustTargetFactoryHooks {
  now?: () => Date;
  /** Replaces the HTTP Kubernetes client (tests, or client-node later). */
  kubeApi?: KubeApi;
  /** Name resolution for every connection (default the system resolver); its answers are checked like any other. */
  resolve?: OutboundHttpOptions['resolve'];
}

export function createTrustTarget(options: TrustTargetOptions, hooks: TrustTargetFactoryHooks = {}): TrustTarget {
  if (!options || !(TRUST_TARGET_KINDS as readonly string[]).includes((options as { kind?: string }).kind ?? '')) {
    fail('kind', `must be one of ${TRUST_TARGET_KINDS.join(', ')}`);
  }
  switch (options.kind) {
    case 'oci-registry':
      return createOciRegistry(options, hooks);
    case 'harbor':
      return createHarbor(options, hooks);
    case 'kubernetes':
      return createKubernetes(options, hooks);
    default: {
      const unknownKind: never = options;
      return fail('kind', `unknown kind ${String((unknownKind as { kind?: unknown }).kind)}`);
    }
  }
}

function createOciRegistry(options: OciRegistryTargetOptions, hooks: TrustTargetFactoryHooks): TrustTarget {
  const endpoint = registryEndpoint(options.endpoint);
  if (typeof options.repository !== 'string' || !isValidRepository(options.repository))
    fail('repository', 'must be an OCI repository name (lower-case path, e.g. signet/truststore)');
  const http = outboundHttp(
    options,
    endpoint,
    `oci-registry ${endpoint.host}/${options.repository}`,
    options.tls,
    hooks,
  );
  return new OciRegistryDriver({
    endpoint,
    repository: options.repository,
    credentials: basicCredentials(options.credentials),
    http,
    now: hooks.now,
  });
}

function createHarbor(options: HarborTargetOptions, hooks: TrustTargetFactoryHooks): TrustTarget {
  const endpoint = registryEndpoint(options.endpoint);
  if (!isHarborProject(options.project))
    fail('project', 'must be a Harbor project name (lower-case letters, digits, ".", "_", "-")');
  if (typeof options.repository !== 'string' || !isValidRepository(`${options.project}/${options.repository}`))
    fail('repository', 'must be an OCI repository name');
  const trust = validateContentTrust(options.contentTrust, options.project);
  const http = outboundHttp(
    options,
    endpoint,
    `harbor ${endpoint.host}/${options.project}/${options.repository}`,
    options.tls,
    hooks,
  );
  return new HarborDriver({
    endpoint,
    project: options.project,
    repository: options.repository,
    credentials: basicCredentials(options.credentials),
    contentTrust: trust,
    http,
    now: hooks.now,
  });
}

function isHarborProject(name: unknown): boolean {
  return typeof name === 'string' && /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/.test(name) && name.length <= 255;
}

/**
 * `{notation?, cosign?, projects?}`. Enforcement switched on where the truststore artifact lives
 * would make Harbor refuse every pull of it (412 PROJECTPOLICYVIOLATION: the artifact carries no
 * signature accessory), Signet's own read-back included, so the target could never converge: the
 * truststore belongs in a project without enforcement, and `projects` names the enforced ones.
 */
function validateContentTrust(
  trust: HarborTargetOptions['contentTrust'],
  project: string,
): HarborTargetOptions['contentTrust'] {
  if (trust === undefined) return undefined;
  const shape = 'must be {notation?: boolean, cosign?: boolean, projects?: [project names]}';
  if (typeof trust !== 'object' || trust === null || Array.isArray(trust)) return fail('contentTrust', shape);
  for (const [key, value] of Object.entries(trust)) {
    if (key === 'projects') continue;
    if ((key !== 'notation' && key !== 'cosign') || (value !== undefined && typeof value !== 'boolean'))
      fail('contentTrust', shape);
  }
  const projects = trust.projects;
  if (projects !== undefined) {
    if (
      !Array.isArray(projects) ||
      projects.length === 0 ||
      projects.length > 32 ||
      projects.some((p) => !isHarborProject(p))
    ) {
      fail('contentTrust.projects', 'must be a non-empty list of at most 32 Harbor project names');
    }
    if (new Set(projects).size !== projects.length) fail('contentTrust.projects', 'must not repeat a project');
  }
  const enforcing = trust.notation === true || trust.cosign === true;
  if (enforcing && (projects ?? [project]).includes(project)) {
    fail(
      'contentTrust.projects',
      `must not include '${project}', the project holding the truststore: with content trust on, Harbor answers 412 to pulls of its unsigned artifacts, ` +
        'the truststore included (Signet could not read it back, consumers could not pull it); keep the truststore in a project without enforcement and name the enforced projects here',
    );
  }
  return {
    ...(trust.notation !== undefined ? { notation: trust.notation } : {}),
    ...(trust.cosign !== undefined ? { cosign: trust.cosign } : {}),
    ...(projects ? { projects: [...projects] } : {}),
  };
}

function createKubernetes(options: KubernetesTargetOptions, hooks: TrustTargetFactoryHooks): TrustTarget {
  const endpoint = parseEndpoint(options.endpoint);
  if (typeof options.namespace !== 'string' || !isDnsLabel(options.namespace))
    fail('namespace', 'must be a Kubernetes namespace name (DNS label)');
  const configMapName = options.configMapName ?? DEFAULT_CONFIGMAP_NAME;
  if (!isDnsSubdomain(configMapName)) fail('configMapName', 'must be a DNS subdomain name');
  if (options.ratify !== undefined) {
    if (!isDnsSubdomain(options.ratify.keyManagementProviderName ?? ''))
      fail('ratify.keyManagementProviderName', 'must be a DNS subdomain name');
    if (options.ratify.pemLayerTitle !== undefined && typeof options.ratify.pemLayerTitle !== 'string')
      fail('ratify.pemLayerTitle', 'must be a string');
    if (options.ratify.verifierLayerTitle !== undefined && typeof options.ratify.verifierLayerTitle !== 'string')
      fail('ratify.verifierLayerTitle', 'must be a string');
    // The TSA provider is named `<name>-tsa`: that must be a valid name too.
    if (
      options.ratify.verifierLayerTitle !== undefined &&
      !isDnsSubdomain(`${options.ratify.keyManagementProviderName}-tsa`)
    )
      fail('ratify.keyManagementProviderName', 'is too long for its -tsa provider');
  }

  let token: string | undefined;
  let tls: { caPem?: string; insecure?: boolean; certPem?: string; keyPem?: string } = { ...(options.tls ?? {}) };
  const credentials = options.credentials as Record<string, unknown> | undefined;
  if (credentials !== undefined) {
    if (typeof credentials.kubeconfig === 'string') {
      const kubeconfig = parseKubeconfig(credentials.kubeconfig);
      if (normalizeBase(kubeconfig.server) !== normalizeBase(endpoint))
        fail('endpoint', "does not match the kubeconfig's cluster server");
      token = kubeconfig.token;
      tls = {
        caPem: [kubeconfig.caPem, options.tls?.caPem].filter(Boolean).join('\n') || undefined,
        insecure: options.tls?.insecure ?? kubeconfig.insecure,
        certPem: kubeconfig.clientCertPem,
        keyPem: kubeconfig.clientKeyPem,
      };
    } else if (typeof credentials.token === 'string' && credentials.token.length > 0) {
      if (/[\s]/.test(credentials.token)) fail('credentials.token', 'must not contain whitespace');
      token = credentials.token;
    } else {
      fail('credentials', 'must be {token} or {kubeconfig}');
    }
  }
  validateTls(tls);
  const description = `kubernetes ${endpoint.host} ${options.namespace}/${configMapName}`;
  const api =
    hooks.kubeApi ?? new HttpKubeApi(outboundHttp(options, endpoint, description, tls, hooks), endpoint, token);
  return new KubernetesDriver({
    api,
    namespace: options.namespace,
    configMapName,
    ratify: options.ratify,
    forceConflicts: options.forceConflicts === true,
    description,
  });
}

function outboundHttp(
  options: { allowedHosts: string[]; allowLoopback?: boolean; endpointListed?: boolean; requestTimeoutMs?: number },
  endpoint: URL,
  target: string,
  tls: (TlsOptions & { certPem?: string; keyPem?: string }) | undefined,
  hooks: TrustTargetFactoryHooks,
): OutboundHttp {
  if (!Array.isArray(options.allowedHosts) || options.allowedHosts.some((h) => typeof h !== 'string'))
    fail('allowedHosts', 'must be a list of host names');
  const timeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeout) || timeout < 1 || timeout > 600_000)
    fail('requestTimeoutMs', 'must be an integer between 1 and 600000');
  validateTls(tls);
  return new OutboundHttp({
    policy: OutboundPolicy.forEndpoint(endpoint, options.allowedHosts, {
      allowLoopback: options.allowLoopback === true,
      endpointListed: options.endpointListed === true,
    }),
    target,
    requestTimeoutMs: timeout,
    tls,
    ...(hooks.resolve ? { resolve: hooks.resolve } : {}),
  });
}

function parseEndpoint(raw: unknown): URL {
  let url: URL | undefined;
  try {
    url = typeof raw === 'string' ? new URL(raw) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) fail('endpoint', 'must be an http(s) URL');
  // credentials belong in `credentials`, where they are stored encrypted and never logged
  if (url!.username || url!.password) fail('endpoint', 'must not contain credentials');
  if (url!.search || url!.hash) fail('endpoint', 'must not contain a query or fragment');
  return url!;
}

/** The distribution API lives at `/v2/` on the host's root, so a registry endpoint has no path. */
function registryEndpoint(raw: unknown): URL {
  const url = parseEndpoint(raw);
  if (url.pathname !== '/')
    fail('endpoint', 'must be the registry root (no path); the repository goes in `repository`');
  return url;
}

function basicCredentials(raw: unknown): BasicCredentials | undefined {
  if (raw === undefined) return undefined;
  const record = raw as Record<string, unknown>;
  if (
    typeof record !== 'object' ||
    record === null ||
    typeof record.username !== 'string' ||
    typeof record.password !== 'string' ||
    !record.username ||
    !record.password
  ) {
    fail('credentials', 'must be {username, password}');
  }
  if ((record.username as string).includes(':')) fail('credentials.username', "must not contain ':'");
  return { username: record.username as string, password: record.password as string };
}

function validateTls(tls: { caPem?: string; insecure?: boolean } | undefined): void {
  if (!tls) return;
  if (tls.caPem !== undefined && (typeof tls.caPem !== 'string' || !tls.caPem.includes('-----BEGIN CERTIFICATE-----')))
    fail('tls.caPem', 'must hold PEM certificates');
  if (tls.insecure !== undefined && typeof tls.insecure !== 'boolean') fail('tls.insecure', 'must be a boolean');
}

function normalizeBase(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

function isDnsLabel(value: string): boolean {
  return value.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(value);
}

function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(value);
}

function fail(field: string, problem: string): never {
  throw new DomainError(ErrorCode.VALIDATION_ERROR, `createTrustTarget: '${field}' ${problem}`, { field });
}
