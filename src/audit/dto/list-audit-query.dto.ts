import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';

export class ListAuditQueryDto {
  @ApiPropertyOptional({ description: 'Return events with a seq greater than this (decimal)', example: '0' })
  @IsOptional()
  @Matches(/^\d{1,19}$/, { message: 'after must be a decimal sequence number' })
  after?: string;

  @ApiPropertyOptional({ description: 'Only events of this type, e.g. sign or token.created' })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  type?: string;

  @ApiPropertyOptional({
    description: "Only events about this subject (a key name, a serial, a token id) or made by a workload identity with this OIDC `sub` (e.g. repo:acme/app:environment:prod)",
  })
  @IsOptional()
  @IsString()
  @MaxLength(1024)
  subject?: string;

  @ApiPropertyOptional({ description: 'Most events to return (JSON: default 100, at most 1000; NDJSON: default all)' })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  limit?: number;
}

export class ListCheckpointsQueryDto {
  @ApiPropertyOptional({ description: 'Return checkpoints with a seq greater than this' })
  @IsOptional()
  @Matches(/^\d{1,19}$/, { message: 'after must be a decimal sequence number' })
  after?: string;

  @ApiPropertyOptional({ description: 'Most checkpoints to return (default 100, at most 1000)' })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;
}
