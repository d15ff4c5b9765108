import { Module } from '@nestjs/common';
import { CaService } from './ca.service';
import { DevHierarchyBootstrap } from './dev-hierarchy.bootstrap';

@Module({
  providers: [CaService, DevHierarchyBootstrap],
  exports: [CaService],
})
export class CaModule {}
