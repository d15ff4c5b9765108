import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ChangeNotifier } from '../database/change-notifier';
import { TruststoreEntity } from '../truststore/truststore.entity';
import { TruststoreService } from '../truststore/truststore.service';
import { DistributionTargetEntity } from './distribution-target.entity';
import { createTrustTarget } from './drivers/trust-target.factory';
import { RegionEntity } from './region.entity';
import {
  DriverContext,
  driverOptions,
  endpointOrigin,
  REGION_NAME,
  settingsFromInput,
  TARGET_NAME,
  TargetInput,
  TargetSettings,
  validateEndpoint,
  validateKind,
  validateTargetHosts,
} from './target-definition';
import { TargetCredentials } from './target-credentials';
import { TargetsRepository } from './targets.repository';

/** Cross-replica wake-up of the reconcilers (LISTEN/NOTIFY, delivered on commit). */
export const DISTRIBUTION_CHANNEL = 'signet_distribution';

export interface RegionView {
  name: string;
  offline: boolean;
  targets: string[];
  createdAt: string;
}

export interface TargetView {
  region: string;
  name: string;
  kind: string;
  endpoint: string;
  truststore: string;
  required: boolean;
  settings: TargetSettings;
  /** Whether credentials are stored; they are never returned. */
  hasCredentials: boolean;
  configRevision: number;
  createdAt: string;
  updatedAt: string;
}

/** Settings that name where on the endpoint the bundle goes. */
const LOCATION_SETTINGS = ['repository', 'project', 'namespace', 'configMapName'] as const;

const TARGET_FIELDS = new Set([
  'name',
  'kind',
  'endpoint',
  'truststore',
  'required',
  'credentials',
  'repository',
  'project',
  'namespace',
  'configMapName',
  'ratify',
  'forceConflicts',
  'contentTrust',
  'tls',
  'allowedHosts',
  'formats',
]);

/**
 * Regions and their targets (API.md "Truststores and distribution"). Every definition is checked by
 * building its driver before anything is stored, so a stored target can always be pushed to.
 * Credentials are write-only: sealed on the way in, never part of a view, an audit record or a log.
 */
@Injectable()
export class RegionsService {
  private readonly logger = new Logger(RegionsService.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly targets: TargetsRepository,
    private readonly truststores: TruststoreService,
    private readonly credentials: TargetCredentials,
    private readonly audit: AuditService,
    private readonly notifier: ChangeNotifier,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  get driverContext(): DriverContext {
    const d = this.config.distribution;
    return { globalAllowedHosts: d.allowedHosts, allowLoopback: d.allowLoopback, requestTimeoutMs: d.attemptTimeoutMs };
  }

  async createRegion(input: { name?: unknown; offline?: unknown }, actor?: AuditActor): Promise<RegionView> {
    const operation = 'createRegion';
    if (typeof input.name !== 'string' || !REGION_NAME.test(input.name)) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `${operation}: 'name' must be a DNS label (${REGION_NAME.source})`,
        { field: 'name' },
      );
    }
    if (input.offline !== undefined && typeof input.offline !== 'boolean')
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'offline' must be a boolean`, {
        field: 'offline',
      });
    if (await this.targets.regionExists(input.name))
      throw new DomainError(ErrorCode.ALREADY_EXISTS, `${operation}: a region named '${input.name}' already exists`, {
        field: 'name',
      });
    const region = await this.dataSource.transaction(async (manager) => {
      const saved = await this.targets.insertRegion(manager, {
        name: input.name as string,
        offline: input.offline === true,
      });
      await this.audit.record({
        type: 'distribution.region.created',
        actor,
        subject: saved.name,
        data: { offline: saved.offline },
      });
      return saved;
    });
    return this.regionView(region);
  }

  async listRegions(): Promise<RegionView[]> {
    const regions = await this.targets.regions();
    return Promise.all(regions.map((r) => this.regionView(r)));
  }

  async getRegion(name: string): Promise<RegionView> {
    return this.regionView(await this.regionByName(name));
  }

  async deleteRegion(name: string, actor?: AuditActor): Promise<void> {
    const region = await this.regionByName(name);
    await this.dataSource.transaction(async (manager) => {
      const targets = await this.targets.countTargetsIn(manager, region.id);
      if (targets > 0)
        throw new DomainError(
          ErrorCode.CONFLICT,
          `deleteRegion: region '${name}' still has ${targets} target(s); delete them first`,
        );
      await this.audit.record({ type: 'distribution.region.deleted', actor, subject: name, data: {} });
      await this.targets.deleteRegion(manager, region.id);
    });
  }

  async createTarget(
    regionName: string,
    input: TargetInput & Record<string, unknown>,
    actor?: AuditActor,
  ): Promise<TargetView> {
    const operation = 'createTarget';
    rejectUnknownFields(input, operation);
    const region = await this.regionByName(regionName);
    if (typeof input.name !== 'string' || !TARGET_NAME.test(input.name)) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `${operation}: 'name' must be a DNS label (${TARGET_NAME.source})`,
        { field: 'name' },
      );
    }
    const kind = validateKind(input.kind, operation);
    const endpoint = validateEndpoint(input.endpoint, this.driverContext, operation);
    if (typeof input.truststore !== 'string')
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'truststore' must name a truststore`, {
        field: 'truststore',
      });
    const truststore = await this.truststores.byName(input.truststore);
    if (input.required !== undefined && typeof input.required !== 'boolean')
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'required' must be a boolean`, {
        field: 'required',
      });
    const settings = settingsFromInput(kind, input, operation);
    validateTargetHosts(settings.allowedHosts, this.driverContext, operation);
    const credentials =
      input.credentials === undefined || input.credentials === null
        ? undefined
        : TargetCredentials.validate(input.credentials, operation);
    await this.checkDefinition({ kind, endpoint, settings }, credentials);

    if (await this.targets.targetExists(region.id, input.name)) {
      throw new DomainError(
        ErrorCode.ALREADY_EXISTS,
        `${operation}: region '${region.name}' already has a target named '${input.name}'`,
        { field: 'name' },
      );
    }
    const id = randomUUID();
    const sealed = credentials ? await this.credentials.seal(id, endpoint, credentials) : null;
    await this.dataSource.transaction(async (manager) => {
      await this.targets.insertTarget(manager, {
        id,
        regionId: region.id,
        name: input.name as string,
        kind,
        endpoint,
        settings,
        truststoreId: truststore.id,
        required: input.required !== false,
        credentialsSealed: sealed,
        configRevision: 1,
        attempts: 0,
        nextAttemptAt: new Date(),
        state: 'pending',
        forcePush: false,
      });
      await this.audit.record({
        type: 'distribution.target.created',
        actor,
        subject: `${region.name}/${input.name}`,
        data: {
          kind,
          endpoint,
          truststore: truststore.name,
          required: input.required !== false,
          settings: auditSettings(settings),
          credentials: credentials ? 'set' : 'none',
        },
      });
      await this.notifier.notify(manager, DISTRIBUTION_CHANNEL, `${region.name}/${input.name}`);
    });
    this.logger.log(`target ${region.name}/${input.name} created (${kind} ${endpoint}, truststore ${truststore.name})`);
    return this.getTarget(region.name, input.name as string);
  }

  /**
   * Changes a target. Fields left out keep their value; `credentials: null` removes stored ones.
   * The next reconcile pushes again even if the target already holds the digest (its layers or
   * location may have changed). Stored credentials belong to the endpoint's origin: moving the
   * endpoint to another scheme, host or port needs new ones in the same request (400
   * CREDENTIALS_REQUIRED otherwise), so whoever may edit a target cannot redirect its password. A
   * new location (endpoint, repository, project, namespace, ConfigMap) holds nothing we know of: its
   * delivery record is cleared, so status and the rotation gate wait for the new read-back.
   */
  async updateTarget(
    regionName: string,
    name: string,
    patch: TargetInput & Record<string, unknown>,
    actor?: AuditActor,
  ): Promise<TargetView> {
    const operation = 'updateTarget';
    rejectUnknownFields(patch, operation);
    if (patch.name !== undefined && patch.name !== name)
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'name' cannot change`, { field: 'name' });
    if (patch.kind !== undefined && patch.kind !== null) validateKind(patch.kind, operation);
    const { region, target } = await this.targetRow(regionName, name, true);
    if (patch.kind !== undefined && patch.kind !== target.kind)
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'kind' cannot change; create another target`, {
        field: 'kind',
      });
    const endpoint =
      patch.endpoint === undefined ? target.endpoint : validateEndpoint(patch.endpoint, this.driverContext, operation);
    const originChanged = endpointOrigin(endpoint) !== endpointOrigin(target.endpoint);
    // Leaving credentials out would carry them to the new origin; new ones, or null (remove), are fine.
    if (originChanged && target.credentialsSealed && patch.credentials === undefined) {
      throw new DomainError(
        ErrorCode.CREDENTIALS_REQUIRED,
        `${operation}: the endpoint moves from ${endpointOrigin(target.endpoint)} to ${endpointOrigin(endpoint)}; stored credentials stay with their origin: send 'credentials' (or null to remove them) in the same request`,
        { field: 'credentials' },
      );
    }
    let truststore: TruststoreEntity | undefined;
    if (patch.truststore !== undefined) {
      if (typeof patch.truststore !== 'string')
        throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'truststore' must name a truststore`, {
          field: 'truststore',
        });
      truststore = await this.truststores.byName(patch.truststore);
    }
    if (patch.required !== undefined && typeof patch.required !== 'boolean')
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'required' must be a boolean`, {
        field: 'required',
      });
    const merged: TargetInput = { ...target.settings };
    for (const field of [
      'repository',
      'project',
      'namespace',
      'configMapName',
      'ratify',
      'forceConflicts',
      'contentTrust',
      'tls',
      'allowedHosts',
      'formats',
    ] as const) {
      if (patch[field] !== undefined) merged[field] = patch[field] ?? undefined;
    }
    const settings = settingsFromInput(target.kind, merged, operation);
    validateTargetHosts(settings.allowedHosts, this.driverContext, operation);
    // The TLS settings decide who can answer for that origin (an extra CA, or none checked): a
    // change there is a move of the credentials too.
    const trustChanged =
      tlsTrust(settings.tls) !== tlsTrust((target.settings as TargetInput).tls as typeof settings.tls);
    if (trustChanged && target.credentialsSealed && patch.credentials === undefined) {
      throw new DomainError(
        ErrorCode.CREDENTIALS_REQUIRED,
        `${operation}: 'tls' changes which servers can answer for ${endpointOrigin(endpoint)}; stored credentials stay with the trust they were given under: send 'credentials' (or null to remove them) in the same request`,
        { field: 'credentials' },
      );
    }
    let credentials: Record<string, unknown> | undefined;
    let sealed: Buffer | null | undefined;
    if (patch.credentials === null) {
      sealed = null;
    } else if (patch.credentials !== undefined) {
      credentials = TargetCredentials.validate(patch.credentials, operation);
      sealed = await this.credentials.seal(target.id, endpoint, credentials);
    } else if (target.credentialsSealed) {
      // Same origin (checked above); a legacy value comes back re-sealed for it and is stored so.
      const opened = await this.credentials.open(target, target.credentialsSealed);
      credentials = opened.credentials;
      if (opened.resealed) sealed = opened.resealed;
    }
    await this.checkDefinition({ kind: target.kind, endpoint, settings }, credentials);

    const changed = Object.keys(patch).filter((k) => k !== 'name');
    const moved =
      endpoint !== target.endpoint ||
      LOCATION_SETTINGS.some((field) => JSON.stringify(settings[field]) !== JSON.stringify(target.settings[field]));
    await this.dataSource.transaction(async (manager) => {
      await this.targets.updateTarget(manager, target.id, {
        endpoint,
        settings,
        ...(truststore ? { truststoreId: truststore.id } : {}),
        ...(patch.required !== undefined ? { required: patch.required as boolean } : {}),
        ...(sealed !== undefined ? { credentialsSealed: sealed } : {}),
        ...(moved ? { deliveredVersion: null, deliveredDigest: null, deliveredAt: null, verifiedAt: null } : {}),
        configRevision: target.configRevision + 1,
        forcePush: true,
        attempts: 0,
        attemptDigest: null,
        nextAttemptAt: new Date(),
        state: 'pending',
      });
      await this.audit.record({
        type: 'distribution.target.updated',
        actor,
        subject: `${region.name}/${name}`,
        data: {
          changed,
          endpoint,
          ...(truststore ? { truststore: truststore.name } : {}),
          settings: auditSettings(settings),
          credentials:
            patch.credentials === undefined ? 'unchanged' : patch.credentials === null ? 'removed' : 'replaced',
        },
      });
      await this.notifier.notify(manager, DISTRIBUTION_CHANNEL, `${region.name}/${name}`);
    });
    return this.getTarget(region.name, name);
  }

  async deleteTarget(regionName: string, name: string, actor?: AuditActor): Promise<void> {
    const { region, target } = await this.targetRow(regionName, name);
    await this.dataSource.transaction(async (manager) => {
      await this.audit.record({
        type: 'distribution.target.deleted',
        actor,
        subject: `${region.name}/${name}`,
        data: { kind: target.kind, endpoint: target.endpoint },
      });
      await this.targets.deleteTarget(manager, target.id);
    });
  }

  async getTarget(regionName: string, name: string): Promise<TargetView> {
    const { region, target } = await this.targetRow(regionName, name, true);
    const truststore = await this.truststores.byId(target.truststoreId);
    return targetView(region, target, truststore.name);
  }

  async targetRow(
    regionName: string,
    name: string,
    withCredentials = false,
    manager: EntityManager = this.dataSource.manager,
  ): Promise<{ region: RegionEntity; target: DistributionTargetEntity }> {
    const region = await this.regionByName(regionName);
    const target = await this.targets.targetIn(region.id, name, withCredentials, manager);
    if (!target) throw new DomainError(ErrorCode.NOT_FOUND, `region '${regionName}' has no target named '${name}'`);
    return { region, target };
  }

  async regionByName(name: string): Promise<RegionEntity> {
    const region = typeof name === 'string' ? await this.targets.regionByName(name) : null;
    if (!region) throw new DomainError(ErrorCode.NOT_FOUND, `no region named '${name}'`);
    return region;
  }

  /** Builds (and closes) the driver: the factory validates every field, naming it, never echoing credentials. */
  private async checkDefinition(
    target: { kind: DistributionTargetEntity['kind']; endpoint: string; settings: TargetSettings },
    credentials: unknown,
  ): Promise<void> {
    const driver = createTrustTarget(driverOptions(target, credentials, this.driverContext));
    await driver.close();
  }

  private async regionView(region: RegionEntity): Promise<RegionView> {
    return {
      name: region.name,
      offline: region.offline,
      targets: await this.targets.targetNamesIn(region.id),
      createdAt: region.createdAt.toISOString(),
    };
  }
}

export function targetView(region: RegionEntity, target: DistributionTargetEntity, truststore: string): TargetView {
  return {
    region: region.name,
    name: target.name,
    kind: target.kind,
    endpoint: target.endpoint,
    truststore,
    required: target.required,
    settings: target.settings,
    hasCredentials: target.credentialsSealed !== null && target.credentialsSealed !== undefined,
    configRevision: target.configRevision,
    createdAt: target.createdAt.toISOString(),
    updatedAt: target.updatedAt.toISOString(),
  };
}

function rejectUnknownFields(input: Record<string, unknown>, operation: string): void {
  for (const key of Object.keys(input)) {
    if (!TARGET_FIELDS.has(key))
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: '${key}' is not a target field`, { field: key });
  }
}

/** Settings as audited: the TLS CA is summarised (it is public, but long). */
function auditSettings(settings: TargetSettings): Record<string, unknown> {
  const { tls, ...rest } = settings;
  return { ...rest, ...(tls ? { tls: { caPem: tls.caPem ? 'set' : 'none', insecure: tls.insecure === true } } : {}) };
}

/** The TLS trust a target's settings give its origin, comparable across key orders. */
function tlsTrust(tls: { caPem?: string; insecure?: boolean } | undefined): string {
  return JSON.stringify({ caPem: tls?.caPem ?? null, insecure: tls?.insecure === true });
}
