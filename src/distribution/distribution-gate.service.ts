import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { DistributionGate, RootAcknowledgement } from '../common/distribution-gate';
import { DomainError, ErrorCode } from '../common/errors';

/**
 * The rotation gate, answered from delivery records: a required target has acknowledged root X
 * when the truststore version it was last read back holding (digest and version both match a
 * stored version) lists X among its roots. A required target whose truststore never carries X
 * stays pending — the gate does not guess which targets a new root concerns. No required targets
 * at all: acknowledged, nothing pending.
 */
@Injectable()
export class DistributionGateService implements DistributionGate {
  constructor(private readonly dataSource: DataSource) {}

  async requiredTargetsHaveRoot(rootSha256: string): Promise<RootAcknowledgement> {
    if (typeof rootSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(rootSha256)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, "requiredTargetsHaveRoot: 'rootSha256' must be 64 lower-case hex digits", { field: 'rootSha256' });
    }
    const rows: Array<{ region: string; target: string; has: boolean | null }> = await this.dataSource.query(
      `SELECT r.name AS region, t.name AS target, (v.root_sha256 @> ARRAY[$1]::text[]) AS has
         FROM distribution_targets t
         JOIN distribution_regions r ON r.id = t.region_id
         LEFT JOIN truststore_versions v
                ON v.truststore_id = t.truststore_id AND v.version = t.delivered_version AND v.digest = t.delivered_digest
        WHERE t.required
        ORDER BY r.name, t.name`,
      [rootSha256],
    );
    const pending = rows.filter((row) => row.has !== true).map((row) => `${row.region}/${row.target}`);
    return { acknowledged: pending.length === 0, pending };
  }
}
