import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsISO8601, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';

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
    description:
      'Only events about this subject (a key name, a serial, a token id) or made by a workload identity with this OIDC `sub` (e.g. repo:acme/app:environment:prod)',
  })
  @IsOptional()
  @IsString()
  @MaxLength(1024)
  subject?: string;

  @ApiPropertyOptional({
    description: "Only events made by this actor: a token's name or id, or a workload identity's OIDC `sub`",
  })
  @IsOptional()
  @IsString()
  @MaxLength(1024)
  actor?: string;

  @ApiPropertyOptional({
    description: 'Only events about this signing key (its name as subject, or named in data.key)',
  })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  key?: string;

  @ApiPropertyOptional({ description: 'Only signatures of this artifact (sign events), e.g. sha256:<hex>' })
  @IsOptional()
  @Matches(/^sha(256:[0-9a-f]{64}|384:[0-9a-f]{96}|512:[0-9a-f]{128})$/, {
    message: 'artifact must be an OCI digest such as sha256:<64 lower-case hex>',
  })
  artifact?: string;

  @ApiPropertyOptional({ description: 'Only events at or after this time (ISO 8601)' })
  @IsOptional()
  @IsISO8601({ strict: true })
  since?: string;

  @ApiPropertyOptional({ description: 'Only events before this time (ISO 8601)' })
  @IsOptional()
  @IsISO8601({ strict: true })
  until?: string;

  @ApiPropertyOptional({
    description: "desc: newest first (JSON only); the answer's `next` is then the `before` of the next page",
    enum: ['asc', 'desc'],
  })
  @IsOptional()
  @IsIn(['asc', 'desc'])
  order?: 'asc' | 'desc';

  @ApiPropertyOptional({ description: 'With order=desc: events with a seq smaller than this (decimal)' })
  @IsOptional()
  @Matches(/^\d{1,19}$/, { message: 'before must be a decimal sequence number' })
  before?: string;

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

  @ApiPropertyOptional({
    description: 'desc: newest first (with `after`, still only seq greater than it)',
    enum: ['asc', 'desc'],
  })
  @IsOptional()
  @IsIn(['asc', 'desc'])
  order?: 'asc' | 'desc';
}
