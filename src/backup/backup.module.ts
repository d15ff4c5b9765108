import { Module } from '@nestjs/common';
import { BackupRepository } from './backup.repository';
import { BackupService } from './backup.service';

@Module({ providers: [BackupService, BackupRepository], exports: [BackupService] })
export class BackupModule {}
