import { Module } from '@nestjs/common';
import { CaModule } from '../ca/ca.module';
import { DomainEventsModule } from '../common/domain-events.module';
import { KeysModule } from '../keys/keys.module';
import { TruststoreController } from './truststore.controller';
import { TruststoreRepository } from './truststore.repository';
import { TruststoreService } from './truststore.service';
import { TruststoreBundlesService } from './truststore-bundles.service';
import { TruststoreVersionsService } from './truststore-versions.service';

/** Truststores: versioned, content-addressed sets of root CAs and their bundle formats. */
@Module({
  imports: [CaModule, KeysModule, DomainEventsModule],
  controllers: [TruststoreController],
  providers: [TruststoreService, TruststoreVersionsService, TruststoreBundlesService, TruststoreRepository],
  exports: [TruststoreService, TruststoreVersionsService, TruststoreBundlesService, TruststoreRepository],
})
export class TruststoreModule {}
