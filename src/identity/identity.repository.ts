import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import type { ClaimPatterns } from './claim-rules';

export interface ProviderRow {
  id: string;
  name: string;
  issuer: string;
  audiences: string[];
  allowed_algorithms: string[];
  jwks_uri: string | null;
  clock_skew_seconds: number;
  single_use: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface RuleRow {
  id: string;
  name: string;
  provider_id: string;
  provider_name: string;
  claims: ClaimPatterns;
  key_names: string[];
  expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface ProviderFields {
  issuer: string;
  audiences: string[];
  allowedAlgorithms: string[];
  jwksUri: string | null;
  clockSkewSeconds: number;
  singleUse: boolean;
}

export interface RuleFields {
  claims: ClaimPatterns;
  keys: string[];
  expiresAt: Date | null;
}

const PROVIDER_COLUMNS =
  'id, name, issuer, audiences, allowed_algorithms, jwks_uri, clock_skew_seconds, single_use, created_at, updated_at';
const RULE_SELECT = `SELECT r.id, r.name, r.provider_id, p.name AS provider_name, r.claims, r.key_names, r.expires_at, r.created_at, r.updated_at
  FROM workload_rules r JOIN identity_providers p ON p.id = r.provider_id`;

/** Every query of identity providers, workload rules and the single-use `jti` ledger. */
@Injectable()
export class IdentityRepository {
  constructor(private readonly dataSource: DataSource) {}

  transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return this.dataSource.transaction(work);
  }

  async listProviders(manager: EntityManager = this.dataSource.manager): Promise<ProviderRow[]> {
    return manager.query(`SELECT ${PROVIDER_COLUMNS} FROM identity_providers ORDER BY name`);
  }

  async providerByName(
    name: string,
    manager: EntityManager = this.dataSource.manager,
  ): Promise<ProviderRow | undefined> {
    return this.selectProvider(manager, name, '');
  }

  /**
   * The provider row, locked until the transaction ends: a change or deletion of one provider waits
   * for another in flight, so each reads what the last one wrote.
   */
  lockProvider(manager: EntityManager, name: string): Promise<ProviderRow | undefined> {
    return this.selectProvider(manager, name, ' FOR UPDATE');
  }

  private async selectProvider(
    manager: EntityManager,
    name: string,
    lock: '' | ' FOR UPDATE',
  ): Promise<ProviderRow | undefined> {
    const rows: ProviderRow[] = await manager.query(
      `SELECT ${PROVIDER_COLUMNS} FROM identity_providers WHERE name = $1${lock}`,
      [name],
    );
    return rows[0];
  }

  async insertProvider(manager: EntityManager, name: string, f: ProviderFields): Promise<ProviderRow> {
    const rows: ProviderRow[] = await manager.query(
      `INSERT INTO identity_providers (name, issuer, audiences, allowed_algorithms, jwks_uri, clock_skew_seconds, single_use)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${PROVIDER_COLUMNS}`,
      [name, f.issuer, f.audiences, f.allowedAlgorithms, f.jwksUri, f.clockSkewSeconds, f.singleUse],
    );
    return rows[0];
  }

  async updateProvider(manager: EntityManager, id: string, f: ProviderFields): Promise<ProviderRow> {
    const [rows]: [ProviderRow[], number] = await manager.query(
      `UPDATE identity_providers SET issuer = $2, audiences = $3, allowed_algorithms = $4, jwks_uri = $5, clock_skew_seconds = $6, single_use = $7, updated_at = clock_timestamp()
       WHERE id = $1 RETURNING ${PROVIDER_COLUMNS}`,
      [id, f.issuer, f.audiences, f.allowedAlgorithms, f.jwksUri, f.clockSkewSeconds, f.singleUse],
    );
    return rows[0];
  }

  /**
   * Deletes a provider and (cascade) its rules; returns the names of the rules that went with it.
   * Those rules are locked first, so a rule change in flight finishes before they go.
   */
  async deleteProvider(manager: EntityManager, id: string): Promise<string[]> {
    const rules: Array<{ name: string }> = await manager.query(
      'SELECT name FROM workload_rules WHERE provider_id = $1 ORDER BY name FOR UPDATE',
      [id],
    );
    await manager.query('DELETE FROM identity_providers WHERE id = $1', [id]);
    return rules.map((rule) => rule.name);
  }

  async listRules(manager: EntityManager = this.dataSource.manager): Promise<RuleRow[]> {
    return manager.query(`${RULE_SELECT} ORDER BY r.name`);
  }

  async ruleByName(name: string, manager: EntityManager = this.dataSource.manager): Promise<RuleRow | undefined> {
    return this.selectRule(manager, name, '');
  }

  /** The rule row (not its provider's), locked until the transaction ends: rule changes take turns. */
  lockRule(manager: EntityManager, name: string): Promise<RuleRow | undefined> {
    return this.selectRule(manager, name, ' FOR UPDATE OF r');
  }

  private async selectRule(
    manager: EntityManager,
    name: string,
    lock: '' | ' FOR UPDATE OF r',
  ): Promise<RuleRow | undefined> {
    const rows: RuleRow[] = await manager.query(`${RULE_SELECT} WHERE r.name = $1${lock}`, [name]);
    return rows[0];
  }

  async insertRule(manager: EntityManager, name: string, providerId: string, f: RuleFields): Promise<void> {
    await manager.query(
      'INSERT INTO workload_rules (name, provider_id, claims, key_names, expires_at) VALUES ($1, $2, $3, $4, $5)',
      [name, providerId, JSON.stringify(f.claims), f.keys, f.expiresAt],
    );
  }

  async updateRule(manager: EntityManager, id: string, f: RuleFields): Promise<void> {
    await manager.query(
      'UPDATE workload_rules SET claims = $2, key_names = $3, expires_at = $4, updated_at = clock_timestamp() WHERE id = $1',
      [id, JSON.stringify(f.claims), f.keys, f.expiresAt],
    );
  }

  async deleteRule(manager: EntityManager, id: string): Promise<void> {
    await manager.query('DELETE FROM workload_rules WHERE id = $1', [id]);
  }

  /**
   * Records the first use of a single-use token; false when any replica already did. The primary
   * key (provider, jti) decides, so two replicas racing on one token cannot both win.
   */
  async claimTokenUse(providerId: string, jti: string, expiresAt: Date): Promise<boolean> {
    const rows: unknown[] = await this.dataSource.query(
      'INSERT INTO oidc_used_tokens (provider_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (provider_id, jti) DO NOTHING RETURNING jti',
      [providerId, jti, expiresAt],
    );
    return rows.length === 1;
  }

  /** Drops ledger rows of tokens that have expired (they are refused as expired anyway). */
  async purgeUsedTokens(): Promise<number> {
    const [, count]: [unknown, number] = await this.dataSource.query(
      'DELETE FROM oidc_used_tokens WHERE expires_at < now()',
    );
    return count;
  }
}
