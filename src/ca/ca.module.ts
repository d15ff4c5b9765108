import { Module } from '@nestjs/common';
import { CaController } from './ca.controller';
import { CaRepository } from './ca.repository';
import { CaService } from './ca.service';
import { DevHierarchyBootstrap } from './dev-hierarchy.bootstrap';

@Module({
  controllers: [CaController],
  providers: [CaService, CaRepository, DevHierarchyBootstrap],
  exports: [CaService, CaRepository],
})
export class CaModule {}
