export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Who caused an event: the API token (never its value) and the client address, or a CLI user. */
export interface AuditActor {
  tokenId?: string;
  tokenName?: string;
  role?: string;
  address?: string;
  /** Set when the caller presented an OIDC ID token (workload identity) instead of an API token. */
  workload?: WorkloadActor;
}

/** The pipeline behind an ID token: never the token itself. */
export interface WorkloadActor {
  /** The identity provider's name in Signet. */
  provider: string;
  /** The token's `sub`. */
  sub: string;
  /** The workload rule that granted the key used (sign rows). */
  rule?: string;
  /** Every rule the token matched (rows not tied to one key). */
  rules?: string[];
  jti?: string;
  /** The token's values of the claims the rule(s) named. */
  claims: Record<string, string>;
}

/**
 * What a module hands to AuditService.record. `type` is a dotted lower-case name
 * ('sign', 'key.created', 'certificate.revoked', 'token.updated', 'rotation.step', …); `subject`
 * names the thing acted on (a key, a serial, a token id). Secrets never go into `data`.
 */
export interface AuditEventInput {
  type: string;
  actor?: AuditActor;
  subject?: string;
  data: Record<string, unknown>;
}

/** One stored row as the API exports it. Hashes are lower-case hex; seq is a decimal string. */
export interface AuditEventView {
  seq: string;
  time: string;
  type: string;
  actor: AuditActor | null;
  subject: string | null;
  data: { [key: string]: JsonValue };
  prevHash: string;
  hash: string;
}

export interface AuditCheckpointView {
  id: string;
  seq: string;
  /** Hex SHA-256 of the row at `seq`. */
  hash: string;
  time: string;
  keySpec: string;
  keyRef: string | null;
  /** SubjectPublicKeyInfo DER, base64. */
  publicKey: string;
  /** The exact signed bytes (see checkpointStatement), base64. */
  statement: string;
  /** ECDSA: IEEE P1363 r||s; RSA: RSASSA-PSS, salt = hash length. Base64. */
  signature: string;
  /** Hash the signature was made over the statement with, e.g. SHA-256. */
  hashAlgorithm: string;
}

export interface AuditVerifyResult {
  ok: boolean;
  /** Rows whose hash and link were recomputed in this run. */
  checked: number;
  /** 'full' walked the whole kept log; 'incremental' started at the last good checkpoint. */
  mode: 'full' | 'incremental';
  /** The walk started after this seq. */
  from: string;
  /** The last seq in the table when verification began. */
  head: string;
  lastCheckpoint: { seq: string; hash: string; time: string } | null;
  /** The first seq that is missing, altered, or can no longer be proven by a checkpoint. */
  firstBrokenSeq?: string;
  reason?: string;
  warnings?: string[];
}
