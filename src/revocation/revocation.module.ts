import { Module } from '@nestjs/common';
import { CaModule } from '../ca/ca.module';
import { DomainEventsModule } from '../common/domain-events.module';
import { KeysModule } from '../keys/keys.module';
import { CertificateSearchService } from './certificate-search.service';
import { CertificatesController } from './certificates.controller';
import { CrlService } from './crl.service';
import { OcspService } from './ocsp.service';
import { PkiController } from './pki.controller';
import { PkiContentTypes } from './pki-content-types';
import { RevocationRepository } from './revocation.repository';
import { RevocationService } from './revocation.service';

@Module({
  imports: [CaModule, KeysModule, DomainEventsModule],
  controllers: [CertificatesController, PkiController],
  providers: [
    RevocationRepository,
    CrlService,
    RevocationService,
    OcspService,
    PkiContentTypes,
    CertificateSearchService,
  ],
  exports: [CrlService, RevocationService, OcspService],
})
export class RevocationModule {}
