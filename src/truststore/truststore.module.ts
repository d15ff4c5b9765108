import { Module } from '@nestjs/common';
import { CaModule } from '../ca/ca.module';
import { DomainEventsModule } from '../common/domain-events.module';
import { TruststoreController } from './truststore.controller';
import { TruststoreService } from './truststore.service';

/** Truststores: versioned, content-addressed sets of root CAs and their bundle formats. */
@Module({
  imports: [CaModule, DomainEventsModule],
  controllers: [TruststoreController],
  providers: [TruststoreService],
  exports: [TruststoreService],
})
export class TruststoreModule {}
