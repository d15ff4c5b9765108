import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { BootstrapService } from '../database/bootstrap.service';
import type { KeySpec } from '../pki/key-spec';
import { CaKeys } from './ca-keys';
import { CaService } from './ca.service';
import { CaCreationService } from './ca-creation.service';

export const DEV_ROOT_CA = 'signet-dev-root';
export const DEV_ISSUING_CA = 'signet-dev-issuing';

const DEV_SUBJECT = { C: 'US', ST: 'Development', O: 'Signet Development' };

/**
 * On embedded defaults the first start creates a development hierarchy (EC-384 root, 10 years;
 * EC-384 issuing CA, 5 years) so keys can be created at once. Runs once per database. On a token
 * without EC (openCryptoki's soft token: the capability probe says so) both are RSA-3072.
 */
@Injectable()
export class DevHierarchyBootstrap implements OnModuleInit {
  private readonly logger = new Logger('Bootstrap');

  constructor(
    private readonly bootstrap: BootstrapService,
    private readonly cas: CaService,
    private readonly creation: CaCreationService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    private readonly caKeys: CaKeys,
  ) {}

  private keySpec(): KeySpec {
    return this.caKeys.offeredSpec('EC-384');
  }

  onModuleInit(): void {
    if (!this.config.devBootstrap) return;
    this.bootstrap.register({
      name: 'dev-ca-hierarchy',
      order: 10,
      run: async () => {
        const existing = await this.cas.list();
        if (existing.some((ca) => ca.kind === 'issuing')) return;
        const keySpec = this.keySpec();
        await this.creation.create({
          name: DEV_ROOT_CA,
          kind: 'root',
          keySpec,
          validityDays: 3650,
          subject: { ...DEV_SUBJECT, CN: 'Signet Development Root CA' },
        });
        await this.creation.create({
          name: DEV_ISSUING_CA,
          kind: 'issuing',
          parent: DEV_ROOT_CA,
          keySpec,
          validityDays: 1825,
          subject: { ...DEV_SUBJECT, CN: 'Signet Development Issuing CA' },
        });
        this.logger.warn(
          `created a DEVELOPMENT CA hierarchy (${DEV_ROOT_CA} → ${DEV_ISSUING_CA}, ${keySpec}); use your own CAs in production (POST /v1/cas, signet init)`,
        );
      },
    });
  }
}
