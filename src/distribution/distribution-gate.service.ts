import { Injectable } from '@nestjs/common';
import { DistributionGate, RootAcknowledgement } from '../common/distribution-gate';
import { DomainError, ErrorCode } from '../common/errors';
import { TargetsRepository } from './targets.repository';

/**
 * The rotation gate, answered from delivery records: a required target has acknowledged root X
 * when the truststore version it was last read back holding (digest and version both match a
 * stored version) lists X among its roots. A required target whose truststore never carries X
 * stays pending — the gate does not guess which targets a new root concerns. No required targets
 * at all: acknowledged, nothing pending.
 */
@Injectable()
export class DistributionGateService implements DistributionGate {
  constructor(private readonly targets: TargetsRepository) {}

  async requiredTargetsHaveRoot(rootSha256: string): Promise<RootAcknowledgement> {
    if (typeof rootSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(rootSha256)) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        "requiredTargetsHaveRoot: 'rootSha256' must be 64 lower-case hex digits",
        { field: 'rootSha256' },
      );
    }
    const rows = await this.targets.requiredTargetsHoldingRoot(rootSha256);
    const pending = rows.filter((row) => row.has !== true).map((row) => `${row.region}/${row.target}`);
    return { acknowledged: pending.length === 0, pending };
  }
}
