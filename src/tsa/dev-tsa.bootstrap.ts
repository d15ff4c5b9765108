import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { MAX_LEAF_VALIDITY_DAYS } from '../pki';
import { CaService } from '../ca/ca.service';
import { CaCreationService } from '../ca/ca-creation.service';
import { CaKeys } from '../ca/ca-keys';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { BootstrapService } from '../database/bootstrap.service';

export const DEV_TSA_ROOT_CA = 'signet-dev-tsa-root';
export const DEV_TSA_CA = 'signet-dev-tsa';

const DEV_SUBJECT = { C: 'US', ST: 'Development', O: 'Signet Development' };

/**
 * On embedded defaults the first start creates a development TSA hierarchy: a self-signed TSA
 * root (EC-384, 10 years — Notation's `tsa` stores accept only self-signed roots) and under it the
 * TSA signing certificate (EC-256, the longest validity the profile allows). EC-256 for the key
 * that signs every timestamp: SoftHSM2 (OpenSSL) signs P-256 several times faster than P-384, and
 * an EC-384 TSA key costs more than half the TSA's throughput (docs/benchmarks.md).
 * Runs once per database, and only while SIGNET_TSA_CA still names the development TSA. On a token
 * without EC (openCryptoki's soft token) both are RSA-3072.
 */
@Injectable()
export class DevTsaBootstrap implements OnModuleInit {
  private readonly logger = new Logger('Bootstrap');

  constructor(
    private readonly bootstrap: BootstrapService,
    private readonly cas: CaService,
    private readonly creation: CaCreationService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    private readonly caKeys: CaKeys,
  ) {}

  onModuleInit(): void {
    if (!this.config.devBootstrap || this.config.tsa.caName !== DEV_TSA_CA) return;
    this.bootstrap.register({ name: 'dev-tsa-hierarchy', order: 20, run: () => this.run() });
  }

  async run(): Promise<void> {
    if (!(await this.exists(DEV_TSA_ROOT_CA))) {
      await this.creation.create({
        name: DEV_TSA_ROOT_CA,
        kind: 'tsa-root',
        keySpec: this.caKeys.offeredSpec('EC-384'),
        validityDays: 3650,
        subject: { ...DEV_SUBJECT, CN: 'Signet Development TSA Root' },
      });
    }
    if (!(await this.exists(DEV_TSA_CA))) {
      await this.creation.create({
        name: DEV_TSA_CA,
        kind: 'tsa',
        parent: DEV_TSA_ROOT_CA,
        keySpec: this.caKeys.offeredSpec('EC-256'),
        validityDays: MAX_LEAF_VALIDITY_DAYS,
        subject: { ...DEV_SUBJECT, CN: 'Signet Development TSA' },
      });
      this.logger.warn(
        `created a DEVELOPMENT TSA hierarchy (${DEV_TSA_ROOT_CA} → ${DEV_TSA_CA}); use your own TSA CAs in production (SIGNET_TSA_CA)`,
      );
    }
  }

  private async exists(name: string): Promise<boolean> {
    try {
      await this.cas.byName(name);
      return true;
    } catch (error) {
      if (error instanceof DomainError && error.code === ErrorCode.NOT_FOUND) return false;
      throw error;
    }
  }
}
