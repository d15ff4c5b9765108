import { Module } from '@nestjs/common';
import { DomainEventsModule } from '../common/domain-events.module';
import { CaController } from './ca.controller';
import { CaKeys } from './ca-keys';
import { CaRepository } from './ca.repository';
import { CaService } from './ca.service';
import { CaCreationService } from './ca-creation.service';
import { CertificatesRepository } from './certificates.repository';
import { DevHierarchyBootstrap } from './dev-hierarchy.bootstrap';

@Module({
  imports: [DomainEventsModule],
  controllers: [CaController],
  providers: [CaKeys, CaService, CaCreationService, CaRepository, CertificatesRepository, DevHierarchyBootstrap],
  exports: [CaKeys, CaService, CaCreationService, CaRepository, CertificatesRepository],
})
export class CaModule {}
