import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsISO8601, IsOptional, IsString, MaxLength, MinLength } from 'class-validator';

export class RotateKeyDto {
  @ApiPropertyOptional({ description: 'why the rotation is forced (audited)', maxLength: 500 })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  reason?: string;
}

export class RenewCaDto {
  @ApiPropertyOptional({ description: 'why the CA is renewed now (audited)', maxLength: 500 })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  reason?: string;
}

export class ForceRotationDto {
  @ApiProperty({
    description: 'why the new hierarchy may issue before every required target acknowledged its root (audited)',
    minLength: 3,
    maxLength: 500,
  })
  @IsString()
  @MinLength(3)
  @MaxLength(500)
  reason!: string;
}

export class TestTickDto {
  @ApiPropertyOptional({ description: 'the instant the tick runs at (ISO-8601); default: now' })
  @IsOptional()
  @IsISO8601({ strict: true })
  now?: string;
}
