import { Module } from '@nestjs/common';
import { CaModule } from '../ca/ca.module';
import { DomainEventsModule } from '../common/domain-events.module';
import { KeysController } from './keys.controller';
import { KeysRepository } from './keys.repository';
import { KeysService } from './keys.service';
import { KeyVersionsService } from './key-versions.service';

@Module({
  imports: [CaModule, DomainEventsModule],
  controllers: [KeysController],
  providers: [KeysService, KeyVersionsService, KeysRepository],
  exports: [KeysService, KeyVersionsService, KeysRepository],
})
export class KeysModule {}
