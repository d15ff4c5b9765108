import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  Max,
  Min,
} from 'class-validator';
import { KEY_SPECS, KeySpec } from '../../pki/key-spec';

export class CreateKeyDto {
  @ApiProperty({ example: 'release' })
  @IsString()
  name!: string;

  @ApiProperty({ enum: KEY_SPECS })
  @IsIn(KEY_SPECS as unknown as string[])
  keySpec!: KeySpec;

  @ApiProperty({ example: { C: 'US', ST: 'WA', O: 'Example', CN: 'release' } })
  @IsObject()
  subject!: Record<string, unknown>;

  @ApiPropertyOptional({ description: 'issuing CA name (default: the only issuing CA)' })
  @IsOptional()
  @IsString()
  issuer?: string;

  @ApiPropertyOptional({ description: 'external-CA mode: a CSR now, the chain later' })
  @IsOptional()
  @IsBoolean()
  external?: boolean;

  @ApiPropertyOptional({ default: 400, maximum: 460 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(460)
  certificateValidityDays?: number;

  @ApiPropertyOptional({
    example: { schedule: 'quarterly', overlapDays: 14, retentionDays: 90 },
    description:
      'schedule: "quarterly" or a cron expression (5 or 6 fields, UTC). A schedule whose occurrences come closer than ' +
      'SIGNET_ROTATION_MIN_INTERVAL_HOURS (default 24) is refused with 400 ROTATION_TOO_FREQUENT.',
  })
  @IsOptional()
  @IsObject()
  rotation?: { schedule?: string; overlapDays?: number; retentionDays?: number };

  @ApiPropertyOptional({ type: [String], description: 'keys that must have signed an artifact first (promotion)' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(16)
  @IsString({ each: true })
  requires?: string[];
}

export class ImportCertificateDto {
  @ApiProperty({ type: [String], description: 'PEM certificates, leaf first, root last' })
  @IsArray()
  @ArrayMaxSize(8)
  @IsString({ each: true })
  chain!: string[];
}
