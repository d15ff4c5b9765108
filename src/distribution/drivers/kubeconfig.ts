import { load } from 'js-yaml';
import { DomainError, ErrorCode } from '../../common/errors';

/**
 * What Signet takes from a kubeconfig: the current context's cluster (server, CA, TLS settings) and
 * user (bearer token or client certificate). Only self-contained kubeconfigs work — `*-data` fields,
 * not file paths, and no `exec`/`auth-provider` plugins, which would run programs on Signet's host.
 * `kubectl config view --raw --flatten --minify` produces one. JSON or YAML.
 *
 * Errors name the field, never its value: a kubeconfig is a credential.
 */
export interface ResolvedKubeconfig {
  server: URL;
  caPem?: string;
  insecure?: boolean;
  token?: string;
  clientCertPem?: string;
  clientKeyPem?: string;
  /** The context's namespace, if any (informational; the target names its own). */
  namespace?: string;
}

type Dict = Record<string, unknown>;

export function parseKubeconfig(text: string): ResolvedKubeconfig {
  const doc = parseDocument(text);
  const contextName = stringField(doc, 'current-context');
  if (!contextName) fail("'current-context' is missing");
  const context = namedEntry(doc, 'contexts', contextName!, 'context');
  const clusterName = stringField(context, 'cluster');
  if (!clusterName) fail(`context has no 'cluster'`);
  const cluster = namedEntry(doc, 'clusters', clusterName!, 'cluster');
  const userName = stringField(context, 'user');
  const user = userName ? namedEntry(doc, 'users', userName, 'user') : {};

  const serverText = stringField(cluster, 'server');
  let server: URL | undefined;
  try {
    server = serverText ? new URL(serverText) : undefined;
  } catch {
    server = undefined;
  }
  if (!server || (server.protocol !== 'https:' && server.protocol !== 'http:'))
    fail("cluster 'server' must be an http(s) URL");
  if (cluster['certificate-authority'] !== undefined)
    fail("cluster 'certificate-authority' (a file path) is not supported; use 'certificate-authority-data'");
  for (const field of [
    'exec',
    'auth-provider',
    'tokenFile',
    'client-certificate',
    'client-key',
    'username',
    'password',
  ]) {
    if (user[field] !== undefined)
      fail(`user '${field}' is not supported; use 'token' or 'client-certificate-data' and 'client-key-data'`);
  }

  const caPem = base64Field(cluster, 'certificate-authority-data', 'cluster');
  const clientCertPem = base64Field(user, 'client-certificate-data', 'user');
  const clientKeyPem = base64Field(user, 'client-key-data', 'user');
  if ((clientCertPem === undefined) !== (clientKeyPem === undefined))
    fail("user needs both 'client-certificate-data' and 'client-key-data'");
  const token = stringField(user, 'token');
  const namespace = stringField(context, 'namespace');
  return {
    server: server!,
    ...(caPem ? { caPem } : {}),
    ...(cluster['insecure-skip-tls-verify'] === true ? { insecure: true } : {}),
    ...(token ? { token } : {}),
    ...(clientCertPem && clientKeyPem ? { clientCertPem, clientKeyPem } : {}),
    ...(namespace ? { namespace } : {}),
  };
}

function parseDocument(text: string): Dict {
  let doc: unknown;
  try {
    doc = text.trimStart().startsWith('{') ? JSON.parse(text) : load(text);
  } catch {
    fail('is neither valid JSON nor valid YAML');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail('must be a mapping');
  return doc as Dict;
}

function namedEntry(doc: Dict, listField: string, name: string, inner: string): Dict {
  const list = doc[listField];
  if (!Array.isArray(list)) fail(`'${listField}' is missing`);
  const entry = (list as unknown[]).find(
    (item) => typeof item === 'object' && item !== null && (item as Dict).name === name,
  ) as Dict | undefined;
  if (!entry) fail(`'${listField}' has no entry named by the current context`);
  const value = entry![inner];
  if (typeof value !== 'object' || value === null) fail(`'${listField}' entry has no '${inner}'`);
  return value as Dict;
}

function stringField(dict: Dict, field: string): string | undefined {
  const value = dict[field];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function base64Field(dict: Dict, field: string, where: string): string | undefined {
  const value = stringField(dict, field);
  if (value === undefined) return undefined;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  if (!decoded.includes('-----BEGIN ')) fail(`${where} '${field}' must be base64 of PEM`);
  return decoded;
}

function fail(problem: string): never {
  throw new DomainError(ErrorCode.VALIDATION_ERROR, `kubeconfig: ${problem}`, { field: 'credentials.kubeconfig' });
}
