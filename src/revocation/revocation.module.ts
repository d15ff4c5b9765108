import { Module } from '@nestjs/common';
import { CaModule } from '../ca/ca.module';
import { CrlService } from './crl.service';
import { RevocationService } from './revocation.service';

@Module({
  imports: [CaModule],
  providers: [CrlService, RevocationService],
  exports: [CrlService, RevocationService],
})
export class RevocationModule {}
