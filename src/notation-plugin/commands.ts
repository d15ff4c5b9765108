import { KEY_SPEC_INFO, KEY_SPECS, KeySpec, isKeySpec } from '../pki/key-spec';
import { readConnection } from './plugin-config';
import {
  CONTRACT_VERSION,
  DescribeKeyResponse,
  GenerateSignatureResponse,
  GetMetadataResponse,
  PLUGIN_DOCS_URL,
  PLUGIN_NAME,
  PluginConfig,
  PluginError,
  validationError,
} from './protocol';
import { checkSignature } from './signature-check';
import { SignetClient } from './signet-client';
import { pluginVersion } from './version';

export interface CommandContext {
  env: NodeJS.ProcessEnv;
  /** Values (the token) that must never appear in anything the plugin prints; filled as they are read. */
  secrets: string[];
}

/** Static, no network (Notation calls it before every signing). */
export function getPluginMetadata(): GetMetadataResponse {
  return {
    name: PLUGIN_NAME,
    description: 'Signs with keys held in Signet (HSM-backed keys and certificates for container-image signing)',
    version: pluginVersion(),
    url: PLUGIN_DOCS_URL,
    supportedContractVersions: [CONTRACT_VERSION],
    capabilities: ['SIGNATURE_GENERATOR.RAW'],
  };
}

/** describe-key: the key's spec, from `GET /v1/keys/{keyId}`. */
export async function describeKey(
  request: Record<string, unknown>,
  context: CommandContext,
): Promise<DescribeKeyResponse> {
  const operation = 'describe-key';
  checkContractVersion(request);
  const keyId = requiredString(request, 'keyId', operation);
  const client = connect(request, context, operation);

  const { body } = await client.getKey(keyId, operation);
  const keySpec = (body as { keySpec?: unknown }).keySpec;
  if (!isKeySpec(keySpec)) {
    throw new PluginError(
      'ERROR',
      `${operation}: Signet's description of key '${keyId}' has no supported keySpec (got ${JSON.stringify(keySpec)})`,
    );
  }
  return { keyId, keySpec };
}

/**
 * generate-signature: sends the JWS signing input itself to Signet (payload mode, so Signet records the
 * artifact and applies promotion rules), then checks the answer the way Notation will.
 */
export async function generateSignature(
  request: Record<string, unknown>,
  context: CommandContext,
): Promise<GenerateSignatureResponse> {
  const operation = 'generate-signature';
  checkContractVersion(request);
  const keyId = requiredString(request, 'keyId', operation);
  const keySpec = requiredString(request, 'keySpec', operation);
  const hashAlgorithm = requiredString(request, 'hashAlgorithm', operation);
  const payload = requiredString(request, 'payload', operation);
  if (!isKeySpec(keySpec)) {
    throw validationError(`${operation}: keySpec '${keySpec}' is not supported (one of ${KEY_SPECS.join(', ')})`);
  }
  const info = KEY_SPEC_INFO[keySpec];
  if (hashAlgorithm !== info.hash) {
    throw validationError(
      `${operation}: hashAlgorithm '${hashAlgorithm}' does not pair with keySpec ${keySpec} (Notation pairs it with ${info.hash})`,
    );
  }
  const payloadBytes = decodeStrictBase64(payload);
  if (!payloadBytes) throw validationError(`${operation}: payload is not standard base64`);
  const client = connect(request, context, operation);

  const { body } = await client.sign(keyId, { payload, hashAlgorithm, signatureFormat: 'raw' }, operation);
  const answer = body as {
    signature?: unknown;
    signingAlgorithm?: unknown;
    certificateChain?: unknown;
    keySpec?: unknown;
  };
  if (answer.keySpec !== undefined && answer.keySpec !== keySpec) {
    throw new PluginError(
      'ERROR',
      `${operation}: Signet signed with a ${String(answer.keySpec)} key but Notation asked for ${keySpec}; run describe-key again (was the key replaced?)`,
    );
  }
  if (answer.signingAlgorithm !== info.signingAlgorithm) {
    throw new PluginError(
      'ERROR',
      `${operation}: Signet answered signingAlgorithm ${JSON.stringify(answer.signingAlgorithm)}; ${keySpec} requires ${info.signingAlgorithm}`,
    );
  }
  if (typeof answer.signature !== 'string' || answer.signature === '') {
    throw new PluginError('ERROR', `${operation}: Signet's answer has no signature`);
  }
  if (!Array.isArray(answer.certificateChain) || answer.certificateChain.length === 0) {
    throw new PluginError('ERROR', `${operation}: Signet's answer has no certificateChain`);
  }
  if (!answer.certificateChain.every((entry): entry is string => typeof entry === 'string')) {
    throw new PluginError('ERROR', `${operation}: Signet's certificateChain holds something other than base64 strings`);
  }
  const signature = Buffer.from(answer.signature, 'base64');
  const chain = answer.certificateChain.map((entry) => Buffer.from(entry, 'base64'));
  checkSignature(operation, keySpec as KeySpec, payloadBytes, signature, chain);

  return {
    keyId,
    signature: signature.toString('base64'),
    signingAlgorithm: info.signingAlgorithm,
    certificateChain: chain.map((der) => der.toString('base64')),
  };
}

function checkContractVersion(request: Record<string, unknown>): void {
  const version = request.contractVersion;
  if (version === undefined || version === '') throw validationError(`'contractVersion' is required`);
  if (version !== CONTRACT_VERSION) {
    throw new PluginError(
      'UNSUPPORTED_CONTRACT_VERSION',
      `${JSON.stringify(version)} is not a supported Notation plugin contract version (supported: ${CONTRACT_VERSION})`,
    );
  }
}

function requiredString(request: Record<string, unknown>, field: string, operation: string): string {
  const value = request[field];
  if (typeof value !== 'string' || value === '') throw validationError(`${operation}: '${field}' is required`);
  return value;
}

function connect(request: Record<string, unknown>, context: CommandContext, operation: string): SignetClient {
  const config = request.pluginConfig;
  if (config !== undefined && config !== null) {
    if (
      typeof config !== 'object' ||
      Array.isArray(config) ||
      !Object.values(config).every((v) => typeof v === 'string')
    ) {
      throw validationError(`${operation}: 'pluginConfig' must be an object of strings`);
    }
  }
  const connection = readConnection((config ?? undefined) as PluginConfig | undefined, context.env);
  context.secrets.push(connection.token);
  return new SignetClient(connection, `notation-signet/${pluginVersion()}`);
}

/** Go writes []byte as padded standard base64; anything else is not what Notation sent. */
function decodeStrictBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.length > 0 && bytes.toString('base64') === text ? bytes : undefined;
}
