import { Inject, Injectable } from '@nestjs/common';
import { classifyHost, hostRefusal } from '../distribution/address-classifier';
import { EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { AuditActor } from '../audit/audit.types';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ChangeNotifier } from '../database/change-notifier';
import { ClaimPatterns, parseClaimPatterns } from './claim-rules';
import { IdentityRepository, ProviderFields, ProviderRow, RuleRow } from './identity.repository';
import { IDENTITY_CHANNEL } from './identity-channel';
import { WorkloadIdentityService } from './workload-identity.service';

/** Asymmetric JWS algorithms a provider may allow. `none` and HMAC (`HS*`) are never accepted. */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export const DEFAULT_ALGORITHMS = ['RS256', 'ES256'];
export const DEFAULT_CLOCK_SKEW_SECONDS = 60;
export const PROVIDER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
export const RULE_NAME = PROVIDER_NAME;
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

export interface ProviderView {
  name: string;
  issuer: string;
  audiences: string[];
  allowedAlgorithms: string[];
  jwksUri: string | null;
  clockSkewSeconds: number;
  singleUse: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface RuleView {
  name: string;
  provider: string;
  claims: ClaimPatterns;
  keys: string[];
  expiresAt: string | null;
  state: 'active' | 'expired';
  createdAt: string;
  updatedAt: string;
}

export interface ProviderInput {
  name?: unknown;
  issuer?: unknown;
  audiences?: unknown;
  allowedAlgorithms?: unknown;
  jwksUri?: unknown;
  clockSkewSeconds?: unknown;
  singleUse?: unknown;
}

export interface RuleInput {
  name?: unknown;
  provider?: unknown;
  claims?: unknown;
  keys?: unknown;
  expiresAt?: unknown;
}

/**
 * Identity providers and workload rules (admin). Each change is audited and announced on
 * IDENTITY_CHANNEL inside its transaction; this replica also drops what it cached at once, others
 * when the notification arrives (and in any case within SIGNET_TOKEN_CACHE_SECONDS).
 */
@Injectable()
export class IdentityAdminService {
  constructor(
    private readonly repository: IdentityRepository,
    private readonly audit: AuditService,
    private readonly notifier: ChangeNotifier,
    private readonly workloads: WorkloadIdentityService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  async createProvider(input: ProviderInput, actor: AuditActor | undefined): Promise<ProviderView> {
    const op = 'createIdentityProvider';
    if (typeof input.name !== 'string' || !PROVIDER_NAME.test(input.name))
      throw invalid(op, 'name', 'must be 1-100 letters, digits, ".", "_" or "-", starting with a letter or digit');
    const fields = this.providerFields(op, input, undefined);
    const row = await this.repository.transaction(async (manager) => {
      let created: ProviderRow;
      try {
        created = await this.repository.insertProvider(manager, input.name as string, fields);
      } catch (error) {
        if (driverCode(error) === '23505')
          throw new DomainError(
            ErrorCode.ALREADY_EXISTS,
            `${op}: an identity provider with this name or issuer already exists`,
          );
        throw error;
      }
      await this.audit.record({
        type: 'identity-provider.created',
        actor,
        subject: created.name,
        data: providerData(created),
      });
      await this.announce(manager, `provider:${created.id}`);
      return created;
    });
    this.workloads.invalidate(`provider:${row.id}`);
    return providerView(row);
  }

  async listProviders(): Promise<ProviderView[]> {
    return (await this.repository.listProviders()).map(providerView);
  }

  async getProvider(name: string): Promise<ProviderView> {
    const row = await this.repository.providerByName(name);
    if (!row) throw providerNotFound(name);
    return providerView(row);
  }

  async updateProvider(name: string, input: ProviderInput, actor: AuditActor | undefined): Promise<ProviderView> {
    const op = 'updateIdentityProvider';
    if (input.name !== undefined) throw invalid(op, 'name', 'cannot be changed; create a new provider');
    if (Object.values(input).every((value) => value === undefined)) throw invalid(op, 'body', 'nothing to change');
    const row = await this.repository.transaction(async (manager) => {
      const current = await this.repository.lockProvider(manager, name);
      if (!current) throw providerNotFound(name);
      const fields = this.providerFields(op, input, current);
      let updated: ProviderRow;
      try {
        updated = await this.repository.updateProvider(manager, current.id, fields);
      } catch (error) {
        if (driverCode(error) === '23505')
          throw new DomainError(ErrorCode.ALREADY_EXISTS, `${op}: another identity provider has this issuer`);
        throw error;
      }
      await this.audit.record({ type: 'identity-provider.updated', actor, subject: name, data: providerData(updated) });
      await this.announce(manager, `provider:${current.id}`);
      return updated;
    });
    this.workloads.invalidate(`provider:${row.id}`);
    return providerView(row);
  }

  /** Deletes a provider and its rules: its ID tokens stop working here at once, elsewhere within the token cache time. */
  async deleteProvider(name: string, actor: AuditActor | undefined): Promise<{ name: string; deletedRules: string[] }> {
    const result = await this.repository.transaction(async (manager) => {
      const current = await this.repository.lockProvider(manager, name);
      if (!current) throw providerNotFound(name);
      const deletedRules = await this.repository.deleteProvider(manager, current.id);
      await this.audit.record({
        type: 'identity-provider.deleted',
        actor,
        subject: name,
        data: { issuer: current.issuer, deletedRules },
      });
      await this.announce(manager, `provider:${current.id}`);
      return { id: current.id, deletedRules };
    });
    this.workloads.invalidate(`provider:${result.id}`);
    return { name, deletedRules: result.deletedRules };
  }

  async createRule(input: RuleInput, actor: AuditActor | undefined): Promise<RuleView> {
    const op = 'createWorkloadRule';
    if (typeof input.name !== 'string' || !RULE_NAME.test(input.name))
      throw invalid(op, 'name', 'must be 1-100 letters, digits, ".", "_" or "-", starting with a letter or digit');
    if (typeof input.provider !== 'string') throw invalid(op, 'provider', 'must name an identity provider');
    if (input.claims === undefined) throw invalid(op, 'claims', 'is required');
    if (input.keys === undefined) throw invalid(op, 'keys', 'is required');
    const claims = parseClaimPatterns(input.claims, op);
    const keys = parseKeys(op, input.keys);
    const expiresAt = parseExpiry(op, input.expiresAt);
    const name = input.name;
    const providerName = input.provider;
    const row = await this.repository.transaction(async (manager) => {
      const provider = await this.repository.providerByName(providerName, manager);
      if (!provider) throw invalid(op, 'provider', `names no identity provider ('${providerName.slice(0, 100)}')`);
      try {
        await this.repository.insertRule(manager, name, provider.id, { claims, keys, expiresAt });
      } catch (error) {
        if (driverCode(error) === '23505')
          throw new DomainError(ErrorCode.ALREADY_EXISTS, `${op}: a workload rule named "${name}" already exists`);
        throw error;
      }
      const created = (await this.repository.ruleByName(name, manager))!;
      await this.audit.record({ type: 'workload-rule.created', actor, subject: name, data: ruleData(created) });
      await this.announce(manager, 'rules');
      return created;
    });
    this.workloads.invalidate('rules');
    return ruleView(row);
  }

  async listRules(): Promise<RuleView[]> {
    return (await this.repository.listRules()).map(ruleView);
  }

  async getRule(name: string): Promise<RuleView> {
    const row = await this.repository.ruleByName(name);
    if (!row) throw ruleNotFound(name);
    return ruleView(row);
  }

  async updateRule(name: string, input: RuleInput, actor: AuditActor | undefined): Promise<RuleView> {
    const op = 'updateWorkloadRule';
    if (input.name !== undefined) throw invalid(op, 'name', 'cannot be changed; create a new rule');
    if (input.provider !== undefined) throw invalid(op, 'provider', 'cannot be changed; create a new rule');
    if (input.claims === undefined && input.keys === undefined && input.expiresAt === undefined)
      throw invalid(op, 'body', 'nothing to change: give claims, keys or expiresAt');
    const claims = input.claims === undefined ? undefined : parseClaimPatterns(input.claims, op);
    const keys = input.keys === undefined ? undefined : parseKeys(op, input.keys);
    const expiresAt = input.expiresAt === undefined ? undefined : parseExpiry(op, input.expiresAt);
    const row = await this.repository.transaction(async (manager) => {
      const current = await this.repository.lockRule(manager, name);
      if (!current) throw ruleNotFound(name);
      await this.repository.updateRule(manager, current.id, {
        claims: claims ?? current.claims,
        keys: keys ?? current.key_names,
        expiresAt: expiresAt === undefined ? current.expires_at : expiresAt,
      });
      const updated = (await this.repository.ruleByName(name, manager))!;
      await this.audit.record({ type: 'workload-rule.updated', actor, subject: name, data: ruleData(updated) });
      await this.announce(manager, 'rules');
      return updated;
    });
    this.workloads.invalidate('rules');
    return ruleView(row);
  }

  async deleteRule(name: string, actor: AuditActor | undefined): Promise<{ name: string }> {
    await this.repository.transaction(async (manager) => {
      const current = await this.repository.lockRule(manager, name);
      if (!current) throw ruleNotFound(name);
      await this.repository.deleteRule(manager, current.id);
      await this.audit.record({
        type: 'workload-rule.deleted',
        actor,
        subject: name,
        data: { provider: current.provider_name, keys: current.key_names },
      });
      await this.announce(manager, 'rules');
    });
    this.workloads.invalidate('rules');
    return { name };
  }

  private announce(manager: EntityManager, payload: string): Promise<void> {
    return this.notifier.notify(manager, IDENTITY_CHANNEL, payload);
  }

  /** The provider's fields after applying `input` over `current` (create: no current). */
  private providerFields(op: string, input: ProviderInput, current: ProviderRow | undefined): ProviderFields {
    const issuer =
      input.issuer === undefined && current ? current.issuer : this.parseIssuerUrl(op, 'issuer', input.issuer);
    let jwksUri: string | null = current?.jwks_uri ?? null;
    if (input.jwksUri === null) jwksUri = null;
    else if (input.jwksUri !== undefined) jwksUri = this.parseIssuerUrl(op, 'jwksUri', input.jwksUri);

    let audiences = current?.audiences;
    if (input.audiences !== undefined || !current) {
      const value = input.audiences;
      if (
        !Array.isArray(value) ||
        value.length === 0 ||
        value.length > 16 ||
        value.some((a) => typeof a !== 'string' || a.length === 0 || a.length > 256)
      ) {
        throw invalid(
          op,
          'audiences',
          'must list 1 to 16 audience strings (the `aud` Signet accepts), each at most 256 characters',
        );
      }
      audiences = [...new Set(value as string[])];
    }

    let allowedAlgorithms = current?.allowed_algorithms ?? DEFAULT_ALGORITHMS;
    if (input.allowedAlgorithms !== undefined) {
      const value = input.allowedAlgorithms;
      if (
        !Array.isArray(value) ||
        value.length === 0 ||
        value.length > ASYMMETRIC_ALGORITHMS.length ||
        value.some((a) => typeof a !== 'string')
      ) {
        throw invalid(op, 'allowedAlgorithms', `must list one or more of ${ASYMMETRIC_ALGORITHMS.join(', ')}`);
      }
      for (const alg of value as string[]) {
        if (alg.toLowerCase() === 'none' || /^HS/i.test(alg))
          throw invalid(
            op,
            'allowedAlgorithms',
            `'${alg.slice(0, 20)}' is never accepted: ID tokens must carry an asymmetric signature`,
          );
        if (!(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg))
          throw invalid(
            op,
            'allowedAlgorithms',
            `'${alg.slice(0, 20)}' is not one of ${ASYMMETRIC_ALGORITHMS.join(', ')}`,
          );
      }
      allowedAlgorithms = [...new Set(value as string[])];
    }

    let clockSkewSeconds = current?.clock_skew_seconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
    if (input.clockSkewSeconds !== undefined) {
      const value = input.clockSkewSeconds;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 300)
        throw invalid(op, 'clockSkewSeconds', 'must be a whole number of seconds from 0 to 300');
      clockSkewSeconds = value;
    }

    let singleUse = current?.single_use ?? false;
    if (input.singleUse !== undefined) {
      if (typeof input.singleUse !== 'boolean') throw invalid(op, 'singleUse', 'must be true or false');
      singleUse = input.singleUse;
    }
    return { issuer, audiences: audiences!, allowedAlgorithms, jwksUri, clockSkewSeconds, singleUse };
  }

  /** https URLs; http only for loopback hosts, and only where loopback is allowed (development, tests). */
  private parseIssuerUrl(op: string, field: string, value: unknown): string {
    if (typeof value !== 'string' || value.length === 0 || value.length > 512)
      throw invalid(op, field, 'must be an https URL of at most 512 characters');
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw invalid(op, field, 'must be an https URL');
    }
    if (url.username || url.password || url.search || url.hash)
      throw invalid(op, field, 'must not carry credentials, a query or a fragment');
    // The same judgement as distribution endpoints (address-classifier.ts): link-local, metadata and
    // unspecified addresses in any spelling are refused here, not only when keys are fetched.
    const refusal = hostRefusal(url.hostname, this.config.distribution.allowLoopback);
    if (refusal) throw invalid(op, field, `names a host the outbound policy refuses: it ${refusal}`);
    const loopback = classifyHost(url.hostname).category === 'loopback';
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback))
      throw invalid(op, field, 'must be an https URL');
    // The issuer is compared with `iss` as a string: keep exactly what was given.
    return value;
  }
}

function parseKeys(op: string, value: unknown): string[] {
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    value.length > 1000 ||
    value.some((k) => typeof k !== 'string' || !KEY_NAME.test(k))
  ) {
    throw invalid(op, 'keys', 'must list 1 to 1000 key names');
  }
  return [...new Set(value as string[])].sort();
}

function parseExpiry(op: string, value: unknown): Date | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(Date.parse(value)))
    throw invalid(op, 'expiresAt', 'must be an ISO 8601 date and time, or null');
  return new Date(value);
}

function providerView(row: ProviderRow): ProviderView {
  return {
    name: row.name,
    issuer: row.issuer,
    audiences: row.audiences,
    allowedAlgorithms: row.allowed_algorithms,
    jwksUri: row.jwks_uri,
    clockSkewSeconds: row.clock_skew_seconds,
    singleUse: row.single_use,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

function providerData(row: ProviderRow): Record<string, unknown> {
  const { name: _name, createdAt: _c, updatedAt: _u, ...data } = providerView(row);
  return data;
}

function ruleView(row: RuleRow): RuleView {
  return {
    name: row.name,
    provider: row.provider_name,
    claims: row.claims,
    keys: row.key_names,
    expiresAt: row.expires_at?.toISOString() ?? null,
    state: row.expires_at !== null && row.expires_at.getTime() <= Date.now() ? 'expired' : 'active',
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

function ruleData(row: RuleRow): Record<string, unknown> {
  return {
    provider: row.provider_name,
    claims: row.claims,
    keys: row.key_names,
    expiresAt: row.expires_at?.toISOString() ?? null,
  };
}

function invalid(operation: string, field: string, message: string): DomainError {
  return new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: '${field}' ${message}`, { field });
}

function providerNotFound(name: string): DomainError {
  return new DomainError(ErrorCode.NOT_FOUND, `no identity provider named '${name.slice(0, 100)}'`);
}

function ruleNotFound(name: string): DomainError {
  return new DomainError(ErrorCode.NOT_FOUND, `no workload rule named '${name.slice(0, 100)}'`);
}

function driverCode(error: unknown): string | undefined {
  const e = error as { code?: string; driverError?: { code?: string } };
  return e.driverError?.code ?? e.code;
}
