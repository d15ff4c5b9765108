/**
 * The Notation plugin contract, version 1.0 (notaryproject/specifications, plugin-extensibility.md;
 * summarised in NOTARY.md "Notation plugin protocol"). Binary fields travel as standard base64,
 * which is how Go's encoding/json writes []byte.
 */
export const PLUGIN_NAME = 'signet';
export const CONTRACT_VERSION = '1.0';
/**
 * get-plugin-metadata's `url` (shown by `notation plugin list`). Signet has no public home yet
 * (package.json has no `repository`/`homepage`); `.invalid` marks the placeholder until it does.
 */
export const PLUGIN_DOCS_URL = 'https://signet.invalid/docs/notation-plugin.md';

export const COMMANDS = ['get-plugin-metadata', 'describe-key', 'generate-signature', 'version'] as const;
export type Command = (typeof COMMANDS)[number];

export type PluginErrorCode =
  'VALIDATION_ERROR' | 'UNSUPPORTED_CONTRACT_VERSION' | 'ACCESS_DENIED' | 'TIMEOUT' | 'THROTTLED' | 'ERROR';

/** Notation passes `pluginConfig` as map[string]string: from `notation key add`, merged with `notation sign --plugin-config`. */
export type PluginConfig = Record<string, string>;

export interface GetMetadataResponse {
  name: string;
  description: string;
  version: string;
  url: string;
  supportedContractVersions: string[];
  capabilities: string[];
}

export interface DescribeKeyRequest {
  contractVersion: string;
  keyId: string;
  pluginConfig?: PluginConfig;
}

export interface DescribeKeyResponse {
  keyId: string;
  keySpec: string;
}

export interface GenerateSignatureRequest {
  contractVersion: string;
  keyId: string;
  keySpec: string;
  hashAlgorithm: string;
  /** base64 of the JWS signing input `b64url(protected).b64url(payload)`. */
  payload: string;
  pluginConfig?: PluginConfig;
}

export interface GenerateSignatureResponse {
  keyId: string;
  /** base64; ECDSA as raw r||s. */
  signature: string;
  signingAlgorithm: string;
  /** base64 DER, leaf first, root last. */
  certificateChain: string[];
}

/** What the plugin writes to stderr (with exit code 1) when a command fails. */
export interface ErrorResponse {
  errorCode: PluginErrorCode;
  errorMessage: string;
  errorMetadata?: Record<string, string>;
}

export class PluginError extends Error {
  constructor(
    readonly code: PluginErrorCode,
    message: string,
    readonly metadata?: Record<string, string>,
  ) {
    super(message);
    this.name = 'PluginError';
  }

  toResponse(): ErrorResponse {
    return this.metadata && Object.keys(this.metadata).length > 0
      ? { errorCode: this.code, errorMessage: this.message, errorMetadata: this.metadata }
      : { errorCode: this.code, errorMessage: this.message };
  }
}

export function validationError(message: string): PluginError {
  return new PluginError('VALIDATION_ERROR', message);
}
