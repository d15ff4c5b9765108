import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsISO8601, IsOptional } from 'class-validator';
import { REVOCATION_REASONS, RevocationReason } from '../../pki';

export class RevokeDto {
  @ApiPropertyOptional({ enum: REVOCATION_REASONS, default: 'unspecified' })
  @IsOptional()
  @IsIn(REVOCATION_REASONS as unknown as string[])
  reason?: RevocationReason;

  @ApiPropertyOptional({ description: 'ISO-8601; when the key is known or suspected to have been compromised' })
  @IsOptional()
  @IsISO8601({ strict: true })
  invalidityDate?: string;
}
