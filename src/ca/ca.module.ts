import { Module } from '@nestjs/common';
import { CaController } from './ca.controller';
import { CaService } from './ca.service';
import { DevHierarchyBootstrap } from './dev-hierarchy.bootstrap';

@Module({
  controllers: [CaController],
  providers: [CaService, DevHierarchyBootstrap],
  exports: [CaService],
})
export class CaModule {}
