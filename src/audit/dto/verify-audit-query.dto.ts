import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';

export class VerifyAuditQueryDto {
  @ApiPropertyOptional({
    description: 'true: recompute the whole kept log instead of starting at the last good checkpoint',
    enum: ['true', 'false'],
  })
  @IsOptional()
  @IsIn(['true', 'false'])
  full?: 'true' | 'false';
}
