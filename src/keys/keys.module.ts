import { Module } from '@nestjs/common';
import { CaModule } from '../ca/ca.module';
import { KeysService } from './keys.service';

@Module({
  imports: [CaModule],
  providers: [KeysService],
  exports: [KeysService],
})
export class KeysModule {}
