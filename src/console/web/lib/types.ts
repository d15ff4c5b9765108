/**
 * The API shapes the console reads: copies of the server's view types (API.md, OpenAPI). Importing
 * those would drag the whole Nest server (decorators, TypeORM) into the browser build's type check.
 */
import type { Role } from './roles';

export interface Session {
  role: Role;
  tokenName: string;
  csrfToken: string;
  expiresAt: string;
  idleExpiresAt: string;
}

export interface CaGeneration {
  generation: number;
  name: string;
  state: string;
  serial: string | null;
  notBefore: string | null;
  notAfter: string | null;
  urls: { certificate?: string; crl?: string; ocsp?: string };
}

export interface Ca {
  name: string;
  kind: 'root' | 'issuing' | 'tsa-root' | 'tsa';
  parent: string | null;
  external: boolean;
  generations: CaGeneration[];
}

export interface KeyVersion {
  version: number;
  state: string;
  serial: string | null;
  notBefore: string | null;
  notAfter: string | null;
  activatedAt: string | null;
  revokedAt: string | null;
}

export interface SigningKey {
  name: string;
  issuer: string | null;
  external: boolean;
  certificateValidityDays: number;
  rotation: { schedule: string; overlapDays?: number; retentionDays?: number };
  activeVersion: number | null;
  versions: KeyVersion[];
}

export interface Certificate {
  serial: string;
  kind: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  status: 'good' | 'revoked';
  revokedAt: string | null;
  reason: string | null;
  invalidityDate: string | null;
  /** Present when the server knows which key (and version) the certificate belongs to. */
  key?: string | null;
  keyVersion?: number | null;
  /** With `?artifact=`: that artifact's signatures by this certificate's key version (audit rows). */
  signatures?: Array<{ seq: string; time: string; auditedAs: string | null }>;
}

export type TargetState = 'converged' | 'pending' | 'pushing' | 'retrying' | 'blocked';

export interface TargetStatus {
  name: string;
  kind: string;
  endpoint: string;
  truststore: string;
  required: boolean;
  desired: { version: number; digest: string; since: string };
  delivered: { version: number; digest: string; at: string | null; verifiedAt: string | null } | null;
  state: TargetState;
  attempts: number;
  lastAttemptAt: string | null;
  nextAttemptAt: string | null;
  lastError: { kind: string; message: string } | null;
  convergedAt: string | null;
  convergeSeconds: number | null;
  lagSeconds: number;
  lagVersions: number;
}

export interface RegionStatus {
  name: string;
  offline: boolean;
  targets: TargetStatus[];
}

export interface DistributionStatus {
  generatedAt: string;
  summary: Record<TargetState, number> & { targets: number };
  truststores: Array<{
    name: string;
    version: number;
    digest: string;
    versionCreatedAt: string;
    convergedAt: string | null;
    lastRevocation: { version: number; revokedAt: string; convergedAt: string | null; seconds: number | null } | null;
  }>;
  regions: RegionStatus[];
}

export interface RotationStep {
  name: string;
  state: 'pending' | 'waiting' | 'done' | 'skipped' | 'failed';
  attempts: number;
  startedAt: string | null;
  finishedAt: string | null;
  waitingUntil: string | null;
  waitingFor: string | null;
  error: string | null;
  detail: Record<string, unknown> | null;
}

export interface Rotation {
  id: string;
  kind: 'key' | 'ca';
  subject: string;
  trigger: string;
  state: 'running' | 'activated' | 'completed' | 'failed';
  step: string | null;
  dueAt: string | null;
  startedAt: string;
  completedAt: string | null;
  alert: string | null;
  reason: string | null;
  from: string | null;
  to: string;
  steps: RotationStep[];
}

export interface AuditEvent {
  seq: string;
  time: string;
  type: string;
  actor: {
    tokenId?: string;
    tokenName?: string;
    role?: string;
    address?: string;
    workload?: { provider: string; sub: string };
  } | null;
  subject: string | null;
  data: Record<string, unknown>;
  hash: string;
}

export interface AuditCheckpoint {
  id: string;
  seq: string;
  hash: string;
  time: string;
}

export interface AuditVerifyResult {
  ok: boolean;
  checked: number;
  lastCheckpoint: unknown;
  firstBrokenSeq?: string;
}

/** One item of GET /v1/status: red or not, and the `signet status` rule that makes it red. */
export interface Flag {
  red: boolean;
  rule: string;
}

/** GET /v1/status (`signet status` as JSON), the Overview's source: the server applies its configured thresholds. */
export interface SecurityStatus {
  generatedAt: string;
  red: boolean;
  caGenerations: Array<
    { ca: string; kind: string; generation: string; state: string; notAfter: string; days: number } & Flag
  >;
  leaves: Array<{ key: string; version: number; notAfter: string; days: number } & Flag>;
  rotations: Array<
    {
      key: string;
      schedule: string;
      activatedAt: string | null;
      nextDueAt: string | null;
      overdueSince: string | null;
      hoursLate: number | null;
    } & Flag
  >;
  rotationAlerts: Array<{ rotationId: string; subject: string; alert: string } & Flag>;
  caRenewalBlocked: Array<{ ca: string; kind: string; generation: string; reason: string } & Flag>;
  keysWithoutActiveVersion: Array<{ key: string } & Flag>;
  crls: Array<{ generation: string; nextUpdate: string | null; secondsLeft: number | null } & Flag>;
  distribution: {
    targets: number;
    converged: number;
    pending: number;
    pushing: number;
    retrying: number;
    blocked: number;
  } & Flag;
  auditCheckpoint: {
    lastCheckpointAt: string | null;
    lastCheckpointSeq: string | null;
    headSeq: string;
    oldestUncheckpointedAt: string | null;
    uncheckpointedAgeSeconds: number;
    intervalSeconds: number;
  } & Flag;
}
