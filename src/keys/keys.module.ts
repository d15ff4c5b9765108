import { Module } from '@nestjs/common';
import { CaModule } from '../ca/ca.module';
import { DomainEventsModule } from '../common/domain-events.module';
import { KeysController } from './keys.controller';
import { KeysService } from './keys.service';

@Module({
  imports: [CaModule, DomainEventsModule],
  controllers: [KeysController],
  providers: [KeysService],
  exports: [KeysService],
})
export class KeysModule {}
